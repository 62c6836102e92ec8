-- pulser-ops: monitoring. What Prometheus, the alerts and the Performance page read, each in one
-- function whose cost stays bounded however many runs the table holds:
--   fleet_metrics      the fleet's gauges at scrape time: queue depth and age per lane, running
--                      and stuck runs, finished runs, workers and their slots
--   performance_stats  per template throughput, queue wait and run duration percentiles, per
--                      step kind duration percentiles, over the last hour, day or week
--   evaluate_alerts    the built-in alert rules: incidents in public.alerts (one per rule and
--                      subject while it fires), 'alert' events on the runs concerned, and the
--                      notices to send (firing, reminder, resolved)
--   list_alerts        the incidents, for the board and the CLI
--
-- How the cost stays bounded: a count stops at a cap (exact below it); above it the planner's
-- estimate or a sample stands in, and the answer says so ("exact": false). jit = off on each:
-- their plans' cost estimates at a million runs pass jit_above_cost, and compiling them took
-- seconds for queries that run in milliseconds. The direct transport also arms a statement_timeout for fleet_metrics; when it
-- fires, the function catches it (query_canceled) and answers from estimates instead.
-- Grants: in 90_security.sql, like every other function's.

-- ---------------------------------------------------------------------------
-- Shared readers
-- ---------------------------------------------------------------------------

-- The argument check of the monitoring functions: PO400 naming the argument unless lo <= v <= hi.
create function pulser_ops.require_between(v numeric, name text, lo numeric, hi numeric)
returns void
language plpgsql immutable set search_path = '' as $$
begin
  if require_between.v is null or require_between.v not between require_between.lo and require_between.hi then
    raise exception '%: must be between % and % (got %)', require_between.name, require_between.lo,
      require_between.hi, coalesce(require_between.v::text, 'null') using errcode = 'PO400';
  end if;
end
$$;

-- The rows public.runs holds now, from its size on disk and the last ANALYZE's rows per page:
-- current even before autovacuum has analyzed a bulk load (reltuples alone can be -1 or stale).
create function pulser_ops.runs_rows_estimate() returns double precision
language sql stable set search_path = '' as $$
  select (case when c.relpages > 0 and c.reltuples > 0 then c.reltuples / c.relpages else 40 end)
         * (pg_catalog.pg_relation_size(c.oid)
            / pg_catalog.current_setting('block_size')::double precision)
  from pg_catalog.pg_class c where c.oid = 'public.runs'::regclass
$$;

-- A worker's heartbeat interval in seconds: what it registered (metadata.heartbeat_seconds, the
-- reference worker's idle interval), else 10 (the reference worker's default).
create function pulser_ops.worker_beat(metadata jsonb) returns numeric
language sql immutable set search_path = '' as $$
  select case when jsonb_typeof(worker_beat.metadata -> 'heartbeat_seconds') = 'number'
               and (worker_beat.metadata ->> 'heartbeat_seconds')::numeric > 0
              then (worker_beat.metadata ->> 'heartbeat_seconds')::numeric else 10 end
$$;

-- How many rows of public.runs a monitoring read looks at per lane, and about how many a
-- sample of the finished runs holds: about 1 us of heap access each, so a scrape costs a few
-- milliseconds however large the table (bench/b_metrics.py measures it at 1,000,000 runs).
create function pulser_ops.metrics_read_budget() returns integer
language sql immutable set search_path = '' as $$ select 1000 $$;

-- Each lane's queue: depth, the oldest ready run (available_at <= now) and the depth per
-- template. The depth is exact while a lane holds at most cap queued runs (counted in
-- runs_claim_idx, stopping at cap + 1, so the cost is the cap's, not the queue's); above it,
-- the planner's estimate. Reading the rows themselves (for the templates and the oldest ready
-- run) is what costs a scrape its milliseconds, so at most pulser_ops.metrics_read_budget()
-- rows are read per lane: up to that depth everything is exact; above it, templates in the
-- proportions of the first budget runs in claim order, and the oldest ready run among the heads
-- of each priority in use (a skip scan of runs_claim_idx, one probe per priority).
create function pulser_ops.lane_queues(cap integer)
returns table (lane text, paused boolean, max_running integer, queued bigint, exact boolean,
               oldest_ready_at timestamptz, oldest_run_id uuid, templates jsonb)
language plpgsql volatile set search_path = '' set jit = off as $$
declare
  l public.lanes;
  v_n bigint;
  v_t0 timestamptz := now();
  v_read integer := least(lane_queues.cap, pulser_ops.metrics_read_budget());
