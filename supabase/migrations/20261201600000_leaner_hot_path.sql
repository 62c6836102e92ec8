-- pulser-ops: the same claim, completion and notifications for less server work (issue 18).
--
-- Nothing that is recorded or refused changes; each statement does less to get there
-- (docs/benchmarks.md has the instruction counts, measured with cachegrind on a single-user
-- backend):
-- - caller_kind: no pg_roles scan for a direct connection (pg_has_role already answers yes for
--   a superuser);
-- - the NOTIFY triggers: one statement per firing instead of a query and a helper call
--   (pulser_ops.notify_changes is gone);
-- - complete_run checks its own arguments (no pass over a one-item JSON batch);
-- - completion_problem: one pass over the items for fields, step rows and events, in the same
--   order of precedence (the same first message);
-- - complete_runs: a completion's carried events and its terminal event in one insert.

create or replace function pulser_ops.caller_kind() returns text
language plpgsql stable set search_path = '' as $$
-- plpgsql, not sql: a SQL function with SET search_path is never inlined and is re-planned on
-- every call, and this runs in every API call (bench/experiments/caller_kind_plpgsql.sql).
declare
  r text := nullif(pg_catalog.current_setting('role'), 'none');
begin
  if r = 'service_role' then
    return 'service';
  elsif r = 'authenticated' then
    -- A token that names no user would own nothing and match every row owned by nobody (the
    -- service role's): refused here, so every operator call and policy refuses it.
    if coalesce(auth.jwt() ->> 'sub', '')
       !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      raise exception 'permission denied: the access token names no user (its JWT has no user id in "sub")'
        using errcode = '42501',
              hint = 'Operators call with a signed-in user''s access token; workers use the service role key.';
    end if;
    return case when coalesce(auth.jwt() -> 'app_metadata' ->> 'ops_role', '') = 'admin'
                then 'admin' else 'operator' end;
  elsif r = 'anon' then
    return 'anon';
  -- A superuser has every role (pg_has_role says so without a catalog scan of its own), so
  -- one call covers direct connections as a superuser or as a member of service_role.
  elsif pg_catalog.pg_has_role(coalesce(r, session_user), 'service_role', 'USAGE') then
    return 'service';
  end if;
  return 'none';
end
$$;

create or replace function pulser_ops.runs_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', 'runs', 'ids', case when x.n <= 150 then to_jsonb(x.ids) end)::text),
          case when x.wake is not null then pg_catalog.pg_notify('pulser_ops_wakeup', x.wake) end
  from (select count(*) as n, array_agg(r.id::text) as ids,
               string_agg(distinct r.lane, ',' order by r.lane)
                 filter (where r.status = 'queued' and r.available_at <= now()) as wake
        from new_rows r) x
  where x.n > 0;
  return null;
end
$$;

create or replace function pulser_ops.run_children_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', tg_table_name,
            'ids', case when cardinality(x.ids) <= 150 then to_jsonb(x.ids) end)::text)
  from (select array_agg(distinct r.run_id::text) as ids from new_rows r) x
  where x.ids is not null;
  return null;
end
$$;

create or replace function pulser_ops.workers_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', 'workers', 'ids', case when x.n <= 150 then to_jsonb(x.ids) end)::text)
  from (select count(*) as n, array_agg(w.id) as ids from new_rows w) x
  where x.n > 0;
  return null;
end
$$;

create or replace function pulser_ops.completion_problem(worker_id text, items jsonb) returns text
language plpgsql immutable set search_path = '' as $$
declare
  bad text;
