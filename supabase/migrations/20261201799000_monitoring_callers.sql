-- pulser-ops: the monitoring functions refuse a token that names no user (issue 20, security 2,
-- after issue 17's monitoring landed).
--
-- NOTE for the merge: this file sorts after 20261201700000_monitoring.sql on purpose (it changes
-- what that migration created), so its version lies outside issue 20's range
-- (20261201400000-20261201499999). Rename it if it collides with another branch's migration.
--
-- Every function an operator may call refuses an authenticated JWT whose "sub" is not a user id
-- (pulser_ops.check_caller, 42501), and every table policy does too (caller_kind()): the
-- monitoring readers and the alerts policy now as well.

create or replace function pulser_ops.lane_queues(cap integer)
returns table (lane text, paused boolean, max_running integer, queued bigint, exact boolean,
               oldest_ready_at timestamptz, oldest_run_id uuid, templates jsonb)
language plpgsql volatile set search_path = '' set jit = off as $$
declare
  l public.lanes;
  v_n bigint;
  v_t0 timestamptz := now();
begin
  perform pulser_ops.check_caller();  -- no token that names no user (15_callers.sql)
  for l in select * from public.lanes x order by x.id loop
    select count(*) into v_n from (
      select 1 from public.runs r where r.status = 'queued' and r.lane = l.id
      limit lane_queues.cap + 1) c;
    if v_n <= lane_queues.cap then
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
        select greatest(v_n, pulser_ops.estimate_rows(format(
          'select 1 from public.runs x where x.status = %L and x.lane = %L', 'queued', l.id)))
          as total
      ), firsts as (
        select r.template from public.runs r where r.status = 'queued' and r.lane = l.id
        order by r.priority desc, r.created_at limit lane_queues.cap
      )
      select l.id, l.paused, l.max_running, (select e.total from est e), false,
             (select h.available_at from heads h), (select h.id from heads h),
             coalesce((select jsonb_object_agg(g.template,
                                               round(g.runs::numeric * e.total / lane_queues.cap))
                       from (select f.template, count(*) as runs from firsts f
                             group by f.template) g, est e),
                      '{}');
    end if;
  end loop;
end
$$;

create or replace function public.fleet_metrics(
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
    if v_rows <= fleet_metrics.exact_limit then
      select coalesce(jsonb_agg(jsonb_build_object('lane', g.lane, 'template', g.template,
                                                   'status', g.status, 'runs', g.runs)
                                order by g.lane, g.template, g.status), '[]')
        into v_finished
      from (select r.lane, r.template, r.status, count(*) as runs from public.runs r
            where r.status in ('succeeded', 'failed', 'cancelled')
            group by r.lane, r.template, r.status) g;
    else
      v_finished_exact := false;
      v_pct := least(100, 100.0 * fleet_metrics.exact_limit / v_rows);
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

create or replace function public.performance_stats(
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
           sum(w.weight) as runs,
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

create or replace function public.list_alerts(status text default null, max_rows integer default 50)
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

alter policy "operators read alerts" on public.alerts to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
