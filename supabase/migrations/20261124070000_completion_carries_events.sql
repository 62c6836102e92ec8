-- pulser-ops: a completion carries its run's last events (issue 7, round 4).
--
-- A worker sends a run's log lines and step events with events.append, batched for all its runs,
-- and before completing a run it waited for that run's events to be appended, so they precede
-- the terminal event. For a short run that was one more call and one more transaction per run:
-- the reference worker spent as much on appending events as on completing.
--
-- Now each completion may carry the run's events that are not yet sent (runs[].events: an array
-- of {"kind", "level", "message", "data"}; attempt and worker come from the completion). They are
-- written in the completion's transaction, with the seqs right before the terminal event's, and
-- only when the completion is recorded now: a repeated completion does not write them twice, and
-- for a refused one (lease lost) nothing is written (the worker appends them itself then).
-- They are checked like events.append checks events (kind, level, message size), at most 5000
-- per call, before anything is written.

-- The first thing wrong with a batch of completions (by position), or null.
-- The first thing wrong with a batch of completions (by position), or null.
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
  -- Carried events: the checks events.append makes, named by completion and position.
  select format('runs[%s].events: %s', x.n - 1,
                case when jsonb_typeof(x.events) <> 'array' then 'expected an array of events'
                     else format('event %s: %s', ev.o - 1, ev.problem) end)
    into bad
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
  order by x.n limit 1;
  if bad is not null then
    return bad;
  end if;
  select format('runs: at most 5000 events per call (got %s)', sum(jsonb_array_length(x.events)))
    into bad
  from jsonb_to_recordset(completion_problem.items) as x(events jsonb)
  where jsonb_typeof(x.events) = 'array'
  having sum(jsonb_array_length(x.events)) > 5000;
  if bad is not null then
    return bad;
  end if;
  select format('runs: run %s appears more than once', x.run_id) into bad
  from jsonb_to_recordset(completion_problem.items) as x(run_id uuid)
  group by x.run_id having count(*) > 1 limit 1;
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
