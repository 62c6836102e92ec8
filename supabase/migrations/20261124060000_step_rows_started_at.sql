-- pulser-ops: a step row that comes with a completion may say when the step started (issue 7).
--
-- The reference worker no longer writes the last step's "running" row when the step ends
-- within a moment: its final row goes out with the completion, one round trip less per run.
-- That row is then the step's first, so it carries the worker's own start time; without
-- "started_at" it would be stamped with the completion's time. An existing row keeps its
-- started_at (the upsert never changes it). A malformed timestamp fails the call like any
-- other bad value (22007/22008: InvalidInput), before anything is written.

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