begin
  perform pulser_ops.check_caller();  -- no token that names no user (15_callers.sql)
  for l in select * from public.lanes x order by x.id loop
    select count(*) into v_n from (
      select 1 from public.runs r where r.status = 'queued' and r.lane = l.id
      limit lane_queues.cap + 1) c;
    if v_n <= v_read then
      return query
      with q as materialized (
        select r.id, r.template, r.available_at from public.runs r
        where r.status = 'queued' and r.lane = l.id
      ), head as (
        select q.id, q.available_at from q where q.available_at <= v_t0
        order by q.available_at, q.id limit 1
      )
      select l.id, l.paused, l.max_running, v_n, true,
             (select h.available_at from head h), (select h.id from head h),
             coalesce((select jsonb_object_agg(g.template, g.runs)
                       from (select q.template, count(*) as runs from q group by q.template) g),
                      '{}');
    else
      return query
      with recursive prios(p) as (
        (select r.priority from public.runs r where r.status = 'queued' and r.lane = l.id
         order by r.priority desc, r.created_at limit 1)
        union all
        select (select r.priority from public.runs r
                where r.status = 'queued' and r.lane = l.id and r.priority < prios.p
                order by r.priority desc, r.created_at limit 1)
        from prios where prios.p is not null
      ), heads as (
        select h.id, h.available_at from prios
        cross join lateral (
          select r.id, r.available_at from public.runs r
          where r.status = 'queued' and r.lane = l.id and r.priority = prios.p
            and r.available_at <= v_t0
          order by r.created_at limit 1) h
        where prios.p is not null
        order by h.available_at, h.id limit 1
      ), est as (
        select case when v_n <= lane_queues.cap then v_n
                    else greatest(v_n, pulser_ops.estimate_rows(format(
                      'select 1 from public.runs x where x.status = %L and x.lane = %L',
                      'queued', l.id))) end as total
      ), firsts as (
        select r.template from public.runs r where r.status = 'queued' and r.lane = l.id
        order by r.priority desc, r.created_at limit v_read
      )
      select l.id, l.paused, l.max_running, (select e.total from est e), v_n <= lane_queues.cap,
             (select h.available_at from heads h), (select h.id from heads h),
             coalesce((select jsonb_object_agg(g.template,
                                               round(g.runs::numeric * e.total / v_read))
                       from (select f.template, count(*) as runs from firsts f
                             group by f.template) g, est e),
                      '{}');
    end if;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------
-- Fleet metrics (Prometheus gauges, read at scrape time)
-- ---------------------------------------------------------------------------

-- One round trip per scrape. exact_limit: queued runs counted exactly per lane (their
-- templates exactly up to pulser_ops.metrics_read_budget() runs, see lane_queues). Finished
-- runs are counted exactly while the table holds at most the smaller of the two, above that
-- from a block sample of about that many rows, scaled up. Workers count while not stopped and seen within forget_seconds; stale once
-- unseen for stale_beats x their heartbeat interval (metadata.heartbeat_seconds, else 10 s).
-- Two columns, not one: PostgREST answers a single-column table like a scalar.
create function public.fleet_metrics(
  exact_limit integer default 10000, stale_beats numeric default 3,
  forget_seconds integer default 3600
) returns table (metrics jsonb, taken_at timestamptz)
language plpgsql volatile set search_path = '' set jit = off as $$
declare
  v_t0 timestamptz := now();
  v_lanes jsonb;
  v_running jsonb;
  v_finished jsonb := '[]';
  v_workers jsonb;
  v_held jsonb;
  v_exact boolean := true;
  v_finished_exact boolean := true;
  v_pct double precision;
  v_rows double precision;
  v_read integer := least(fleet_metrics.exact_limit, pulser_ops.metrics_read_budget());
