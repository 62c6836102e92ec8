-- pulser-ops: the hot path, batched (issue 7).
--
-- * complete_runs(worker_id, runs): one statement completes a whole batch of a worker's runs,
--   fenced per run like complete_run; runs whose lease moved on come back with ok = false
--   instead of failing the batch. complete_run is now this same code for one run, so the retry
--   and backoff rules live once.
-- * claim_runs: picks and locks in one statement, updates by id in a second, so both keep one
--   cached generic plan (bench/profile_hot_path.py: planning was most of a single claim).
-- * pulser_ops.run_event_counters loses its foreign key: every row of it is written by the
--   control plane's own functions right after they locked the run, and the per-row key check
--   was a fifth of sweeping 10,000 runs. An AFTER DELETE trigger on runs keeps the cleanup that
--   ON DELETE CASCADE did.

-- ---------------------------------------------------------------------------
-- Event counters: no per-row foreign key check, same cleanup
-- ---------------------------------------------------------------------------

alter table pulser_ops.run_event_counters drop constraint run_event_counters_run_id_fkey;

create function pulser_ops.runs_forget_counters() returns trigger
language plpgsql set search_path = '' as $$
begin
  delete from pulser_ops.run_event_counters k using old_rows o where k.run_id = o.id;
  return null;
end
$$;
create trigger runs_forget_counters after delete on public.runs
  referencing old table as old_rows for each statement
  execute function pulser_ops.runs_forget_counters();

-- Counter rows of runs deleted before this migration are already gone (the cascade did that).

-- ---------------------------------------------------------------------------
-- Run guard: fire only when there is something to refuse or to fix
-- ---------------------------------------------------------------------------

-- The hot paths (claim, complete, sweep) set version and updated_at themselves and only make
-- legal moves, so the per-row plpgsql call was pure cost (a tenth of sweeping 10,000 runs). The
-- WHEN clause is evaluated without calling it; any other UPDATE (one that forgets the version,
-- or makes an illegal move, or touches a finished run) still goes through runs_guard, which
-- refuses or fixes it exactly as before.
drop trigger runs_guard on public.runs;
create trigger runs_guard before update on public.runs
  for each row
  when (old.status in ('succeeded', 'failed', 'cancelled')
        or (new.status is distinct from old.status and not (
              (old.status = 'queued' and new.status in ('running', 'cancelled'))
           or (old.status = 'running' and new.status in ('queued', 'succeeded', 'failed', 'cancelled'))))
        or new.version is distinct from old.version + 1
        or new.updated_at is distinct from now())
  execute function pulser_ops.runs_guard();

-- ---------------------------------------------------------------------------
-- Claim: pick + lock, then update by id
-- ---------------------------------------------------------------------------

