-- pulser-ops: the state machine of a run, written once.
--
-- Which moves a run may make is stated once, by the run guard below. The functions that move
-- runs: enqueue_runs (a new queued run), claim_runs, heartbeat_run(s) (extends the lease),
-- cancel_run, complete_run(s) (finished, or queued again for a retry), release_run (queued
-- again, the attempt given back) and sweep_expired_runs (leases that ran out).
--
-- Every worker call is fenced: a worker acts on a run only while it holds the run's lease (same
-- worker, same attempt, still running); otherwise the call is refused with PO410 (raise_fenced).

-- ---------------------------------------------------------------------------
-- Run guard: which moves a run may make, version, updated_at
-- ---------------------------------------------------------------------------

-- Three row triggers, each stating one rule in its WHEN clause and nowhere else:
--   runs_guard_finished  a finished run never changes                       (PO411)
--                        (but for losing its session: deleting a session detaches its runs,
--                        see delete_session)
--   runs_guard_moves     the moves a run may make                           (PO400 otherwise)
--   runs_stamp           every change bumps version and sets updated_at
-- A WHEN clause is evaluated without calling a function, and the hot paths (claim, complete,
-- sweep) make only legal moves and set version and updated_at themselves, so their rows call
-- no trigger function at all (calling a plpgsql guard per row was a tenth of sweeping 10,000
-- runs). Any other UPDATE still meets the same rules. BEFORE triggers fire in name order, so a
-- change to a finished run is refused as such (PO411) before its move is looked at.

-- Words the refusal; which rule was broken is the trigger's argument.
create function pulser_ops.runs_refuse() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_argv[0] = 'finished' then
    raise exception 'run % is already % and cannot change', old.id, old.status
      using errcode = 'PO411';
  end if;
  raise exception 'run % cannot go from % to %', old.id, old.status, new.status
    using errcode = 'PO400';
end
$$;

create function pulser_ops.runs_stamp() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.version := old.version + 1;
  new.updated_at := now();
  return new;
end
$$;

create trigger runs_guard_finished before update on public.runs
  for each row
  when (old.status in ('succeeded', 'failed', 'cancelled')
        and not (old.session_id is not null and new.session_id is null
                 and to_jsonb(new) - '{session_id,version,updated_at}'::text[]
                   = to_jsonb(old) - '{session_id,version,updated_at}'::text[]))
  execute function pulser_ops.runs_refuse('finished');

create trigger runs_guard_moves before update on public.runs
  for each row
  when (new.status is distinct from old.status and not (
          (old.status = 'queued' and new.status in ('running', 'cancelled'))
       or (old.status = 'running' and new.status in ('queued', 'succeeded', 'failed', 'cancelled'))))
  execute function pulser_ops.runs_refuse('move');

create trigger runs_stamp before update on public.runs
  for each row
  when (new.version is distinct from old.version + 1 or new.updated_at is distinct from now())
  execute function pulser_ops.runs_stamp();

-- Raise the error that explains why a fenced call on run_id was refused.
create function pulser_ops.raise_fenced(run_id uuid, worker_id text, attempt integer, action text)
returns void
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
begin
  select * into r from public.runs where id = raise_fenced.run_id;
  if not found then
    raise exception 'run % not found', raise_fenced.run_id using errcode = 'PO404';
  end if;
  raise exception 'lease lost: cannot % run % as worker % attempt %; it is % (worker %, attempt %)',
    action, raise_fenced.run_id, raise_fenced.worker_id, raise_fenced.attempt,
    r.status, coalesce(r.worker_id, '-'), r.attempt
    using errcode = 'PO410',
          detail = jsonb_build_object('status', r.status, 'worker_id', r.worker_id,
                                      'attempt', r.attempt)::text;
end
$$;

-- ---------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------

-- A batch is read once and set-based: every item's fields typed and checked, its template and
-- session looked up and its params checked against the template's compiled schema
-- (pulser_ops.template_params, compiled when the template is written), in one statement, with no
-- plpgsql per item; the first problem (by position, then in the order below) is raised with the
-- code and message it always had; then one insert writes the batch, in its order. Per item:
--   an object · known fields · template (a string, an existing template) · params (an object,
--   valid against the schema, its defaults filled) · lane · priority · max_attempts · run_after ·
--   idempotency_key · session_id (a uuid, a session the caller may use) · the idempotency key
--   (the same key returns the same run, per owner; with another template or params: conflict).