begin
  if completion_problem.worker_id is null
     or char_length(completion_problem.worker_id) not between 1 and 200 then
    return 'worker_id: must be 1 to 200 characters';
  end if;
  if jsonb_typeof(completion_problem.items) is distinct from 'array' then
    return 'runs: expected an array of {"run_id", "attempt", "status", ...}';
  end if;
  if jsonb_array_length(completion_problem.items) > 1000 then
    return format('runs: at most 1000 per call (got %s)', jsonb_array_length(completion_problem.items));
  end if;
  select format('runs[%s]: expected an object', a.n - 1) into bad
  from jsonb_array_elements(completion_problem.items) with ordinality as a(e, n)
  where jsonb_typeof(a.e) <> 'object'
  order by a.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select p.problem into bad from (
    select 1 as pass, x.n,
           case when x.run_id is null then format('runs[%s].run_id: required', x.n - 1)
                when x.attempt is null then format('runs[%s].attempt: required', x.n - 1)
                when x.status is null or x.status not in ('succeeded', 'failed', 'cancelled')
                then format('runs[%s].status: must be succeeded, failed or cancelled (got %s)',
                            x.n - 1, coalesce(x.status, 'null'))
                else format('runs[%s].error: at most 65536 bytes', x.n - 1) end as problem
    from rows from (jsonb_to_recordset(completion_problem.items)
                    as (run_id uuid, attempt integer, status text, error text))
      with ordinality as x(run_id, attempt, status, error, n)
    where x.run_id is null or x.attempt is null or x.status is null
       or x.status not in ('succeeded', 'failed', 'cancelled') or octet_length(x.error) > 65536
    union all
    select 2, x.n,
           format('runs[%s].steps: %s', x.n - 1,
                  case when jsonb_typeof(x.steps) <> 'array' then 'expected an array of step rows'
                       else format('step %s: needs idx >= 0, a name of 1 to 200 characters, a '
                                   'kind (shell, http, python, mcp, docker) and a status '
                                   '(running, succeeded, failed, cancelled, skipped)', st.n - 1) end)
    from rows from (jsonb_to_recordset(completion_problem.items) as (steps jsonb))
      with ordinality as x(steps, n)
    left join lateral (
      select e.n from jsonb_array_elements(case when jsonb_typeof(x.steps) = 'array'
                                                then x.steps else '[]' end) with ordinality as e(v, n)
      where jsonb_typeof(e.v) <> 'object'
         or coalesce(e.v ->> 'idx', '') !~ '^[0-9]{1,9}$'
         or char_length(coalesce(e.v ->> 'name', '')) not between 1 and 200
         or coalesce(e.v ->> 'kind', '') not in ('shell', 'http', 'python', 'mcp', 'docker')
         or coalesce(e.v ->> 'status', '') not in ('running', 'succeeded', 'failed', 'cancelled', 'skipped')
      order by e.n limit 1
    ) st on true
    where x.steps is not null and jsonb_typeof(x.steps) <> 'null'
      and (jsonb_typeof(x.steps) <> 'array' or st.n is not null)
    union all
    -- Carried events: the checks events.append makes, named by completion and position.
    select 3, x.n,
           format('runs[%s].events: %s', x.n - 1,
                  case when jsonb_typeof(x.events) <> 'array' then 'expected an array of events'
                       else format('event %s: %s', ev.o - 1, ev.problem) end)
    from rows from (jsonb_to_recordset(completion_problem.items) as (events jsonb))
      with ordinality as x(events, n)
    left join lateral (
      select e.o, e.problem
      from (
        select v.o, case
          when jsonb_typeof(v.e) <> 'object' then 'expected an object'
          when jsonb_typeof(v.e -> 'kind') is distinct from 'string' then 'kind is required'
          when v.e ->> 'kind' !~ '^[a-z][a-z0-9_.]{0,63}$'
          then format('kind %L must match [a-z][a-z0-9_.]*', v.e ->> 'kind')
          when coalesce(v.e ->> 'level', 'info') not in ('debug', 'info', 'warn', 'error')
          then format('level %L must be debug, info, warn or error', v.e ->> 'level')
          when octet_length(coalesce(v.e ->> 'message', '')) > 16384
          then 'message is longer than 16384 bytes' end as problem
        from jsonb_array_elements(case when jsonb_typeof(x.events) = 'array'
                                       then x.events else '[]' end) with ordinality as v(e, o)
      ) e
      where e.problem is not null
      order by e.o limit 1
    ) ev on true
    where x.events is not null and jsonb_typeof(x.events) <> 'null'
      and (jsonb_typeof(x.events) <> 'array' or ev.o is not null)
  ) p
  order by p.pass, p.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select case when t.events > 5000
              then format('runs: at most 5000 events per call (got %s)', t.events)
              when t.twice is not null
              then format('runs: run %s appears more than once', t.twice) end
    into bad
  from (select (select sum(jsonb_array_length(x.events))
                from jsonb_to_recordset(completion_problem.items) as x(events jsonb)
                where jsonb_typeof(x.events) = 'array') as events,
               (select x.run_id from jsonb_to_recordset(completion_problem.items) as x(run_id uuid)
                group by x.run_id having count(*) > 1 limit 1) as twice) t;
  return bad;
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
    select r.id, r.status, r.worker_id, r.attempt, r.max_attempts, r.cancel_requested_at, r.template
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
    left join public.run_templates t on t.name = l.template
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

create or replace function public.complete_run(
  run_id uuid, worker_id text, attempt integer, status text, result jsonb default null,
  error text default null, error_class text default null, retryable boolean default true
) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  res public.complete_batch_result;
  r public.runs;
begin
  perform pulser_ops.require_service('complete runs');
  if complete_run.worker_id is null or char_length(complete_run.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  elsif complete_run.run_id is null then
    raise exception 'run_id: required' using errcode = 'PO400';
  elsif complete_run.attempt is null then
    raise exception 'attempt: required' using errcode = 'PO400';
  elsif complete_run.status is null
        or complete_run.status not in ('succeeded', 'failed', 'cancelled') then
    raise exception 'status: must be succeeded, failed or cancelled (got %)',
      coalesce(complete_run.status, 'null') using errcode = 'PO400';
  elsif octet_length(complete_run.error) > 65536 then
    raise exception 'error: at most 65536 bytes' using errcode = 'PO400';
  end if;
  select * into res from pulser_ops.complete_runs(complete_run.worker_id, jsonb_build_array(
    jsonb_build_object('run_id', complete_run.run_id, 'attempt', complete_run.attempt,
                       'status', complete_run.status, 'result', complete_run.result,
                       'error', complete_run.error, 'error_class', complete_run.error_class,
                       'retryable', complete_run.retryable)));
  if res.status is null then
    raise exception 'run % not found', complete_run.run_id using errcode = 'PO404';
  end if;
  if not res.ok then
    perform pulser_ops.raise_fenced(complete_run.run_id, complete_run.worker_id,
                                    complete_run.attempt, 'complete');
  end if;
  select * into r from public.runs x where x.id = complete_run.run_id;
  return r;
end
$$;

-- Its last callers were the trigger functions above.
drop function pulser_ops.notify_changes(text, text[]);
