-- pulser-ops: performance_stats over a window with no finished run (issue 17's function).
--
-- Its total row comes from the empty grouping set, whose sum() over no rows is null, so
-- `pulser-ops stats` on a fresh project failed to read the reply (total.runs: null). The total
-- counts zero runs now. Same signature, so its grants and comment stand.

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