create or replace function public.claim_runs(
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
  picked as (
    select c.id, c.priority, c.created_at
    from slots s
    cross join lateral (
      select r.id, r.priority, r.created_at from public.runs r
      where r.status = 'queued' and r.lane = s.lane and r.available_at <= now()
      order by r.priority desc, r.created_at
      limit least(s.free, claim_runs.max_runs)
      for no key update skip locked
    ) c
    where s.free > 0
    order by c.priority desc, c.created_at
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
  seqs as (
    insert into pulser_ops.run_event_counters as k (run_id, last_seq)
    select c.id, 1 from claimed c order by c.id
    on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
    returning k.run_id, k.last_seq
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    -- Seqs from a map built once, not a join (see complete_runs: the generic plan would
    -- nest-loop two one-row estimates).
    select c.id, ((select jsonb_object_agg(q.run_id, q.last_seq) from seqs q) ->> c.id::text)::bigint,
           'claimed', 'info',
           format('claimed by %s (attempt %s of %s)', c.worker_id, c.attempt, c.max_attempts),
           jsonb_build_object('lease_expires_at', c.lease_expires_at),
           c.attempt, c.worker_id
    from claimed c
  )
  select c.* from claimed c order by c.priority desc, c.created_at;
end
$$;

-- ---------------------------------------------------------------------------
-- Sweep: as before, setting version and updated_at itself (see the run guard above), and
-- taking expired runs in index order instead of sorting all running runs per batch
-- ---------------------------------------------------------------------------

-- Requeue (or fail, after the last attempt) runs whose lease expired. The expiry is re-checked on
-- the locked row, so a heartbeat or completion that committed first always wins.
create or replace function public.sweep_expired_runs(max_runs integer default 500)
returns setof public.sweep_result
language plpgsql volatile set search_path = '' as $$
begin
  perform pulser_ops.require_service('sweep runs');
  if sweep_expired_runs.max_runs is null or sweep_expired_runs.max_runs not between 1 and 10000 then
    raise exception 'max_runs: must be between 1 and 10000' using errcode = 'PO400';
  end if;
  return query
  with expired as (
    select r.id, r.worker_id as old_worker, r.lease_expires_at as old_lease, r.heartbeat_at as old_beat
    from public.runs r
    where r.status = 'running' and r.lease_expires_at < now()
    -- No "order by lease_expires_at": leases are not indexed (heartbeats stay HOT), so ordering
    -- sorted every running run on every batch; sweep_once loops until a batch comes back short,
    -- so every expired run is swept in the same pass whatever the order.
    limit sweep_expired_runs.max_runs
    for no key update skip locked
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
     where r.id = e.id and r.status = 'running' and r.lease_expires_at < now()
    returning r.id, r.status, r.attempt, r.max_attempts, e.old_worker, e.old_beat
  ),
  seqs as (
    insert into pulser_ops.run_event_counters as k (run_id, last_seq)
    select s.id, 1 from swept s order by s.id
    on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
    returning k.run_id, k.last_seq
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    -- Seqs from a map built once, not a join: after a few calls in one session plpgsql may
    -- switch to a generic plan that nest-loops the two CTEs (see complete_runs).
    select s.id, ((select jsonb_object_agg(q.run_id, q.last_seq) from seqs q) ->> s.id::text)::bigint,
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
         s.old_worker, round(extract(epoch from now() - s.old_beat)::numeric, 3)
  from swept s;
end
$$;

-- ---------------------------------------------------------------------------
-- Events: the helpers of append_run_events in plpgsql
-- ---------------------------------------------------------------------------

-- A SQL function with SET search_path is never inlined and is planned on every call; these two
-- ran four times per append (event_batch three times, reserve_event_seq once per run), which made
-- appending two log events cost ~5 ms. In plpgsql their plans are cached per session.
create or replace function pulser_ops.event_batch(events jsonb)
returns table (n bigint, run_id uuid, kind text, level text, message text, data jsonb,
               attempt integer, worker_id text)
language plpgsql immutable set search_path = '' as $$
#variable_conflict use_column
begin
  return query
  select e.o - 1, x.run_id, x.kind, coalesce(x.level, 'info'), coalesce(x.message, ''), x.data,
         x.attempt, x.worker_id
  from jsonb_array_elements(event_batch.events) with ordinality as e(v, o),
       jsonb_to_record(e.v) as x(run_id uuid, kind text, level text, message text, data jsonb,
                                 attempt integer, worker_id text);
end
$$;

-- A batch is a handful of events; with the default estimate of 1,000 rows for a set-returning
-- function, the generic plan of append_run_events' ownership check hash-joined all of runs.
alter function pulser_ops.event_batch(jsonb) rows 10;

create or replace function pulser_ops.reserve_event_seq(run_id uuid, n integer) returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  first_seq bigint;
begin
  insert into pulser_ops.run_event_counters as k (run_id, last_seq)
  values (reserve_event_seq.run_id, reserve_event_seq.n)
  on conflict on constraint run_event_counters_pkey
    do update set last_seq = k.last_seq + excluded.last_seq
  returning k.last_seq - reserve_event_seq.n + 1 into first_seq;
  return first_seq;
end
$$;

-- Its ownership check ("is every run of the batch yours?") was custom-planned on every call
-- (the caller kind and auth.uid() are parameters); its generic plan is the same index lookup.
alter function pulser_ops.append_run_events(jsonb) set plan_cache_mode = force_generic_plan;

-- ---------------------------------------------------------------------------
-- Complete: a batch of a worker's runs, fenced per run
-- ---------------------------------------------------------------------------

-- ok: this completion is recorded (now, or by an identical earlier call). status: the run's
-- status after the call ('queued' when a failure was scheduled for retry at retry_at). When not
-- ok, status is what the run is now (null if there is no such run) and detail says why.
create type public.complete_batch_result as (
  run_id uuid, attempt integer, ok boolean, status text, retry_at timestamptz, detail text
);

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
  return query
  with items as (
    select x.run_id, x.attempt, x.status, x.result, x.error, x.error_class,
           coalesce(x.retryable, true) as retryable, x.steps
    from jsonb_to_recordset(complete_runs.items)
      as x(run_id uuid, attempt integer, status text, result jsonb, error text,
           error_class text, retryable boolean, steps jsonb)
  ),
  locked as materialized (
    -- Locked in id order, so two batches over the same runs cannot deadlock.
    select r.id, r.status, r.worker_id, r.attempt, r.max_attempts, r.cancel_requested_at, r.template
    from public.runs r
    where r.id = any(ids)
    order by r.id
    for no key update
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
    insert into public.run_steps as st (run_id, attempt, idx, name, kind, status, finished_at,
                                        exit_code, error, output)
    select x.id, x.attempt, s.idx, s.name, s.kind, s.status,
           case when s.status <> 'running' then now() end, s.exit_code, s.error, s.output
    from done x
    join items i on i.run_id = x.id
    cross join lateral jsonb_to_recordset(coalesce(i.steps, '[]'))
      as s(idx integer, name text, kind text, status text, exit_code integer, error text,
           output jsonb)
    on conflict on constraint run_steps_pkey do update
      set status = excluded.status, finished_at = excluded.finished_at,
          exit_code = excluded.exit_code, error = excluded.error, output = excluded.output
  ),
  seqs as (
    insert into pulser_ops.run_event_counters as k (run_id, last_seq)
    select x.id, 1 from done x order by x.id
    on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
    returning k.run_id, k.last_seq
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    -- Each run's seq from a map built once (an InitPlan), not a join: the generic plan rates
    -- both CTEs at one row and nest-loops them, quadratic in the batch (168 ms of 237 for 1,000).
    select x.id, ((select jsonb_object_agg(q.run_id, q.last_seq) from seqs q) ->> x.id::text)::bigint,
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
  select d.run_id, d.attempt, d.go or d.repeated,
         coalesce(x.status, d.now_status),
         case when x.retry then x.available_at end,
         case when d.now_status is null then format('run %s not found', d.run_id)
              when not (d.go or d.repeated)
              then format('lease lost: it is %s (worker %s, attempt %s)', d.now_status,
                          coalesce(d.now_worker, '-'), d.now_attempt) end
  from decided d left join done x on x.id = d.run_id;
end
$$;

-- The first thing wrong with a batch of completions (by position), or null.
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
  -- Two cheap passes instead of one per element: the shape, then the fields.
  select format('runs[%s]: expected an object', a.n - 1) into bad
  from jsonb_array_elements(completion_problem.items) with ordinality as a(e, n)
  where jsonb_typeof(a.e) <> 'object'
  order by a.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select case when x.run_id is null then format('runs[%s].run_id: required', x.n - 1)
              when x.attempt is null then format('runs[%s].attempt: required', x.n - 1)
              when x.status is null or x.status not in ('succeeded', 'failed', 'cancelled')
              then format('runs[%s].status: must be succeeded, failed or cancelled (got %s)',
                          x.n - 1, coalesce(x.status, 'null'))
              else format('runs[%s].error: at most 65536 bytes', x.n - 1) end
    into bad
  from rows from (jsonb_to_recordset(completion_problem.items)
                  as (run_id uuid, attempt integer, status text, error text))
    with ordinality as x(run_id, attempt, status, error, n)
  where x.run_id is null or x.attempt is null or x.status is null
     or x.status not in ('succeeded', 'failed', 'cancelled') or octet_length(x.error) > 65536
  order by x.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select format('runs[%s].steps: %s', x.n - 1,
                case when jsonb_typeof(x.steps) <> 'array' then 'expected an array of step rows'
                     else format('step %s: needs idx >= 0, a name of 1 to 200 characters, a kind '
                                 '(shell, http, python, mcp, docker) and a status (running, '
                                 'succeeded, failed, cancelled, skipped)', st.n - 1) end)
    into bad
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
  order by x.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select format('runs: run %s appears more than once', x.run_id) into bad
  from jsonb_to_recordset(completion_problem.items) as x(run_id uuid)
  group by x.run_id having count(*) > 1 limit 1;
  return bad;
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

create or replace function public.complete_run(
  run_id uuid, worker_id text, attempt integer, status text, result jsonb default null,
  error text default null, error_class text default null, retryable boolean default true
) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  item jsonb := jsonb_build_array(jsonb_build_object(
    'run_id', complete_run.run_id, 'attempt', complete_run.attempt, 'status', complete_run.status,
    'result', complete_run.result, 'error', complete_run.error,
    'error_class', complete_run.error_class, 'retryable', complete_run.retryable));
  bad text;
  res public.complete_batch_result;
  r public.runs;
begin
  perform pulser_ops.require_service('complete runs');
  bad := pulser_ops.completion_problem(complete_run.worker_id, item);
  if bad is not null then
    raise exception '%', regexp_replace(bad, '^runs\[0\]\.', '') using errcode = 'PO400';
  end if;
  select * into res from pulser_ops.complete_runs(complete_run.worker_id, item);
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

-- ---------------------------------------------------------------------------
-- Grants: the service role only (workers)
-- ---------------------------------------------------------------------------

revoke all on function pulser_ops.runs_forget_counters(), pulser_ops.complete_runs(text, jsonb),
  pulser_ops.completion_problem(text, jsonb), public.complete_runs(text, jsonb)
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.runs_forget_counters(), pulser_ops.complete_runs(text, jsonb),
  pulser_ops.completion_problem(text, jsonb), public.complete_runs(text, jsonb)
  to service_role;
grant delete on pulser_ops.run_event_counters to service_role;