begin
  perform pulser_ops.check_caller();  -- no token that names no user (15_callers.sql)
  perform pulser_ops.require_between(fleet_metrics.exact_limit, 'exact_limit', 1, 1000000);
  perform pulser_ops.require_between(fleet_metrics.stale_beats, 'stale_beats', 1, 1000);
  perform pulser_ops.require_between(fleet_metrics.forget_seconds, 'forget_seconds', 60, 31536000);

  begin
    select jsonb_object_agg(h.worker_id, h.runs) into v_held
    from (select r.worker_id, count(*) as runs from public.runs r where r.status = 'running'
          group by r.worker_id) h;
    v_held := coalesce(v_held, '{}');

    select coalesce(jsonb_agg(jsonb_build_object(
             'lane', q.lane, 'paused', q.paused, 'max_running', q.max_running,
             'queued', q.queued, 'exact', q.exact, 'oldest_ready_at', q.oldest_ready_at,
             'oldest_age_seconds', round(extract(epoch from v_t0 - q.oldest_ready_at)::numeric, 3),
             'oldest_run_id', q.oldest_run_id, 'templates', q.templates) order by q.lane), '[]'),
           bool_and(q.exact)
      into v_lanes, v_exact
    from pulser_ops.lane_queues(fleet_metrics.exact_limit) q;

    -- Running runs are bounded by the fleet's concurrency: always counted.
    select coalesce(jsonb_agg(jsonb_build_object('lane', g.lane, 'template', g.template,
                                                 'runs', g.runs, 'stuck', g.stuck)
                              order by g.lane, g.template), '[]')
      into v_running
    from (select r.lane, r.template, count(*) as runs,
                 count(*) filter (where r.lease_expires_at < v_t0) as stuck
          from public.runs r where r.status = 'running' group by r.lane, r.template) g;

    v_rows := pulser_ops.runs_rows_estimate();
    if v_rows <= v_read then
      select coalesce(jsonb_agg(jsonb_build_object('lane', g.lane, 'template', g.template,
                                                   'status', g.status, 'runs', g.runs)
                                order by g.lane, g.template, g.status), '[]')
        into v_finished
      from (select r.lane, r.template, r.status, count(*) as runs from public.runs r
            where r.status in ('succeeded', 'failed', 'cancelled')
            group by r.lane, r.template, r.status) g;
    else
      v_finished_exact := false;
      v_pct := least(100, 100.0 * v_read / v_rows);
      select coalesce(jsonb_agg(jsonb_build_object('lane', g.lane, 'template', g.template,
                                                   'status', g.status,
                                                   'runs', round(g.runs * 100.0 / v_pct))
                                order by g.lane, g.template, g.status), '[]')
        into v_finished
      from (select r.lane, r.template, r.status, count(*) as runs
            from public.runs r tablesample system (v_pct)
            where r.status in ('succeeded', 'failed', 'cancelled')
            group by r.lane, r.template, r.status) g;
    end if;
  exception when query_canceled then
    -- The caller's statement_timeout ran out: the planner's estimates (nothing here reads the
    -- rows of public.runs).
    v_held := null;
    v_exact := false;
    v_finished_exact := false;
    v_finished := '[]';
    select coalesce(jsonb_agg(jsonb_build_object(
             'lane', l.id, 'paused', l.paused, 'max_running', l.max_running,
             'queued', pulser_ops.estimate_rows(format(
               'select 1 from public.runs x where x.status = %L and x.lane = %L', 'queued', l.id)),
             'exact', false, 'oldest_ready_at', null, 'oldest_age_seconds', null,
             'oldest_run_id', null, 'templates', '{}'::jsonb) order by l.id), '[]')
      into v_lanes
    from public.lanes l;
    select coalesce(jsonb_agg(jsonb_build_object(
             'lane', l.id, 'template', '', 'stuck', null,
             'runs', pulser_ops.estimate_rows(format(
               'select 1 from public.runs x where x.status = %L and x.lane = %L', 'running', l.id)))
             order by l.id), '[]')
      into v_running
    from public.lanes l;
  end;

  -- Workers (v_held is null when the timeout ran out: their runs are not counted then).
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', x.id, 'host', x.host, 'lanes', to_jsonb(x.lanes), 'concurrency', x.concurrency,
           'status', x.status, 'running', coalesce((v_held ->> x.id)::integer,
                                                   case when v_held is not null then 0 end),
           'last_seen_at', x.last_seen_at, 'heartbeat_seconds', pulser_ops.worker_beat(x.metadata),
           'stale', x.last_seen_at < v_t0 - make_interval(
                      secs => (pulser_ops.worker_beat(x.metadata) * fleet_metrics.stale_beats)::double precision))
         order by x.id), '[]')
    into v_workers
  from public.workers x
  where x.status <> 'stopped'
    and x.last_seen_at >= v_t0 - make_interval(secs => fleet_metrics.forget_seconds);

  return query select jsonb_build_object(
    'taken_at', v_t0, 'exact', v_exact, 'finished_exact', v_finished_exact,
    'finished_sample_percent', v_pct, 'lanes', v_lanes, 'running', v_running,
    'finished', v_finished, 'workers', v_workers), v_t0;
end
$$;
comment on function public.fleet_metrics(integer, numeric, integer) is
  'The fleet''s gauges for Prometheus at a bounded cost: exact below the caps, estimates above them (exact = false).';

-- ---------------------------------------------------------------------------
-- Performance: throughput and percentiles per template and per step kind
-- ---------------------------------------------------------------------------

-- {"p50", "p95", "p99"} from percentile_cont(array[0.5, 0.95, 0.99]), in seconds to the ms.
create function pulser_ops.percentiles(p double precision[]) returns jsonb
language sql immutable set search_path = '' as $$
  select jsonb_build_object('p50', round(percentiles.p[1]::numeric, 3),
                            'p95', round(percentiles.p[2]::numeric, 3),
                            'p99', round(percentiles.p[3]::numeric, 3))
$$;