-- One item of a batch as enqueue_runs reads it: what to insert, or why it is refused.
create type pulser_ops.enqueue_item as (
  n integer, id uuid, template text, lane text, priority integer, max_attempts integer,
  lease_seconds integer, params jsonb, session_id uuid, owner_id uuid, idempotency_key text,
  available_at timestamptz,
  -- The run this item is answered with instead: an earlier one with its idempotency key.
  reuse uuid,
  -- Its first problem, numbered in the order enqueue_runs checks (pulser_ops.enqueue_refuse
  -- words it): reading the batch compiles no message.
  refused smallint,
  -- The version of its template it is enqueued with (the worker runs that version).
  template_version integer
);

-- The value, or null when it is not a timestamp (the two errors enqueue reports as such).
create function pulser_ops.try_timestamptz(value text) returns timestamptz
language plpgsql stable set search_path = '' as $$
begin
  return value::timestamptz;
exception when datetime_field_overflow or invalid_datetime_format then
  return null;
end
$$;

-- The value, or null when it is not a uuid.
create function pulser_ops.try_uuid(value text) returns uuid
language plpgsql immutable set search_path = '' as $$
begin
  return value::uuid;
exception when invalid_text_representation then
  return null;
end
$$;

-- Whether params break a rule of their template's compiled schema (see template_params).
-- plpgsql, not sql: its plan is cached for the session (a SQL function with SET search_path is
-- planned again for every statement that calls it, and a single enqueue is one statement).
create function pulser_ops.params_break_rules(template text, params jsonb) returns boolean
language plpgsql stable set search_path = '' as $$
begin
  return exists (
    select 1 from pulser_ops.template_params_rules r
    cross join lateral (select params_break_rules.params #> r.path as v) x
    where r.template = params_break_rules.template and x.v is not null and case r.kind
      when 'type' then not (jsonb_typeof(x.v) = any(r.types)
                            or ('integer' = any(r.types) and jsonb_typeof(x.v) = 'number'
                                and (x.v #>> '{}')::numeric % 1 = 0))
      when 'enum' then not r.val @> jsonb_build_array(x.v)
      when 'const' then r.val <> x.v
      when 'minimum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric < r.num
      when 'maximum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric > r.num
      when 'exclusiveMinimum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric <= r.num
      when 'exclusiveMaximum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric >= r.num
      when 'minLength' then jsonb_typeof(x.v) = 'string' and char_length(x.v #>> '{}') < r.num
      when 'maxLength' then jsonb_typeof(x.v) = 'string' and char_length(x.v #>> '{}') > r.num
      when 'pattern' then jsonb_typeof(x.v) = 'string' and (x.v #>> '{}') !~ r.txt
      when 'minItems' then jsonb_typeof(x.v) = 'array' and jsonb_array_length(x.v) < r.num
      when 'maxItems' then jsonb_typeof(x.v) = 'array' and jsonb_array_length(x.v) > r.num
      when 'required' then jsonb_typeof(x.v) = 'object' and not x.v ? r.txt
      when 'closed' then jsonb_typeof(x.v) = 'object'
                         and exists (select 1 from jsonb_object_keys(x.v) as o(key)
                                     where o.key <> all(r.names))
      else true end
  );
end
$$;

-- Raise the error of an item enqueue_runs refused (see enqueue_item.refused), worded from the
-- item as it was sent, as the loop that read batches one item at a time worded it.
create function pulser_ops.enqueue_refuse(item jsonb, bad pulser_ops.enqueue_item)
returns void
language plpgsql stable set search_path = '' as $$
declare
  path text := format('runs[%s]', bad.n - 1);
  field text;
  want text;
  msg text;
begin
  field := case bad.refused when 3 then 'template' when 5 then 'params' when 7 then 'lane'
                            when 9 then 'priority' when 11 then 'max_attempts' when 13 then 'run_after'
                            when 15 then 'idempotency_key' when 17 then 'session_id' end;
  want := case bad.refused when 5 then 'object' when 9 then 'integer' when 11 then 'integer'
                           else 'string' end;
  if field is not null then
    raise exception '%.%: expected %, got %', path, field, want, jsonb_typeof(item -> field)
      using errcode = 'PO400';
  end if;
  case bad.refused
  when 1 then
    raise exception '%: expected an object', path using errcode = 'PO400';
  when 2 then
    raise exception '%.%: unknown field', path,
      (select f.key from jsonb_object_keys(item) with ordinality as f(key, m)
        where f.key not in ('template', 'params', 'lane', 'priority', 'run_after',
                            'idempotency_key', 'session_id', 'max_attempts')
        order by f.m limit 1)
      using errcode = 'PO400';
  when 4 then
    raise exception 'unknown template %', coalesce(item ->> 'template', '(missing)')
      using errcode = 'PO404', detail = path || '.template';
  when 6 then
    msg := pulser_ops.schema_violation(
      (select t.params_schema from public.run_templates t where t.name = bad.template),
      bad.params, 'params');
    raise exception 'invalid params for template %: %', bad.template, msg
      using errcode = 'PO422', detail = split_part(msg, ':', 1);
  when 8 then
    raise exception '%.lane: must be one of A, B, C, D (got %)', path, item ->> 'lane'
      using errcode = 'PO400';
  when 10 then
    raise exception '%.priority: must be between -100 and 100 (got %)', path,
      trunc((item ->> 'priority')::numeric) using errcode = 'PO400';
  when 12 then
    raise exception '%.max_attempts: must be between 1 and 100 (got %)', path,
      trunc((item ->> 'max_attempts')::numeric) using errcode = 'PO400';
  when 14 then
    raise exception '%.run_after: not a timestamp (%)', path, item ->> 'run_after'
      using errcode = 'PO400';
  when 16 then
    raise exception '%.idempotency_key: must be 1 to 200 characters', path using errcode = 'PO400';
  when 18 then
    raise exception '%.session_id: not a uuid (%)', path, item ->> 'session_id'
      using errcode = 'PO400';
  when 19 then
    raise exception '%.session_id: session % not found', path, (item ->> 'session_id')::uuid
      using errcode = 'PO404';
  when 20 then
    raise exception 'idempotency key % was already used for a different run (%)',
      bad.idempotency_key, bad.reuse using errcode = 'PO409', detail = bad.reuse::text;
  end case;
end
$$;

create function pulser_ops.enqueue_runs(runs jsonb) returns setof public.runs
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

create function public.enqueue_runs(runs jsonb) returns setof public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.enqueue_runs(enqueue_runs.runs)
$$;

create function public.enqueue_run(
  template text, params jsonb default '{}', lane text default null, priority integer default 0,
  run_after timestamptz default null, idempotency_key text default null,
  session_id uuid default null, max_attempts integer default null
) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.enqueue_runs(jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
    'template', enqueue_run.template, 'params', enqueue_run.params, 'lane', enqueue_run.lane,
    'priority', enqueue_run.priority, 'run_after', enqueue_run.run_after,
    'idempotency_key', enqueue_run.idempotency_key, 'session_id', enqueue_run.session_id,
    'max_attempts', enqueue_run.max_attempts))))
$$;

-- ---------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------

create function public.claim_runs(
  worker_id text, lanes text[] default '{A,B,C,D}', max_runs integer default 1,
  lease_seconds integer default null
) returns setof public.runs
language plpgsql volatile set search_path = '' set plan_cache_mode = force_generic_plan as $$
-- Two statements, each with a generic plan that is good for any argument: the pick walks
-- runs_claim_idx per lane, the update finds the picked rows by primary key. As one statement, the
-- generic plan hash-joined the whole runs table (bench/experiments/claim_generic_plan.sql).
-- Forced, because with "= any(lanes)" PostgreSQL rates the generic plan costlier than a custom
-- one and re-plans every call, and planning was most of the cost of a single claim.
declare
  capped text[];
  ids uuid[];
begin
  perform pulser_ops.require_service('claim runs');
  if claim_runs.worker_id is null or char_length(claim_runs.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  end if;
  if claim_runs.max_runs is null or claim_runs.max_runs not between 1 and 1000 then
    raise exception 'max_runs: must be between 1 and 1000 (got %)', claim_runs.max_runs
      using errcode = 'PO400';
  end if;
  if claim_runs.lease_seconds is not null and claim_runs.lease_seconds not between 5 and 86400 then
    raise exception 'lease_seconds: must be between 5 and 86400 (got %)', claim_runs.lease_seconds
      using errcode = 'PO400';
  end if;
  if claim_runs.lanes is null or not claim_runs.lanes <@ array['A', 'B', 'C', 'D'] then
    raise exception 'lanes: must be a subset of A, B, C, D (got %)', claim_runs.lanes
      using errcode = 'PO400';
  end if;

  -- Claimers of capped lanes take turns (lanes locked in id order: no deadlocks), so two of them
  -- can never both see the last free slot.
  select array_agg(l.id order by l.id) into capped from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused and l.max_running is not null;
  if capped is not null then
    perform 1 from public.lanes l where l.id = any(capped) order by l.id for no key update;
  end if;

  with slots as (
    select l.id as lane,
           case when l.max_running is null then claim_runs.max_runs
                else greatest(0, l.max_running - (select count(*) from public.runs x
                                                  where x.status = 'running' and x.lane = l.id))::int
           end as free
    from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused
  ),
  -- Oldest first within a priority; seq (enqueue order) breaks ties of created_at, which every
  -- run of one create_many shares, so a batch is claimed first-in first-out and a swept run
  -- (it keeps created_at and seq) goes back to its place, ahead of the rest of its batch.
  -- runs_claim_idx has this order: the pick reads the first rows of the index, never sorts.
  picked as (
    select c.id, c.priority, c.created_at, c.seq
    from slots s
    cross join lateral (
      select r.id, r.priority, r.created_at, r.seq from public.runs r
      where r.status = 'queued' and r.lane = s.lane and r.available_at <= now()
      order by r.priority desc, r.created_at, r.seq
      limit least(s.free, claim_runs.max_runs)
      for no key update skip locked
    ) c
    where s.free > 0
    order by c.priority desc, c.created_at, c.seq
    limit claim_runs.max_runs
  )
  select array_agg(p.id) into ids from picked p;
  if ids is null then
    return;
  end if;

  return query
  with claimed as (
    update public.runs r
       set status = 'running',
           attempt = r.attempt + 1,
           worker_id = claim_runs.worker_id,
           claimed_at = now(),
           heartbeat_at = now(),
           -- The claim's lease (if given) becomes the run's, so heartbeats extend by the same.
           lease_seconds = coalesce(claim_runs.lease_seconds, r.lease_seconds),
           lease_expires_at = now() + make_interval(secs => coalesce(claim_runs.lease_seconds, r.lease_seconds)),
           version = r.version + 1,
           updated_at = now()
     where r.id = any(ids)
    returning r.*
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    -- The runs were locked by the pick above, in an earlier statement: see "Event seqs".
    select c.id, (select coalesce(max(e.seq), 0) + 1 from public.run_events e where e.run_id = c.id),
           'claimed', 'info',
           format('claimed by %s (attempt %s of %s)', c.worker_id, c.attempt, c.max_attempts),
           jsonb_build_object('lease_expires_at', c.lease_expires_at),
           c.attempt, c.worker_id
    from claimed c
  )
  select c.* from claimed c order by c.priority desc, c.created_at, c.seq;
end
$$;

-- ---------------------------------------------------------------------------
-- Heartbeat (fenced by run, worker and attempt)
-- ---------------------------------------------------------------------------

create type public.heartbeat_result as (
  run_id uuid, attempt integer, cancel_requested boolean, lease_expires_at timestamptz
);

create function public.heartbeat_run(
  run_id uuid, worker_id text, attempt integer, lease_seconds integer default null
) returns public.heartbeat_result
language plpgsql volatile set search_path = '' as $$
declare
  res public.heartbeat_result;
begin
  perform pulser_ops.require_service('heartbeat runs');
  if heartbeat_run.lease_seconds is not null and heartbeat_run.lease_seconds not between 5 and 86400 then
    raise exception 'lease_seconds: must be between 5 and 86400' using errcode = 'PO400';
  end if;
  update public.runs r
     set heartbeat_at = now(),
         lease_expires_at = now() + make_interval(secs => coalesce(heartbeat_run.lease_seconds, r.lease_seconds))
   where r.id = heartbeat_run.run_id and r.status = 'running'
     and r.worker_id = heartbeat_run.worker_id and r.attempt = heartbeat_run.attempt
  returning r.id, r.attempt, r.cancel_requested_at is not null, r.lease_expires_at into res;
  if not found then
    perform pulser_ops.raise_fenced(heartbeat_run.run_id, heartbeat_run.worker_id,
                                    heartbeat_run.attempt, 'heartbeat');
  end if;
  return res;
end
$$;

create type public.heartbeat_batch_result as (
  run_id uuid, attempt integer, ok boolean, cancel_requested boolean, lease_expires_at timestamptz
);

-- Every run a worker holds in one statement; runs whose lease moved on come back with ok = false.
create function public.heartbeat_runs(worker_id text, runs jsonb)
returns setof public.heartbeat_batch_result
language plpgsql volatile set search_path = '' as $$
begin
  perform pulser_ops.require_service('heartbeat runs');
  if jsonb_typeof(heartbeat_runs.runs) is distinct from 'array' then
    raise exception 'runs: expected an array of {"run_id", "attempt"}' using errcode = 'PO400';
  end if;
  update public.workers w set last_seen_at = now() where w.id = heartbeat_runs.worker_id;
  -- Lock the worker's runs in id order before updating them, as complete_runs and
  -- append_run_events do: the update alone locked them in join order, and a heartbeat racing
  -- the same worker's batch completion over two runs could deadlock with it.
  perform 1 from public.runs r
   where r.id = any(array(select x.run_id from jsonb_to_recordset(heartbeat_runs.runs) as x(run_id uuid)))
     and r.status = 'running' and r.worker_id = heartbeat_runs.worker_id
   order by r.id for no key update;
  return query
  with wanted as (
    select x.run_id, x.attempt from jsonb_to_recordset(heartbeat_runs.runs) as x(run_id uuid, attempt integer)
  ),
  beat as (
    update public.runs r
       set heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => r.lease_seconds)
      from wanted w
     where r.id = w.run_id and r.attempt = w.attempt and r.status = 'running'
       and r.worker_id = heartbeat_runs.worker_id
    returning r.id, r.attempt, r.cancel_requested_at is not null as cancel_requested, r.lease_expires_at
  )
  select w.run_id, w.attempt, b.id is not null, coalesce(b.cancel_requested, false), b.lease_expires_at
  from wanted w left join beat b on b.id = w.run_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Cancel
-- ---------------------------------------------------------------------------

create function pulser_ops.cancel_run(run_id uuid, reason text) returns public.runs
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.runs;
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: anonymous callers may not cancel runs' using errcode = '42501';
  end if;
  if cancel_run.reason is not null and char_length(cancel_run.reason) > 1000 then
    raise exception 'reason: at most 1000 characters' using errcode = 'PO400';
  end if;
  r := pulser_ops.lock_run_for(cancel_run.run_id, 'cancel');
  if r.status in ('succeeded', 'failed', 'cancelled') then
    raise exception 'run % is already %', r.id, r.status
      using errcode = 'PO411', detail = jsonb_build_object('status', r.status)::text;
  end if;
  if r.status = 'queued' then
    update public.runs x
       set status = 'cancelled', finished_at = now(), cancel_requested_at = now(),
           cancel_reason = cancel_run.reason
     where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'cancelled', 'warn',
      format('cancelled while queued by %s%s', who, coalesce(': ' || cancel_run.reason, '')),
      jsonb_build_object('reason', cancel_run.reason, 'by', who), r.attempt, null);
  elsif r.cancel_requested_at is null then
    update public.runs x
       set cancel_requested_at = now(), cancel_reason = cancel_run.reason
     where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'cancel_requested', 'warn',
      format('cancel requested by %s%s', who, coalesce(': ' || cancel_run.reason, '')),
      jsonb_build_object('reason', cancel_run.reason, 'by', who), r.attempt, r.worker_id);
  end if;
  return r;
end
$$;

create function public.cancel_run(run_id uuid, reason text default null) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.cancel_run(cancel_run.run_id, cancel_run.reason)
$$;

-- Run now: a queued run that waits (run_after, or a retry's backoff) becomes claimable at once,
-- as Oban's and Procrastinate's "retry now" do. Recorded on the run's timeline (who, and when
-- it was due). A run already due is left as it is (no event): calling it twice is harmless.
-- A running run cannot be moved (PO409); a finished one is AlreadyTerminal (PO411). The
-- runs_notify trigger wakes the lane's workers, as for a new run.
create function pulser_ops.run_now(run_id uuid) returns public.runs
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.runs;
  was timestamptz;
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
begin
  r := pulser_ops.lock_run_for(run_now.run_id, 'move');
  if r.status in ('succeeded', 'failed', 'cancelled') then
    raise exception 'run % is already %', r.id, r.status
      using errcode = 'PO411', detail = jsonb_build_object('status', r.status)::text;
  end if;
  if r.status = 'running' then
    raise exception 'run % is running: only a queued run can be moved to now', r.id
      using errcode = 'PO409';
  end if;
  if r.available_at > now() then
    was := r.available_at;
    update public.runs x set available_at = now() where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'run_now', 'info',
      format('moved to now by %s (it was due at %s)', who,
             to_char(was at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')),
      jsonb_build_object('by', who, 'was_due', was), r.attempt, null);
  end if;
  return r;
end
$$;

create function public.run_now(run_id uuid) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.run_now(run_now.run_id)
$$;

-- ---------------------------------------------------------------------------
-- Complete: a batch of a worker's runs, fenced per run
-- ---------------------------------------------------------------------------

-- complete_runs(worker_id, runs) completes a whole batch of a worker's runs in one statement,
-- fenced per run: runs whose lease moved on come back with ok = false instead of failing the
-- batch. complete_run is the same code for one run, so the retry and backoff rules live once.
--
-- A completion may carry the run's events that are not yet sent (runs[].events: an array of
-- {"kind", "level", "message", "data"}; attempt and worker come from the completion), so a
-- short run costs one call, not an append and a completion. They are written in the
-- completion's transaction, with the seqs right before the terminal event's, and only when the
-- completion is recorded now: a repeated completion does not write them twice, and for a
-- refused one (lease lost) nothing is written (the worker appends them itself then). They are
-- checked like events.append checks events (kind, level, message size), at most 5000 per call,
-- before anything is written.
--
-- A step row that comes with a completion may carry "started_at": the reference worker does not
-- write the last step's "running" row when the step ends within a moment, so its final row,
-- sent with the completion, is the step's first and says when the step started (without it, the
-- row would be stamped with the completion's time). An existing row keeps its own started_at
-- (the upsert never changes it). A malformed timestamp fails the call like any other bad value
-- (22007/22008: InvalidInput), before anything is written.

-- ok: this completion is recorded (now, or by an identical earlier call). status: the run's
-- status after the call ('queued' when a failure was scheduled for retry at retry_at). When not
-- ok, status is what the run is now (null if there is no such run) and detail says why.
create type public.complete_batch_result as (
  run_id uuid, attempt integer, ok boolean, status text, retry_at timestamptz, detail text
);

-- The first thing wrong with a batch of completions (by position), or null. Checked in order:
-- the arguments, each item's shape, then (in one pass over the items) its fields, its step rows
-- and its carried events, each kind of problem before the next; then the batch's totals.
create function pulser_ops.completion_problem(worker_id text, items jsonb) returns text
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

-- The checked core of complete_run and complete_runs: items were validated by the caller.
create function pulser_ops.complete_runs(worker_id text, items jsonb)
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

create function public.complete_runs(worker_id text, runs jsonb)
returns setof public.complete_batch_result
language plpgsql volatile set search_path = '' as $$
declare
  bad text;
begin
  perform pulser_ops.require_service('complete runs');
  bad := pulser_ops.completion_problem(complete_runs.worker_id, complete_runs.runs);
  if bad is not null then
    raise exception '%', bad using errcode = 'PO400';
  end if;
  return query select * from pulser_ops.complete_runs(complete_runs.worker_id, complete_runs.runs);
end
$$;
comment on function public.complete_runs(text, jsonb) is
  'Complete a batch of a worker''s runs, each fenced by run, worker and attempt; runs whose lease moved on come back with ok = false.';

-- One run: its arguments are checked here (the same messages complete_runs gives for a batch,
-- without the runs[0]. prefix), then it is complete_runs' core for a batch of one.
create function public.complete_run(
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

-- A worker shutting down gives the run back without using up an attempt.
create function public.release_run(
  run_id uuid, worker_id text, attempt integer, reason text default null
) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
begin
  perform pulser_ops.require_service('release runs');
  update public.runs x
     set status = 'queued', attempt = x.attempt - 1, worker_id = null, lease_expires_at = null,
         available_at = now()
   where x.id = release_run.run_id and x.status = 'running'
     and x.worker_id = release_run.worker_id and x.attempt = release_run.attempt
  returning x.* into r;
  if not found then
    perform pulser_ops.raise_fenced(release_run.run_id, release_run.worker_id,
                                    release_run.attempt, 'release');
  end if;
  perform pulser_ops.add_event(r.id, 'released', 'warn',
    format('released by %s%s; the attempt was given back', release_run.worker_id,
           coalesce(': ' || release_run.reason, '')),
    jsonb_build_object('reason', release_run.reason), release_run.attempt, release_run.worker_id);
  return r;
end
$$;

-- ---------------------------------------------------------------------------
-- Sweep
-- ---------------------------------------------------------------------------

-- lane: for the sweeper's per-lane counters (pulser_sweeper_requeued_total{lane}, ...).
create type public.sweep_result as (
  run_id uuid, action text, attempt integer, worker_id text, stuck_for_seconds numeric, lane text
);

-- Requeue (or fail, after the last attempt; or cancel, when a cancel was requested) runs whose
-- lease expired. The expiry is re-checked on the locked row, so a heartbeat or completion that
-- committed first always wins.

create function public.sweep_expired_runs(max_runs integer default 500)
returns setof public.sweep_result
language plpgsql volatile set search_path = '' as $$
declare
  ids uuid[];
begin
  perform pulser_ops.require_service('sweep runs');
  if sweep_expired_runs.max_runs is null or sweep_expired_runs.max_runs not between 1 and 10000 then
    raise exception 'max_runs: must be between 1 and 10000' using errcode = 'PO400';
  end if;
  -- Pick and lock first, in a statement of its own (see "Event seqs"). No "order by
  -- lease_expires_at": leases are not indexed (heartbeats stay HOT), so ordering sorted every
  -- running run on every batch; sweep_once loops until a batch comes back short, so every
  -- expired run is swept in the same pass whatever the order.
  select array_agg(x.id) into ids from (
    select r.id from public.runs r
    where r.status = 'running' and r.lease_expires_at < now()
    limit sweep_expired_runs.max_runs
    for no key update skip locked
  ) x;
  if ids is null then
    return;
  end if;
  return query
  with expired as materialized (
    select r.id, r.worker_id as old_worker, r.heartbeat_at as old_beat
    from public.runs r
    where r.id = any(ids)
  ),
  swept as (
    update public.runs r
       set status = case when r.cancel_requested_at is not null then 'cancelled'
                         when r.attempt >= r.max_attempts then 'failed' else 'queued' end,
           finished_at = case when r.cancel_requested_at is not null or r.attempt >= r.max_attempts
                              then now() end,
           worker_id = case when r.cancel_requested_at is not null or r.attempt >= r.max_attempts
                            then r.worker_id end,
           lease_expires_at = null,
           available_at = now(),
           sweep_count = r.sweep_count + 1,
           error = case when r.cancel_requested_at is not null
                        then format('cancelled: worker %s stopped heartbeating after the cancel request', r.worker_id)
                        when r.attempt >= r.max_attempts
                        then format('lease expired on the last attempt (%s of %s): worker %s stopped heartbeating',
                                    r.attempt, r.max_attempts, r.worker_id)
                        else r.error end,
           error_class = case when r.cancel_requested_at is null and r.attempt >= r.max_attempts
                              then 'lease_expired' else r.error_class end,
           version = r.version + 1,
           updated_at = now()
      from expired e
     where r.id = any(ids) and r.id = e.id and r.status = 'running' and r.lease_expires_at < now()
    returning r.id, r.status, r.attempt, r.max_attempts, e.old_worker, e.old_beat, r.lane
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select s.id, (select coalesce(max(e.seq), 0) + 1 from public.run_events e where e.run_id = s.id),
           'swept', case when s.status = 'failed' then 'error' else 'warn' end,
           format('lease of worker %s expired (last heartbeat %ss ago); %s', s.old_worker,
                  round(extract(epoch from now() - s.old_beat)::numeric, 1),
                  case s.status
                    when 'failed' then format('failed: attempt %s was the last of %s', s.attempt, s.max_attempts)
                    when 'cancelled' then 'cancelled, as requested'
                    else format('requeued after attempt %s of %s', s.attempt, s.max_attempts) end),
           jsonb_build_object('old_worker_id', s.old_worker, 'action',
                              case s.status when 'queued' then 'requeued' else s.status end),
           s.attempt, s.old_worker
    from swept s
  )
  select s.id, case s.status when 'queued' then 'requeued' else s.status end, s.attempt,
         s.old_worker, round(extract(epoch from now() - s.old_beat)::numeric, 3), s.lane
  from swept s;
end
$$;
