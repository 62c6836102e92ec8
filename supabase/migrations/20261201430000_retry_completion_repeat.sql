-- pulser-ops: a resent failure that scheduled a retry is recorded, not "lease lost".
--
-- complete_runs recognised a repeated completion only when the run was still in the status the
-- completion asked for. A failure that scheduled a retry puts the run back to queued (and the
-- next claim moves it on), so when the reply to it was lost, the worker's resend was answered
-- "lease lost": the worker wrote a false lease_lost event and appended the run's last events a
-- second time. The retry event that attempt wrote now says the completion was recorded, and
-- the resend is answered as the first call was (ok, queued, retry_at).

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
  logged as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select n.id, n.last + v.o, v.e ->> 'kind', coalesce(v.e ->> 'level', 'info'),
           coalesce(v.e ->> 'message', ''), nullif(v.e -> 'data', 'null'), n.attempt,
           complete_runs.worker_id
    from numbered n
    cross join lateral jsonb_array_elements(n.events) with ordinality as v(e, o)
    where n.carried > 0
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
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
