-- Experiment, NOT shipped (issue 18): how much faster would the reference worker drain if a run
-- recorded less? Applied by `bench/run.py --only drain --experiment bench/experiments/lean_recording.sql`
-- to a copy of the schema. Compared with the shipped SQL, per run:
--   * claim_runs writes no `claimed` event (the run row still says who claimed it and when);
--   * complete_runs writes no step rows and none of the events a completion carries (the
--     worker's step.started / step.finished); the terminal event is still written.
-- That leaves three row writes per run (claim update, completion update, terminal event), fewer
-- than PgQueuer's four. The functions are today's (supabase/schemas/20_state_machine.sql) with
-- those statements removed.

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
  )
  select c.* from claimed c order by c.priority desc, c.created_at, c.seq;
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
    where false  -- experiment: carried events are not written
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
