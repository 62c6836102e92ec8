-- pulser-ops: a Prometheus scrape reads at most about a thousand rows per lane (issue 17 asks
-- fleet_metrics to cost the database a few milliseconds at 1,000,000 runs).
--
-- Measured at 1,000,000 runs with 10,000 queued (bench/b_metrics.py): reading the queued rows
-- for the per-template split and the oldest ready run, and a 1 % block sample of the finished
-- runs, cost about 1 us of heap access per row, 16 to 30 ms per scrape. The depth of a lane is
-- still counted exactly up to exact_limit (in runs_claim_idx); the rows themselves are read up
-- to pulser_ops.metrics_read_budget() (1,000) per lane, and the finished runs are sampled to
-- about as many. Same signatures: grants and comments stand; the new helper is granted below.

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
create or replace function pulser_ops.lane_queues(cap integer)
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

-- One round trip per scrape. exact_limit: queued runs counted exactly per lane (their
-- templates exactly up to pulser_ops.metrics_read_budget() runs, see lane_queues). Finished
-- runs are counted exactly while the table holds at most the smaller of the two, above that
-- from a block sample of about that many rows, scaled up. Workers count while not stopped and seen within forget_seconds; stale once
-- unseen for stale_beats x their heartbeat interval (metadata.heartbeat_seconds, else 10 s).
-- Two columns, not one: PostgREST answers a single-column table like a scalar.
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

revoke all on function pulser_ops.metrics_read_budget() from public, anon, authenticated, service_role;
grant execute on function pulser_ops.metrics_read_budget() to authenticated, service_role;
