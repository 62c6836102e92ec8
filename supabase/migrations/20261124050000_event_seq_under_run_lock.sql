-- pulser-ops: event seqs from the events themselves, under the run's row lock (issue 7).
--
-- Event seqs
-- ----------
-- Every run's events are numbered 1, 2, 3, ... in commit order, so a reader that asks for
-- "after_seq = last" never misses one. Until now a counter row per run (pulser_ops.run_event_counters)
-- handed the numbers out and its row lock ordered the writers. It cost an upsert per event:
-- a tenth of claiming and completing a batch (bench/results, "event seqs"), more than the
-- event row itself.
--
-- Now every writer of a run's events holds the run's row lock (FOR NO KEY UPDATE, or the update
-- it just made) and takes the next seq as max(seq) + 1 from run_events' primary key, in a
-- *later statement* than the one that took the lock: under READ COMMITTED each statement sees
-- everything committed before it started, and every earlier writer committed before the lock
-- was granted. The writers: claim_runs (pick and lock, then update), complete_runs (lock, then
-- complete), sweep_expired_runs (pick and lock, then sweep), append_run_events (lock, then
-- insert), and add_event's callers (cancel_run, release_run: they update the run first).
-- Locks on several runs are always taken in id order (complete_runs, append_run_events, and now
-- heartbeat_runs too), so two batches of one worker cannot deadlock.
--
-- The foreign key from run_events to runs stays: it keeps events from outliving or preceding
-- their run, and PostgREST needs it to embed a run's events (select=*,run_events(*)).

-- ---------------------------------------------------------------------------
-- Single events (cancel_run, release_run)
-- ---------------------------------------------------------------------------

create or replace function pulser_ops.add_event(
  run_id uuid, kind text, level text, message text, data jsonb default null,
  attempt integer default null, worker_id text default null
) returns void
language plpgsql volatile set search_path = '' as $$
-- The caller holds the run's row lock, taken by an earlier statement (it just updated or locked
-- the run): see "Event seqs".
begin
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  select add_event.run_id, coalesce(max(e.seq), 0) + 1, add_event.kind, add_event.level,
         add_event.message, add_event.data, add_event.attempt, add_event.worker_id
  from public.run_events e where e.run_id = add_event.run_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Claim: the seq of the claimed event
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
  select c.* from claimed c order by c.priority desc, c.created_at;
end
$$;

-- ---------------------------------------------------------------------------
-- Complete: lock in a statement of its own, then complete; a step row may say when it started
-- ---------------------------------------------------------------------------

-- A step row that comes with a completion may carry "started_at": the reference worker no
-- longer writes the last step's "running" row when the step ends within a moment, so its final
-- row, sent with the completion, is the step's first and says when the step started (without
-- it, the row would be stamped with the completion's time). An existing row keeps its own
-- started_at (the upsert never changes it). A malformed timestamp fails the call like any other
-- bad value (22007/22008: InvalidInput), before anything is written.
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
           coalesce(x.retryable, true) as retryable, x.steps
    from jsonb_to_recordset(complete_runs.items)
      as x(run_id uuid, attempt integer, status text, result jsonb, error text,
           error_class text, retryable boolean, steps jsonb)
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
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select x.id, (select coalesce(max(e.seq), 0) + 1 from public.run_events e where e.run_id = x.id),
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

-- ---------------------------------------------------------------------------
-- Sweep: pick and lock, then sweep
-- ---------------------------------------------------------------------------

create or replace function public.sweep_expired_runs(max_runs integer default 500)
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
    returning r.id, r.status, r.attempt, r.max_attempts, e.old_worker, e.old_beat
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
         s.old_worker, round(extract(epoch from now() - s.old_beat)::numeric, 3)
  from swept s;
end
$$;

-- ---------------------------------------------------------------------------
-- Append: lock the runs in id order, then number the events
-- ---------------------------------------------------------------------------

create or replace function pulser_ops.append_run_events(events jsonb) returns setof public.run_events
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan as $$
declare
  k text := pulser_ops.caller_kind();
  bad record;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not append events', k using errcode = '42501';
  end if;
  if jsonb_typeof(append_run_events.events) is distinct from 'array' then
    raise exception 'events: expected an array of events' using errcode = 'PO400';
  end if;
  if jsonb_array_length(append_run_events.events) > 5000 then
    raise exception 'events: at most 5000 events per call' using errcode = 'PO400';
  end if;
  if exists (select 1 from jsonb_array_elements(append_run_events.events) v where jsonb_typeof(v) <> 'object') then
    raise exception 'events: every event must be an object' using errcode = 'PO400';
  end if;
  begin
    select * into bad from pulser_ops.event_batch(append_run_events.events) b
     where b.run_id is null or b.kind is null or b.kind !~ '^[a-z][a-z0-9_.]{0,63}$'
        or b.level not in ('debug', 'info', 'warn', 'error') or octet_length(b.message) > 16384
     order by b.n limit 1;
  exception when invalid_text_representation or datatype_mismatch or invalid_parameter_value
                 or numeric_value_out_of_range then
    raise exception 'events: %', sqlerrm using errcode = 'PO400';
  end;
  if found then
    raise exception 'events[%]: %', bad.n, case
      when bad.run_id is null then 'run_id is required'
      when bad.kind is null then 'kind is required'
      when bad.kind !~ '^[a-z][a-z0-9_.]{0,63}$' then format('kind %L must match [a-z][a-z0-9_.]*', bad.kind)
      when bad.level not in ('debug', 'info', 'warn', 'error') then format('level %L must be debug, info, warn or error', bad.level)
      else 'message is longer than 16384 bytes' end
      using errcode = 'PO400';
  end if;
  select b.n, b.run_id into bad from pulser_ops.event_batch(append_run_events.events) b
   where not exists (select 1 from public.runs r where r.id = b.run_id
                     and (k in ('service', 'admin') or r.owner_id = auth.uid()))
   order by b.n limit 1;
  if found then
    if exists (select 1 from public.runs r where r.id = bad.run_id) then
      raise exception 'permission denied: run % is not yours', bad.run_id using errcode = '42501';
    end if;
    raise exception 'events[%]: run % not found', bad.n, bad.run_id using errcode = 'PO404';
  end if;

  -- The runs are locked in id order (as complete_runs and heartbeat_runs lock them: no
  -- deadlocks), in a statement of their own: see "Event seqs".
  perform 1 from public.runs r
   where r.id = any(array(select b.run_id from pulser_ops.event_batch(append_run_events.events) b))
   order by r.id for no key update;

  return query
  with b as (
    select * from pulser_ops.event_batch(append_run_events.events)
  ),
  last as (
    select p.run_id, (select coalesce(max(e.seq), 0) from public.run_events e
                      where e.run_id = p.run_id) as seq
    from (select distinct b.run_id from b) p
  )
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  select b.run_id,
         l.seq + row_number() over (partition by b.run_id order by b.n),
         b.kind, b.level, b.message, b.data, b.attempt, b.worker_id
  from b join last l on l.run_id = b.run_id
  order by b.n
  returning *;
end
$$;

-- ---------------------------------------------------------------------------
-- Heartbeat: lock in id order, like every other batch
-- ---------------------------------------------------------------------------

create or replace function public.heartbeat_runs(worker_id text, runs jsonb)
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
-- The counters go
-- ---------------------------------------------------------------------------

drop trigger runs_forget_counters on public.runs;
drop function pulser_ops.runs_forget_counters();
drop function pulser_ops.reserve_event_seq(uuid, integer);
drop table pulser_ops.run_event_counters;