-- Runs finished in the last hour, day or week (period), in buckets of 1 minute, 30 minutes or
-- 4 hours ending with the current one. Exact while the period holds at most max_exact finished
-- runs (counted on runs_finished_idx, stopping at max_exact + 1). Above that, a block sample
-- (TABLESAMPLE SYSTEM) meant to hold about max_exact runs of the period: the period's share of
-- the table is guessed from how far back finished runs go (one probe of runs_finished_idx), and
-- the sample never reads more than ten times max_exact rows' worth of pages; its counts are
-- scaled up by the sampling rate, an unbiased estimate ("exact": false, "sample_percent").
-- (Counting the period's runs exactly from the index instead cost half a second for a week of
-- 500,000 runs: bench/b_metrics.py.) Step percentiles come from the steps of at most step_runs
-- of those runs (picked by id, i.e. at random). Queue wait: claimed_at - available_at of the
-- run's last attempt; duration: finished_at - claimed_at (neither for a run cancelled before it
-- was claimed: greatest() alone would count its nulls as 0 s). Security invoker: an operator
-- sees their own runs' performance.
create function public.performance_stats(
  period text default 'day', max_exact integer default 10000, step_runs integer default 2000
) returns table (stats jsonb, taken_at timestamptz)
language plpgsql stable set search_path = '' set jit = off as $$
declare
  v_t0 timestamptz := now();
  v_span interval;
  v_bucket interval;
  v_secs double precision;
  v_buckets integer;
  v_since timestamptz;
  v_n bigint;
  v_pct double precision := 100;
  v_rows double precision;
  v_first timestamptz;
  v_share double precision;
  v_out jsonb;
begin
  perform pulser_ops.check_caller();  -- no token that names no user (15_callers.sql)
  case performance_stats.period
    when 'hour' then v_span := interval '1 hour'; v_bucket := interval '1 minute';
    when 'day' then v_span := interval '1 day'; v_bucket := interval '30 minutes';
    when 'week' then v_span := interval '7 days'; v_bucket := interval '4 hours';
    else raise exception 'period: must be hour, day or week (got %)', performance_stats.period
           using errcode = 'PO400';
  end case;
  perform pulser_ops.require_between(performance_stats.max_exact, 'max_exact', 100, 1000000);
  perform pulser_ops.require_between(performance_stats.step_runs, 'step_runs', 0, 100000);
  v_secs := extract(epoch from v_bucket);
  v_buckets := (extract(epoch from v_span) / v_secs)::integer;
  v_since := pg_catalog.date_bin(v_bucket, v_t0, timestamptz '2000-01-01 00:00:00+00')
             + v_bucket - v_span;

  select count(*) into v_n from (
    select 1 from public.runs r where r.finished_at >= v_since
    limit performance_stats.max_exact + 1) c;
  if v_n > performance_stats.max_exact then
    v_rows := greatest(pulser_ops.runs_rows_estimate(), 1);
    select min(r.finished_at) into v_first from public.runs r where r.finished_at is not null;
    v_share := least(1, greatest(extract(epoch from v_t0 - v_since)
                                 / greatest(extract(epoch from v_t0 - v_first), 1), 0.0001));
    v_pct := least(100, 100.0 * performance_stats.max_exact / (v_rows * v_share),
                   1000.0 * performance_stats.max_exact / v_rows);
  end if;

  with picked_rows as (
    select r.id, r.template, r.status, r.available_at, r.claimed_at, r.finished_at,
           1::numeric as weight
    from public.runs r
    where v_pct >= 100 and r.finished_at >= v_since
    union all
    select r.id, r.template, r.status, r.available_at, r.claimed_at, r.finished_at,
           (100.0 / v_pct)::numeric
    from public.runs r tablesample system (v_pct)
    where v_pct < 100 and r.finished_at >= v_since
  ),
  w as materialized (
    select p.id, p.template, p.status, p.weight,
           case when p.claimed_at is not null
                then greatest(extract(epoch from p.claimed_at - p.available_at), 0)::float8 end
             as wait,
           case when p.claimed_at is not null
                then greatest(extract(epoch from p.finished_at - p.claimed_at), 0)::float8 end
             as took,
           floor(extract(epoch from p.finished_at - v_since) / v_secs)::integer as slot
    from picked_rows p
  ),
  per as (
    select coalesce(w.template, '') as template, grouping(w.template) = 1 as total,
           coalesce(sum(w.weight), 0) as runs,  -- the total row of an empty window too
           coalesce(sum(w.weight) filter (where w.status = 'succeeded'), 0) as succeeded,
           coalesce(sum(w.weight) filter (where w.status = 'failed'), 0) as failed,
           coalesce(sum(w.weight) filter (where w.status = 'cancelled'), 0) as cancelled,
           percentile_cont(array[0.5, 0.95, 0.99]) within group (order by w.wait) as wait,
           percentile_cont(array[0.5, 0.95, 0.99]) within group (order by w.took) as took
    from w group by grouping sets ((w.template), ())
  ),
  slots as (
    select coalesce(w.template, '') as template, grouping(w.template) = 1 as total, w.slot,
           sum(w.weight) as done,
           coalesce(sum(w.weight) filter (where w.status = 'failed'), 0) as failed
    from w group by grouping sets ((w.template, w.slot), (w.slot))
  ),
  series as (
    select t.template, t.total,
           jsonb_agg(round(coalesce(s.done, 0)) order by g.slot) as done,
           jsonb_agg(round(coalesce(s.failed, 0)) order by g.slot) as failed
    from per t cross join generate_series(0, v_buckets - 1) g(slot)
    left join slots s on s.template = t.template and s.total = t.total and s.slot = g.slot
    group by t.template, t.total
  ),
  picked as (
    select w.id from w order by w.id limit performance_stats.step_runs
  ),
  docs as (
    select t.template, t.total, t.runs, jsonb_build_object(
             'template', t.template, 'runs', round(t.runs),
             'succeeded', round(t.succeeded), 'failed', round(t.failed),
             'cancelled', round(t.cancelled),
             'per_hour', round(t.runs / (extract(epoch from v_t0 - v_since) / 3600), 2),
             'wait', pulser_ops.percentiles(t.wait), 'duration', pulser_ops.percentiles(t.took),
             'series', s.done, 'failures', s.failed) as doc
    from per t join series s on s.template = t.template and s.total = t.total
  ),
  steps as (
    select st.kind, count(*) as steps,
           count(*) filter (where st.status = 'failed') as failed,
           percentile_cont(array[0.5, 0.95, 0.99]) within group (
             order by greatest(extract(epoch from st.finished_at - st.started_at), 0)) as took
    from picked p
    -- a primary-key probe per picked run, never a scan of every step row (offset 0 keeps
    -- the planner from flattening it into a hash join over all of run_steps)
    cross join lateral (
      select x.kind, x.status, x.started_at, x.finished_at from public.run_steps x
      where x.run_id = p.id and x.finished_at is not null
        and x.status in ('succeeded', 'failed', 'cancelled')
      offset 0
    ) st
    group by st.kind
  )
  select jsonb_build_object(
    'period', performance_stats.period,
    'since', v_since, 'until', v_t0,
    'bucket_seconds', extract(epoch from v_bucket)::integer, 'buckets', v_buckets,
    'exact', v_pct >= 100, 'sample_percent', round(v_pct::numeric, 4),
    'runs_read', (select count(*) from w),
    'templates', coalesce((select jsonb_agg(o.doc order by o.runs desc, o.template)
                           from docs o where not o.total), '[]'),
    'total', (select o.doc - 'template' from docs o where o.total),
    'step_runs', (select count(*) from picked),
    'steps', coalesce((
      select jsonb_agg(jsonb_build_object(
        'kind', k.kind, 'steps', k.steps, 'failed', k.failed,
        'duration', pulser_ops.percentiles(k.took)) order by k.kind)
      from steps k), '[]'))
    into v_out;
  return query select v_out, v_t0;
