-- pulser-ops: issue 18's enqueue and completion, re-stated after template versions (issue 15).
--
-- Outside issue 18's timestamp range on purpose (as 20261201799000 is outside issue 20's): it
-- must run after 20261201800000_template_versions, which re-created enqueue_runs and
-- complete_runs from their earlier forms (the plpgsql loop, the completion before
-- 20261201600000) to stamp and honour runs.template_version. This migration states each once
-- more with both: the set-based enqueue (20261201610000) stamping the template version, the
-- leaner completion (20261201600000) applying the retry policy of the run's template version.
-- Template params compile their defaults with params_with_defaults, which 20261201800000 made
-- the one statement of "top-level defaults".

alter type pulser_ops.enqueue_item add attribute template_version integer;

create or replace function pulser_ops.enqueue_runs(runs jsonb) returns setof public.runs
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan as $$
-- One plan for any batch: planning the statement that reads a batch costs more than reading a
-- small one, and its plan does not depend on the batch (every lookup is by key).
declare
  k text := pulser_ops.caller_kind();
  uid uuid := auth.uid();
  items pulser_ops.enqueue_item[];
  bad pulser_ops.enqueue_item;
  keyed boolean;
  out_ids uuid[];
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not enqueue runs', k using errcode = '42501';
  end if;
  if jsonb_typeof(enqueue_runs.runs) is distinct from 'array' then
    raise exception 'runs: expected an array of run requests' using errcode = 'PO400';
  end if;
  if jsonb_array_length(enqueue_runs.runs) > 10000 then
    raise exception 'runs: at most 10000 runs per call (got %)', jsonb_array_length(enqueue_runs.runs)
      using errcode = 'PO400';
  end if;

  with fields as (
    -- Each field, absent when missing or JSON null.
    select a.n::integer as n, a.e, jsonb_typeof(a.e) = 'object' as is_object,
           nullif(a.e -> 'template', 'null') as j_template,
           nullif(a.e -> 'params', 'null') as j_params,
           nullif(a.e -> 'lane', 'null') as j_lane,
           nullif(a.e -> 'priority', 'null') as j_priority,
           nullif(a.e -> 'max_attempts', 'null') as j_max,
           nullif(a.e -> 'run_after', 'null') as j_after,
           nullif(a.e -> 'idempotency_key', 'null') as j_key,
           nullif(a.e -> 'session_id', 'null') as j_session
    from jsonb_array_elements(enqueue_runs.runs) with ordinality as a(e, n)
  ),
  typed as (
    -- Each field's value when it has its type (integers: whole JSON numbers).
    select f.*,
           case when jsonb_typeof(f.j_template) = 'string' then f.j_template #>> '{}' end as v_template,
           case when jsonb_typeof(f.j_lane) = 'string' then f.j_lane #>> '{}' end as v_lane_given,
           case when jsonb_typeof(f.j_priority) = 'number' then (f.j_priority #>> '{}')::numeric end
             as v_priority_given,
           case when jsonb_typeof(f.j_max) = 'number' then (f.j_max #>> '{}')::numeric end as v_max_given,
           case when jsonb_typeof(f.j_after) = 'string'
                then pulser_ops.try_timestamptz(f.j_after #>> '{}') end as v_after,
           case when jsonb_typeof(f.j_key) = 'string' then f.j_key #>> '{}' end as v_key,
           case when jsonb_typeof(f.j_session) = 'string'
                then pulser_ops.try_uuid(f.j_session #>> '{}') end as v_session
    from fields f
  ),
  looked_up as (
    select y.*, t.name as t_name, t.lease_seconds, t.params_schema, t.version as t_version,
           tp.walk,
           case when jsonb_typeof(y.j_params) = 'object' or y.j_params is null
                then coalesce(tp.defaults, '{}') || coalesce(y.j_params, '{}') end as v_params,
           coalesce(y.v_lane_given, t.default_lane) as v_lane,
           coalesce(y.v_priority_given, 0) as v_priority,
           coalesce(y.v_max_given, t.max_attempts) as v_max,
           s.id as s_id, s.owner_id as s_owner,
           case when y.v_session is not null then s.owner_id
                when k in ('operator', 'admin') then uid end as v_owner
    from typed y
    left join public.run_templates t on t.name = y.v_template
    left join pulser_ops.template_params tp on tp.template = t.name
    left join public.sessions s on s.id = y.v_session
  ),
  judged as (
    select z.*,
           case
             when not z.is_object then 1
             when exists (select 1 from jsonb_object_keys(z.e) as f(key)
                          where f.key not in ('template', 'params', 'lane', 'priority', 'run_after',
                                              'idempotency_key', 'session_id', 'max_attempts')) then 2
             when z.j_template is not null and z.v_template is null then 3
             when z.t_name is null then 4
             when z.v_params is null then 5
             -- The default schema ({"type": "object"}) says nothing the check above has not.
             when z.params_schema <> '{"type": "object"}'::jsonb
                  and case when z.walk is not false
                           then pulser_ops.schema_violation(z.params_schema, z.v_params, 'params')
                                is not null
                           else pulser_ops.params_break_rules(z.t_name, z.v_params) end then 6
             when z.j_lane is not null and z.v_lane_given is null then 7
             when z.v_lane not in ('A', 'B', 'C', 'D') then 8
             when z.j_priority is not null and (z.v_priority_given is null or z.v_priority_given % 1 <> 0)
             then 9
             when z.v_priority not between -100 and 100 then 10
             when z.j_max is not null and (z.v_max_given is null or z.v_max_given % 1 <> 0) then 11
             when z.v_max not between 1 and 100 then 12
             when z.j_after is not null and jsonb_typeof(z.j_after) <> 'string' then 13
             when z.j_after is not null and z.v_after is null then 14
             when z.j_key is not null and z.v_key is null then 15
             when char_length(z.v_key) not between 1 and 200 then 16
             when z.j_session is not null and jsonb_typeof(z.j_session) <> 'string' then 17
             when z.j_session is not null and z.v_session is null then 18
             -- another operator's session is answered like one that does not exist (no
             -- probing which ids do)
             when z.v_session is not null
                  and (z.s_id is null or k = 'operator' and z.s_owner is distinct from uid) then 19
           end as refused
    from looked_up z
  )
  select array_agg(row(
           a.n, gen_random_uuid(), a.t_name, a.v_lane,
           -- (not cast when refused: a number too big for an integer is refused by its range)
           case when a.refused is null then a.v_priority end,
           case when a.refused is null then a.v_max end, a.lease_seconds, a.v_params,
           a.v_session, a.v_owner, a.v_key, greatest(now(), coalesce(a.v_after, now())), null,
           a.refused, a.t_version
         )::pulser_ops.enqueue_item order by a.n),
         bool_or(a.v_key is not null)
    into items, keyed
  from judged a;

  if keyed then
    -- An idempotency key (per owner) already used, by a stored run or an earlier item, answers
    -- with that run; with another template or other params it is a conflict.
    with ordered as (
      select i.*, min(i.n) over (partition by i.idempotency_key, i.owner_id) as first_n
      from unnest(items) as i
    ),
    answered as (
      select i.*, coalesce(ex.id, f.id) as reuse_id,
             coalesce(ex.template, f.template) as reuse_template,
             coalesce(ex.params, f.params) as reuse_params
      from ordered as i
      left join lateral (
        select x.id, x.template, x.params from public.runs x
        where x.idempotency_key = i.idempotency_key
          and coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
            = coalesce(i.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
      ) ex on i.idempotency_key is not null and i.refused is null
      left join ordered f
        on f.n = i.first_n and i.first_n < i.n and i.idempotency_key is not null
           and i.refused is null and ex.id is null
    )
    select array_agg(row(
             a.n, a.id, a.template, a.lane, a.priority, a.max_attempts, a.lease_seconds, a.params,
             a.session_id, a.owner_id, a.idempotency_key, a.available_at, a.reuse_id,
             coalesce(a.refused, case when a.reuse_template <> a.template
                                        or a.reuse_params <> a.params then 20 end),
             a.template_version
           )::pulser_ops.enqueue_item order by a.n)
      into items
    from answered a;
  end if;

  select i.* into bad from unnest(items) as i where i.refused is not null order by i.n limit 1;
  if bad.refused is not null then
    perform pulser_ops.enqueue_refuse(enqueue_runs.runs -> (bad.n - 1), bad);
  end if;

  -- One statement for the whole batch, in its order: one change notification, one wake-up.
  -- Without idempotency keys every item is a new run: the insert returns them (seq follows the
  -- batch's order), with no second look-up of the rows just written.
  if not keyed then
    return query
      with inserted as (
        insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                                 lease_seconds, params, session_id, owner_id, idempotency_key,
                                 available_at, sweep_count, version, created_at, updated_at,
                                 template_version)
        select i.id, i.template, i.lane, 'queued', i.priority, 0, i.max_attempts,
               i.lease_seconds, i.params, i.session_id, i.owner_id, null, i.available_at, 0, 1,
               now(), now(), i.template_version
        from unnest(items) as i
        order by i.n
        returning *
      )
      select x.* from inserted x order by x.seq;
    return;
  end if;
  insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                           lease_seconds, params, session_id, owner_id, idempotency_key,
                           available_at, sweep_count, version, created_at, updated_at,
                           template_version)
  select i.id, i.template, i.lane, 'queued', i.priority, 0, i.max_attempts, i.lease_seconds,
         i.params, i.session_id, i.owner_id, i.idempotency_key, i.available_at, 0, 1, now(), now(),
         i.template_version
  from unnest(items) as i
  where i.reuse is null
  order by i.n
  on conflict ((coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
    where idempotency_key is not null do nothing;

  -- Each item's run: its own, the one it reuses, or (a concurrent enqueue with the same key won
  -- the race) the winner's.
  select array_agg(coalesce(own.id, win.id) order by i.n) into out_ids
  from unnest(items) as i
  left join public.runs own on own.id = coalesce(i.reuse, i.id)
  left join lateral (
    select y.id from public.runs y
    where own.id is null and y.idempotency_key = i.idempotency_key
      and coalesce(y.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
        = coalesce(i.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
  ) win on true;
  return query
    select x.* from unnest(out_ids) with ordinality as o(id, n)
    join public.runs x on x.id = o.id
    order by o.n;
end
$$;

create or replace function pulser_ops.complete_runs(worker_id text, items jsonb)
returns setof public.complete_batch_result
language plpgsql volatile set search_path = '' set plan_cache_mode = force_generic_plan as $$
-- Runs are found by "id = any(ids)", never by joining the items: that keeps the one cached generic
-- plan on the primary key however many runs the table holds.
declare
  ids uuid[];
begin
  select array_agg(x.run_id) into ids from jsonb_to_recordset(complete_runs.items) as x(run_id uuid);
  -- Locked in id order, so two batches over the same runs cannot deadlock; in a statement of
  -- its own, so the next one sees every event committed before the locks were granted.
  perform 1 from public.runs r where r.id = any(ids) order by r.id for no key update;
  return query
  with items as (
    select x.run_id, x.attempt, x.status, x.result, x.error, x.error_class,
           coalesce(x.retryable, true) as retryable, x.steps, x.events
    from jsonb_to_recordset(complete_runs.items)
      as x(run_id uuid, attempt integer, status text, result jsonb, error text,
           error_class text, retryable boolean, steps jsonb, events jsonb)
  ),
  locked as materialized (
    select r.id, r.status, r.worker_id, r.attempt, r.max_attempts, r.cancel_requested_at, r.template,
           r.template_version
    from public.runs r
    where r.id = any(ids)
  ),
  judged as (
    select i.*, l.status as now_status, l.worker_id as now_worker, l.attempt as now_attempt,
           l.max_attempts,
           coalesce(l.status = 'running' and l.worker_id = complete_runs.worker_id
                    and l.attempt = i.attempt, false) as go,
           coalesce(l.status = i.status and l.worker_id = complete_runs.worker_id
                    and l.attempt = i.attempt, false) as repeated,
           coalesce(i.error_class = any(t.non_retryable_errors), false) as class_final,
           -- A failure retries unless attempts are used up, the error is not retryable, or
           -- someone asked to cancel the run (then the failure is final).
           coalesce(i.status = 'failed' and i.retryable and l.attempt < l.max_attempts
                    and l.cancel_requested_at is null
                    and not coalesce(i.error_class = any(t.non_retryable_errors), false),
                    false) as retry,
           t.retry_backoff_seconds, t.retry_backoff_max_seconds, t.retry_jitter
    from items i
    left join locked l on l.id = i.run_id
    -- The retry policy of the template version the run was enqueued with (the current
    -- template only for a run enqueued before versions existed).
    left join lateral (
      select p.* from public.run_template_versions v
      cross join lateral jsonb_populate_record(null::public.run_templates, v.definition) p
      where v.template = l.template and v.version = l.template_version
      union all
      select c.* from public.run_templates c where c.name = l.template and l.template_version is null
    ) t on true
  ),
  decided as (
    select z.*,
           -- Exponential backoff with a cap; jitter spreads retries of runs that failed together.
           case when z.retry
                then least(z.retry_backoff_max_seconds,
                           z.retry_backoff_seconds * power(2::numeric, z.now_attempt - 1))
                     * (1 - z.retry_jitter * random()::numeric) end as delay
    from judged z
  ),
  done as (
    update public.runs r
       set status = case when d.retry then 'queued' else d.status end,
           finished_at = case when d.retry then null else now() end,
           worker_id = case when d.retry then null else r.worker_id end,
           lease_expires_at = null,
           available_at = case when d.retry
                               then now() + make_interval(secs => d.delay::double precision)
                               else r.available_at end,
           result = case when d.retry then r.result else d.result end,
           error = d.error,
           error_class = d.error_class,
           version = r.version + 1,
           updated_at = now()
      from decided d
     where r.id = any(ids) and r.id = d.run_id and d.go
    returning r.id, r.status, r.attempt, r.max_attempts, r.available_at, d.retry, d.delay,
              d.error, d.error_class, d.retryable, d.class_final
  ),
  -- Step rows that come with the completion (the worker's last step, skipped ones): the same
  -- upsert as record_run_step, written only for runs this call completes.
  steps as (
    insert into public.run_steps as st (run_id, attempt, idx, name, kind, status, started_at,
                                        finished_at, exit_code, error, output)
    select x.id, x.attempt, s.idx, s.name, s.kind, s.status, coalesce(s.started_at, now()),
           case when s.status <> 'running' then now() end, s.exit_code, s.error, s.output
    from done x
    join items i on i.run_id = x.id
    cross join lateral jsonb_to_recordset(coalesce(i.steps, '[]'))
      as s(idx integer, name text, kind text, status text, exit_code integer, error text,
           output jsonb, started_at timestamptz)
    on conflict on constraint run_steps_pkey do update
      set status = excluded.status, finished_at = excluded.finished_at,
          exit_code = excluded.exit_code, error = excluded.error, output = excluded.output
  ),
  -- Each completed run's seqs: its carried events first, then the terminal event. The runs were
  -- locked in an earlier statement, so max(seq) is the last committed one (see "Event seqs").
  numbered as (
    select x.id, x.attempt, i.events,
           (select coalesce(max(e.seq), 0) from public.run_events e where e.run_id = x.id) as last,
           coalesce(jsonb_array_length(case when jsonb_typeof(i.events) = 'array'
                                            then i.events end), 0) as carried
    from done x
    join items i on i.run_id = x.id
  ),
  -- One insert for a batch's carried events and terminal events: one set of checks, one
  -- notification.
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select n.id, n.last + v.o, v.e ->> 'kind', coalesce(v.e ->> 'level', 'info'),
           coalesce(v.e ->> 'message', ''), nullif(v.e -> 'data', 'null'), n.attempt,
           complete_runs.worker_id
    from numbered n
    cross join lateral jsonb_array_elements(n.events) with ordinality as v(e, o)
    where n.carried > 0
    union all
    select x.id, (select n.last + n.carried + 1 from numbered n where n.id = x.id),
           case when x.retry then 'retry_scheduled' else x.status end,
           case when x.retry then 'warn' when x.status = 'succeeded' then 'info'
                when x.status = 'cancelled' then 'warn' else 'error' end,
           case when x.retry
                then format('attempt %s of %s failed; retry in %ss: %s', x.attempt, x.max_attempts,
                            round(x.delay, 1), coalesce(x.error, 'no error message'))
                when x.status = 'succeeded' then format('succeeded on attempt %s', x.attempt)
                when x.status = 'cancelled' then format('cancelled on attempt %s', x.attempt)
                else format('failed on attempt %s of %s%s: %s', x.attempt, x.max_attempts,
                            case when not x.retryable or x.class_final then ' (not retryable)'
                                 else '' end,
                            coalesce(x.error, 'no error message')) end,
           case when x.retry
                then jsonb_build_object('delay_seconds', round(x.delay, 3),
                                        'error_class', x.error_class,
                                        'available_at', x.available_at)
                else jsonb_build_object('error_class', x.error_class) end,
           x.attempt, complete_runs.worker_id
    from done x
  )
  select d.run_id, d.attempt, d.go or d.repeated or rs.retry_at is not null,
         coalesce(x.status, case when rs.retry_at is not null then 'queued' end, d.now_status),
         coalesce(case when x.retry then x.available_at end, rs.retry_at),
         case when d.now_status is null then format('run %s not found', d.run_id)
              when not (d.go or d.repeated or rs.retry_at is not null)
              then format('lease lost: it is %s (worker %s, attempt %s)', d.now_status,
                          coalesce(d.now_worker, '-'), d.now_attempt) end
  from decided d left join done x on x.id = d.run_id
  -- A failure that was scheduled for retry, sent again (its reply was lost): the run is queued
  -- again, or claimed again by now, so it is not "the same status" as the call asked for; the
  -- retry event this worker's attempt wrote is what says the call was recorded. Answered as
  -- the first call was. Looked for only when the completion is not otherwise recorded.
  left join lateral (
    select (e.data ->> 'available_at')::timestamptz as retry_at
    from public.run_events e
    where not (d.go or d.repeated) and d.status = 'failed' and d.now_status is not null
      and e.run_id = d.run_id and e.kind = 'retry_scheduled' and e.attempt = d.attempt
      and e.worker_id = complete_runs.worker_id
    order by e.seq desc
    limit 1
  ) rs on true;
end
$$;

create or replace function pulser_ops.run_templates_compile() returns trigger
language plpgsql volatile security definer set search_path = '' as $$
declare
  rules jsonb := pulser_ops.schema_rules(new.params_schema, '{}');
begin
  insert into pulser_ops.template_params (template, defaults, walk)
  values (new.name,
          -- the defaults alone: what params_with_defaults adds to empty params
          pulser_ops.params_with_defaults(new.params_schema, '{}'),
          rules is null)
  on conflict (template) do update set defaults = excluded.defaults, walk = excluded.walk;
  delete from pulser_ops.template_params_rules r where r.template = new.name;
  insert into pulser_ops.template_params_rules (template, idx, path, kind, types, num, txt, val, names)
  select new.name, x.n - 1,
         array(select jsonb_array_elements_text(x.r -> 'path')), x.r ->> 'kind',
         case when x.r ? 'types' then array(select jsonb_array_elements_text(x.r -> 'types')) end,
         (x.r ->> 'num')::numeric, x.r ->> 'txt', x.r -> 'val',
         case when x.r ? 'names' then array(select jsonb_array_elements_text(x.r -> 'names')) end
  from jsonb_array_elements(coalesce(rules, '[]')) with ordinality as x(r, n);
  return null;
end
$$;