end
$$;
comment on function public.performance_stats(text, integer, integer) is
  'Throughput, queue wait and duration percentiles per template, step duration percentiles per kind, over the last hour, day or week; a block sample above max_exact runs (exact = false).';

-- ---------------------------------------------------------------------------
-- Alerts: rules evaluated here, incidents in public.alerts, notices for the notifier
-- ---------------------------------------------------------------------------

-- A number from a rule object, checked: the path names the key in the error (PO400).
create function pulser_ops.rule_number(rule jsonb, key text, path text, lo numeric, hi numeric)
returns numeric
language plpgsql immutable set search_path = '' as $$
declare
  v numeric;
begin
  if jsonb_typeof(rule_number.rule -> rule_number.key) is distinct from 'number' then
    raise exception '%.%: expected a number', rule_number.path, rule_number.key
      using errcode = 'PO400';
  end if;
  v := (rule_number.rule ->> rule_number.key)::numeric;
  perform pulser_ops.require_between(v, rule_number.path || '.' || rule_number.key,
                                     rule_number.lo, rule_number.hi);
  return v;
end
$$;

-- The rule object at rules -> name, checked: an object with enabled (boolean) and severity.
-- Null when the rule is disabled.
create function pulser_ops.rule(rules jsonb, name text) returns jsonb
language plpgsql immutable set search_path = '' as $$
declare
  r jsonb := rule.rules -> rule.name;
begin
  if jsonb_typeof(r) is distinct from 'object' then
    raise exception 'rules.%: expected an object', rule.name using errcode = 'PO400';
  end if;
  if jsonb_typeof(r -> 'enabled') is distinct from 'boolean' then
    raise exception 'rules.%.enabled: expected true or false', rule.name using errcode = 'PO400';
  end if;
  if coalesce(r ->> 'severity', '') not in ('info', 'warning', 'critical') then
    raise exception 'rules.%.severity: must be info, warning or critical', rule.name
      using errcode = 'PO400';
  end if;
  return case when (r ->> 'enabled')::boolean then r end;
end
$$;

-- What fires now: one row per rule and subject. The rules (every key required; the SDK fills the
-- defaults, see pulser_ops.alerts.rules):
--   stuck_runs    {after_seconds}: running runs whose lease expired at least that long ago, per lane
--   dead_workers  {heartbeat_multiple, forget_after_seconds}: workers (not stopped) unseen for that
--                 many heartbeat intervals (metadata.heartbeat_seconds, else 10 s), but seen within
--                 forget_after_seconds, while runs are queued in one of their lanes (not paused)
--   queue_age     {threshold_seconds, lanes: {"A": seconds, ...}}: a lane's oldest ready queued run
--                 older than the threshold (paused lanes never fire)
--   failure_rate  {window_seconds, threshold, min_runs}: per template, failed / (succeeded + failed)
--                 over the window's most recent 10,000 finished runs
create function pulser_ops.alert_conditions(rules jsonb)
returns table (rule text, subject text, severity text, summary text, details jsonb, run_ids uuid[])
language plpgsql volatile set search_path = '' set jit = off as $$
declare
  v_t0 timestamptz := now();
  r jsonb;
  v_after numeric;
  v_mult numeric;
  v_forget numeric;
  v_threshold numeric;
  v_window numeric;
  v_min numeric;
  v_lanes jsonb;
begin
  r := pulser_ops.rule(alert_conditions.rules, 'stuck_runs');
  if r is not null then
    v_after := pulser_ops.rule_number(r, 'after_seconds', 'rules.stuck_runs', 0, 604800);
    return query
    select 'stuck_runs'::text, x.lane, r ->> 'severity',
           format('%s stuck run%s in lane %s: the lease expired %s s ago and the sweeper has not taken %s',
                  count(*), case when count(*) = 1 then '' else 's' end, x.lane,
                  round(extract(epoch from v_t0 - min(x.lease_expires_at))::numeric),
                  case when count(*) = 1 then 'it' else 'them' end),
           jsonb_build_object('lane', x.lane, 'count', count(*),
                              'oldest_expired_seconds',
                              round(extract(epoch from v_t0 - min(x.lease_expires_at))::numeric, 1),
                              'workers', jsonb_agg(distinct x.worker_id)),
           (array_agg(x.id order by x.lease_expires_at, x.id))[1:100]
    from public.runs x
    where x.status = 'running'
      and x.lease_expires_at < v_t0 - make_interval(secs => v_after::double precision)
    group by x.lane;
  end if;

  r := pulser_ops.rule(alert_conditions.rules, 'dead_workers');
  if r is not null then
    v_mult := pulser_ops.rule_number(r, 'heartbeat_multiple', 'rules.dead_workers', 1, 1000);
    v_forget := pulser_ops.rule_number(r, 'forget_after_seconds', 'rules.dead_workers', 60, 31536000);
    return query
    with w as (
      select x.id, x.host, x.lanes, x.last_seen_at, pulser_ops.worker_beat(x.metadata) as beat
      from public.workers x
      where x.status <> 'stopped'
        and x.last_seen_at >= v_t0 - make_interval(secs => v_forget::double precision)
    ), dead as (
      select w.*, array(select l.id from public.lanes l
                        where l.id = any(w.lanes) and not l.paused
                          and exists (select 1 from public.runs q
                                      where q.status = 'queued' and q.lane = l.id)
                        order by l.id) as waiting
      from w
      where w.last_seen_at < v_t0 - make_interval(secs => (w.beat * v_mult)::double precision)
    )
    select 'dead_workers'::text, d.id, r ->> 'severity',
           format('worker %s%s last heartbeat %s s ago (interval %s s); runs are queued in lane%s %s',
                  d.id, case when d.host <> '' then format(' on %s', d.host) else '' end,
                  round(extract(epoch from v_t0 - d.last_seen_at)::numeric), d.beat,
                  case when cardinality(d.waiting) = 1 then '' else 's' end,
                  array_to_string(d.waiting, ', ')),
           jsonb_build_object('worker', d.id, 'host', d.host, 'lanes', to_jsonb(d.lanes),
                              'waiting_lanes', to_jsonb(d.waiting), 'last_seen_at', d.last_seen_at,
                              'heartbeat_seconds', d.beat,
                              'seen_seconds_ago',
                              round(extract(epoch from v_t0 - d.last_seen_at)::numeric, 1)),
           array(select h.id from public.runs h where h.status = 'running' and h.worker_id = d.id
                 order by h.id limit 100)
    from dead d
    where cardinality(d.waiting) > 0;
  end if;

  r := pulser_ops.rule(alert_conditions.rules, 'queue_age');
  if r is not null then
    v_threshold := pulser_ops.rule_number(r, 'threshold_seconds', 'rules.queue_age', 1, 31536000);
    v_lanes := coalesce(r -> 'lanes', '{}');
    if jsonb_typeof(v_lanes) <> 'object'
       or exists (select 1 from jsonb_each(v_lanes) e
                  where e.key not in ('A', 'B', 'C', 'D') or jsonb_typeof(e.value) <> 'number'
                     or (e.value #>> '{}')::numeric < 1) then
      raise exception 'rules.queue_age.lanes: expected {"A": seconds, ...} for lanes A to D'
        using errcode = 'PO400';
    end if;
    return query
    select 'queue_age'::text, q.lane, r ->> 'severity',
           format('lane %s: the oldest queued run has waited %s s (threshold %s s); %s queued',
                  q.lane, round(extract(epoch from v_t0 - q.oldest_ready_at)::numeric),
                  coalesce((v_lanes ->> q.lane)::numeric, v_threshold),
                  case when q.exact then q.queued::text else '~' || q.queued end),
           jsonb_build_object('lane', q.lane, 'queued', q.queued, 'exact', q.exact,
                              'oldest_age_seconds',
                              round(extract(epoch from v_t0 - q.oldest_ready_at)::numeric, 1),
                              'threshold_seconds', coalesce((v_lanes ->> q.lane)::numeric, v_threshold)),
           array[q.oldest_run_id]
    from pulser_ops.lane_queues(10000) q
    where not q.paused and q.oldest_ready_at is not null
      and q.oldest_ready_at < v_t0 - make_interval(
            secs => coalesce((v_lanes ->> q.lane)::numeric, v_threshold)::double precision);
  end if;

  r := pulser_ops.rule(alert_conditions.rules, 'failure_rate');
  if r is not null then
    v_window := pulser_ops.rule_number(r, 'window_seconds', 'rules.failure_rate', 60, 604800);
    v_threshold := pulser_ops.rule_number(r, 'threshold', 'rules.failure_rate', 0, 1);
    v_min := pulser_ops.rule_number(r, 'min_runs', 'rules.failure_rate', 1, 1000000);
    return query
    with recent as (
      select x.id, x.template, x.status, x.finished_at from public.runs x
      where x.finished_at >= v_t0 - make_interval(secs => v_window::double precision)
        and x.status in ('succeeded', 'failed')
      order by x.finished_at desc limit 10000
    ), per as (
      select t.template, count(*) as runs, count(*) filter (where t.status = 'failed') as failed,
             (array_agg(t.id order by t.finished_at desc) filter (where t.status = 'failed'))[1:20]
               as ids
      from recent t group by t.template
    )
    select 'failure_rate'::text, p.template, r ->> 'severity',
           format('template %s: %s of the last %s finished runs failed (%s%%) in %s min (threshold %s%%)',
                  p.template, p.failed, p.runs, round(100.0 * p.failed / p.runs),
                  round(v_window / 60, 1), round(100 * v_threshold)),
           jsonb_build_object('template', p.template, 'runs', p.runs, 'failed', p.failed,
                              'rate', round(p.failed::numeric / p.runs, 4),
                              'threshold', v_threshold, 'window_seconds', v_window),
           p.ids
    from per p
    where p.runs >= v_min and p.failed::numeric / p.runs >= v_threshold and p.failed > 0;
  end if;
end
$$;

-- A notice for the notifier: 'firing' (a new incident), 'reminder' (still firing after the
-- reminder interval) or 'resolved'.
create type public.alert_notice as (
  alert_id uuid, notice text, rule text, subject text, severity text, summary text,
  details jsonb, run_ids uuid[], started_at timestamptz, resolved_at timestamptz,
  notifications integer
);

-- An 'alert' event on each run of an incident (firing or resolved): the run's timeline shows
-- why someone was paged. The runs are locked in id order first, in a statement of their own
-- (see "Event seqs" in 30_events_artifacts.sql).
create function pulser_ops.alert_events(a public.alerts, notice text) returns void
language plpgsql volatile set search_path = '' as $$
begin
  if cardinality(alert_events.a.run_ids) = 0 then
    return;
  end if;
  perform 1 from public.runs x where x.id = any(alert_events.a.run_ids) order by x.id
    for no key update;
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt)
  select x.id, (select coalesce(max(e.seq), 0) + 1 from public.run_events e where e.run_id = x.id),
         'alert',
         case when alert_events.notice = 'resolved' then 'info'
              when alert_events.a.severity = 'critical' then 'error'
              when alert_events.a.severity = 'warning' then 'warn' else 'info' end,
         case when alert_events.notice = 'resolved'
              then format('alert %s resolved: %s', alert_events.a.rule, alert_events.a.summary)
              else format('alert %s (%s): %s', alert_events.a.rule, alert_events.a.severity,
                          alert_events.a.summary) end,
         jsonb_build_object('alert_id', alert_events.a.id, 'rule', alert_events.a.rule,
                            'subject', alert_events.a.subject, 'notice', alert_events.notice),
         x.attempt
  from public.runs x where x.id = any(alert_events.a.run_ids);
end
$$;

-- Evaluate the rules once: open an incident for each new condition (notice 'firing'), refresh
-- the open ones (notice 'reminder' once reminder_seconds passed since the last notice; 0: never),
-- resolve the ones whose condition cleared (notice 'resolved'). One evaluator at a time (a
-- transaction-level advisory lock): a second one at the same moment returns nothing, so two
-- sweepers with alerts on never notify twice. Resolved incidents older than keep_days go.
-- rules: {"reminder_seconds": n, "keep_days": n, "stuck_runs": {...}, "dead_workers": {...},
--         "queue_age": {...}, "failure_rate": {...}}; each rule {"enabled", "severity",
--         optional "reminder_seconds", and its own keys (see alert_conditions)}.
create function public.evaluate_alerts(rules jsonb) returns setof public.alert_notice
language plpgsql volatile set search_path = '' set jit = off as $$
declare
  v_t0 timestamptz := now();
  v_reminder numeric;
  v_keep numeric;
  c record;
  a public.alerts;
  v_every numeric;
  v_open text[] := '{}';
begin
  perform pulser_ops.require_service('evaluate alerts');
  if jsonb_typeof(evaluate_alerts.rules) is distinct from 'object' then
    raise exception 'rules: expected an object' using errcode = 'PO400';
  end if;
  v_reminder := pulser_ops.rule_number(evaluate_alerts.rules, 'reminder_seconds', 'rules', 0, 31536000);
  v_keep := pulser_ops.rule_number(evaluate_alerts.rules, 'keep_days', 'rules', 1, 3650);
  if not pg_catalog.pg_try_advisory_xact_lock(7301700017) then
    return;  -- another evaluator is at it right now
  end if;

  for c in select * from pulser_ops.alert_conditions(evaluate_alerts.rules) loop
    v_open := v_open || (c.rule || '/' || c.subject);
    v_every := case when jsonb_typeof(evaluate_alerts.rules -> c.rule -> 'reminder_seconds') = 'number'
                    then pulser_ops.rule_number(evaluate_alerts.rules -> c.rule, 'reminder_seconds',
                                                'rules.' || c.rule, 0, 31536000)
                    else v_reminder end;
    select * into a from public.alerts x
     where x.rule = c.rule and x.subject = c.subject and x.status = 'firing' for update;
    if not found then
      insert into public.alerts as x (rule, subject, severity, status, summary, details, run_ids,
                                      started_at, last_seen_at, notified_at, notifications)
      values (c.rule, c.subject, c.severity, 'firing', left(c.summary, 2000), c.details,
              coalesce(c.run_ids, '{}'), v_t0, v_t0, v_t0, 1)
      returning x.* into a;
      perform pulser_ops.alert_events(a, 'firing');
      return next (a.id, 'firing', a.rule, a.subject, a.severity, a.summary, a.details, a.run_ids,
                   a.started_at, null::timestamptz, a.notifications)::public.alert_notice;
    else
      update public.alerts x
         set severity = c.severity, summary = left(c.summary, 2000), details = c.details,
             run_ids = (select coalesce(array_agg(distinct u.id), '{}') from (
                          select unnest(x.run_ids || coalesce(c.run_ids, '{}')) as id limit 200) u),
             last_seen_at = v_t0,
             notified_at = case when v_every > 0
                                 and x.notified_at <= v_t0 - make_interval(secs => v_every::double precision)
                                then v_t0 else x.notified_at end,
             notifications = x.notifications
               + case when v_every > 0
                       and x.notified_at <= v_t0 - make_interval(secs => v_every::double precision)
                      then 1 else 0 end
       where x.id = a.id
      returning x.* into a;
      if a.notified_at = v_t0 then
        return next (a.id, 'reminder', a.rule, a.subject, a.severity, a.summary, a.details,
                     a.run_ids, a.started_at, null::timestamptz, a.notifications)::public.alert_notice;
      end if;
    end if;
  end loop;

  for a in select * from public.alerts x
            where x.status = 'firing' and not (x.rule || '/' || x.subject) = any(v_open)
            order by x.started_at for update loop
    update public.alerts x set status = 'resolved', resolved_at = v_t0, last_seen_at = v_t0
     where x.id = a.id returning x.* into a;
    perform pulser_ops.alert_events(a, 'resolved');
    return next (a.id, 'resolved', a.rule, a.subject, a.severity, a.summary, a.details, a.run_ids,
                 a.started_at, a.resolved_at, a.notifications)::public.alert_notice;
  end loop;

  delete from public.alerts x
   where x.status = 'resolved' and x.resolved_at < v_t0 - make_interval(days => v_keep::integer);
end
$$;
comment on function public.evaluate_alerts(jsonb) is
  'Evaluate the alert rules once: incidents in public.alerts, alert events on their runs, and the notices to send (firing, reminder, resolved).';

-- The incidents, firing first, newest first. Security invoker: RLS lets operators read them.
create function public.list_alerts(status text default null, max_rows integer default 50)
returns setof public.alerts
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();  -- no token that names no user (15_callers.sql)
  if list_alerts.status is not null and list_alerts.status not in ('firing', 'resolved') then
    raise exception 'status: must be firing or resolved (got %)', list_alerts.status
      using errcode = 'PO400';
  end if;
  perform pulser_ops.require_between(list_alerts.max_rows, 'max_rows', 1, 1000);
  return query
  select x.* from public.alerts x
  where list_alerts.status is null or x.status = list_alerts.status
  order by x.status = 'firing' desc, x.started_at desc, x.id
  limit list_alerts.max_rows;
end
$$;
