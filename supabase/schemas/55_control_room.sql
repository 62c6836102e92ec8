-- pulser-ops: the Ops Control Room's reads and bulk actions, so the board, the CLI and the SDK
-- agree on one query each:
--   board_snapshot   one round trip for the Runboard: per lane depth, age, 1-hour throughput,
--                    running runs with their last log line, stuck runs
--   search_runs      the runs list: every filter, keyset pagination, newest first
--   count_runs       a count that stays fast at millions of rows: exact up to a cap, else the
--                    planner's estimate (shown as "≈"), as Supabase Studio does
--   bulk_cancel_runs / bulk_rerun_runs / bulk_run_now   by ids or by filter, with a dry run (the preview count)
--                    and a cap
--   rerun_run        a new run from an old one, with the same or edited params (validated
--                    against the template's schema by enqueue_runs)
-- All public functions are SECURITY INVOKER: RLS decides what each caller sees (another
-- operator's run is not a candidate of a bulk action, and re-running it is "not found", just
-- like an id that does not exist). The writes go
-- through the existing checked implementations (pulser_ops.cancel_run, pulser_ops.enqueue_runs).
-- Grants: in 90_security.sql, like every other function's.

-- ---------------------------------------------------------------------------
-- Filters: one builder, used by search, count and the bulk actions
-- ---------------------------------------------------------------------------

-- The WHERE clause for a run filter (a jsonb object), with every value quoted as a literal.
-- Dynamic SQL on purpose: each call is planned with its own values, so a template filter uses
-- the template index and an empty filter walks runs_created_idx, instead of one generic plan
-- full of "x is null or ..." branches.
-- Keys: status[] lanes[] template templates[] worker session_id q created_after created_before
--       before {created_at, id} (keyset cursor: rows strictly after it, newest first).
-- q: text in params or error (case-insensitive), or a run id; only the newest 100000 runs the
-- caller can see are searched, so a rare word cannot scan millions of rows (Oban does the same).
create function pulser_ops.runs_where(filter jsonb) returns text
language plpgsql stable set search_path = '' as $$
declare
  f jsonb := coalesce(runs_where.filter, '{}');
  k text;
  parts text[] := array['true'];
  statuses text[];
  lanes text[];
  templates text[];
  q text;
  pat text;
  ts timestamptz;
begin
  perform pulser_ops.check_caller();
  if jsonb_typeof(f) <> 'object' then
    raise exception 'filter: expected an object' using errcode = 'PO400';
  end if;
  for k in select jsonb_object_keys(f) loop
    if k not in ('status', 'lanes', 'template', 'templates', 'worker', 'session_id', 'q',
                 'created_after', 'created_before', 'before') then
      raise exception 'filter: unknown key %', k
        using errcode = 'PO400',
              hint = 'Known: status, lanes, template, templates, worker, session_id, q, created_after, created_before, before.';
    end if;
  end loop;
  begin
    if jsonb_typeof(f -> 'status') = 'array' then
      statuses := array(select jsonb_array_elements_text(f -> 'status'));
      if not statuses <@ array['queued', 'running', 'succeeded', 'failed', 'cancelled'] then
        raise exception 'filter.status: unknown status in %', statuses using errcode = 'PO400';
      end if;
      if cardinality(statuses) > 0 then
        parts := parts || format('x.status = any(%L::text[])', statuses);
      end if;
    end if;
    if jsonb_typeof(f -> 'lanes') = 'array' then
      lanes := array(select jsonb_array_elements_text(f -> 'lanes'));
      if not lanes <@ array['A', 'B', 'C', 'D'] then
        raise exception 'filter.lanes: unknown lane in %', lanes using errcode = 'PO400';
      end if;
      if cardinality(lanes) > 0 then
        parts := parts || format('x.lane = any(%L::text[])', lanes);
      end if;
    end if;
    templates := array(select jsonb_array_elements_text(
                   case jsonb_typeof(f -> 'templates') when 'array' then f -> 'templates' else '[]' end));
    if nullif(f ->> 'template', '') is not null then
      templates := templates || (f ->> 'template');
    end if;
    if cardinality(templates) = 1 then
      parts := parts || format('x.template = %L', templates[1]);
    elsif cardinality(templates) > 1 then
      parts := parts || format('x.template = any(%L::text[])', templates);
    end if;
    if nullif(f ->> 'worker', '') is not null then
      parts := parts || format('x.worker_id = %L', f ->> 'worker');
    end if;
    if nullif(f ->> 'session_id', '') is not null then
      parts := parts || format('x.session_id = %L::uuid', (f ->> 'session_id')::uuid);
    end if;
    if nullif(f ->> 'created_after', '') is not null then
      ts := (f ->> 'created_after')::timestamptz;
      parts := parts || format('x.created_at >= %L::timestamptz', ts);
    end if;
    if nullif(f ->> 'created_before', '') is not null then
      ts := (f ->> 'created_before')::timestamptz;
      parts := parts || format('x.created_at < %L::timestamptz', ts);
    end if;
    if jsonb_typeof(f -> 'before') = 'object' then
      parts := parts || format('(x.created_at, x.id) < (%L::timestamptz, %L::uuid)',
                               (f -> 'before' ->> 'created_at')::timestamptz,
                               (f -> 'before' ->> 'id')::uuid);
    end if;
  exception
    when invalid_text_representation or invalid_datetime_format or datetime_field_overflow then
      raise exception 'filter: %', sqlerrm using errcode = 'PO400';
  end;
  q := btrim(coalesce(f ->> 'q', ''));
  if q <> '' then
    if char_length(q) > 200 then
      raise exception 'filter.q: at most 200 characters' using errcode = 'PO400';
    end if;
    if q ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      parts := parts || format('x.id = %L::uuid', q::uuid);
    else
      pat := '%' || replace(replace(replace(q, '\', '\\'), '%', '\%'), '_', '\_') || '%';
      parts := parts || format(
        '(x.params::text ilike %1$L or x.error ilike %1$L or x.cancel_reason ilike %1$L)', pat);
      parts := parts || ('x.created_at >= coalesce((select w.created_at from public.runs w'
        ' order by w.created_at desc, w.id desc offset 99999 limit 1), ''-infinity'')')::text;
    end if;
  end if;
  return array_to_string(parts, ' and ');
end
$$;

-- Rows the planner expects a query to return (the estimate of EXPLAIN, no execution).
create function pulser_ops.estimate_rows(query text) returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  plan jsonb;
begin
  perform pulser_ops.check_caller();
  execute 'explain (format json) ' || estimate_rows.query into plan;
  return greatest(0, round((plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric))::bigint;
end
$$;

-- ---------------------------------------------------------------------------
-- Readers
-- ---------------------------------------------------------------------------

create function public.search_runs(filter jsonb default '{}', max_rows integer default 50)
returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  if search_runs.max_rows is null or search_runs.max_rows not between 1 and 1000 then
    raise exception 'max_rows: must be between 1 and 1000' using errcode = 'PO400';
  end if;
  return query execute format(
    'select x.* from public.runs x where %s order by x.created_at desc, x.id desc limit %s',
    pulser_ops.runs_where(search_runs.filter), search_runs.max_rows);
end
$$;

-- How many runs match: exact while there are at most max_exact of them (counting stops at
-- max_exact + 1, so the cost is bounded by the cap, not by the table), else the planner's
-- estimate with exact = false, which the board shows as "≈". A function cannot arm a
-- statement_timeout for itself (it is armed per client statement), so the bound is the cap.
create function public.count_runs(filter jsonb default '{}', max_exact integer default 10000)
returns table (runs bigint, exact boolean)
language plpgsql volatile set search_path = '' as $$
declare
  w text := pulser_ops.runs_where(count_runs.filter);
  n bigint;
  est bigint;
begin
  if count_runs.max_exact is null or count_runs.max_exact not between 1 and 1000000 then
    raise exception 'max_exact: must be between 1 and 1000000' using errcode = 'PO400';
  end if;
  execute format('select count(*) from (select 1 from public.runs x where %s limit %s) c',
                 w, count_runs.max_exact + 1) into n;
  if n <= count_runs.max_exact then
    return query select n, true;
    return;
  end if;
  est := pulser_ops.estimate_rows(format('select 1 from public.runs x where %s', w));
  return query select greatest(est, n), false;
end
$$;

-- The Runboard in one round trip. Security invoker: an operator's board counts their own runs.
-- Two columns, not one: PostgREST answers a single-column table like a scalar.
create function public.board_snapshot(running_limit integer default 100)
returns table (board jsonb, taken_at timestamptz)
language plpgsql stable set search_path = '' as $$
declare
  t0 timestamptz := now();
  hour_ago timestamptz := date_trunc('minute', now()) - interval '59 minutes';
  lanes jsonb;
  running jsonb;
  running_total bigint;
  stuck jsonb;
begin
  perform pulser_ops.check_caller();
  if board_snapshot.running_limit is null or board_snapshot.running_limit not between 1 and 1000 then
    raise exception 'running_limit: must be between 1 and 1000' using errcode = 'PO400';
  end if;
  with finished as (
    -- runs_finished_idx: only the last hour is read, however many runs finished before.
    select r.lane, r.status,
           (extract(epoch from date_trunc('minute', r.finished_at) - hour_ago) / 60)::int as slot
    from public.runs r
    where r.finished_at >= hour_ago
  ), per_slot as (
    select f.lane, f.slot,
           count(*) as done,
           count(*) filter (where f.status = 'failed') as failed
    from finished f group by f.lane, f.slot
  )
  select jsonb_agg(jsonb_build_object(
           'lane', l.id, 'paused', l.paused, 'max_running', l.max_running,
           'description', l.description,
           'queued', q.queued, 'scheduled', q.scheduled,
           'oldest_queued_age_seconds', q.oldest,
           'running', (select count(*) from public.runs r where r.lane = l.id and r.status = 'running'),
           'succeeded_1h', (select count(*) from public.runs r where r.lane = l.id
                              and r.finished_at >= hour_ago and r.status = 'succeeded'),
           'failed_1h', (select count(*) from public.runs r where r.lane = l.id
                           and r.finished_at >= hour_ago and r.status = 'failed'),
           'cancelled_1h', (select count(*) from public.runs r where r.lane = l.id
                              and r.finished_at >= hour_ago and r.status = 'cancelled'),
           'throughput', (select jsonb_agg(coalesce(p.done, 0) order by s.slot)
                          from generate_series(0, 59) s(slot)
                          left join per_slot p on p.lane = l.id and p.slot = s.slot),
           'failures', (select jsonb_agg(coalesce(p.failed, 0) order by s.slot)
                        from generate_series(0, 59) s(slot)
                        left join per_slot p on p.lane = l.id and p.slot = s.slot))
         order by l.id)
    into lanes
  from public.lanes l
  cross join lateral (
    select count(*) filter (where r.available_at <= t0) as queued,
           count(*) filter (where r.available_at > t0) as scheduled,
           round(extract(epoch from t0 - min(r.available_at) filter (where r.available_at <= t0))::numeric, 1)
             as oldest
    from public.runs r where r.lane = l.id and r.status = 'queued'
  ) q;

  select count(*) into running_total from public.runs r where r.status = 'running';
  select coalesce(jsonb_agg(to_jsonb(x) order by x.claimed_at), '[]') into running
  from (
    select r.id, r.template, r.lane, r.status, r.attempt, r.max_attempts, r.worker_id,
           r.claimed_at, r.heartbeat_at, r.lease_expires_at, r.lease_seconds,
           r.cancel_requested_at, r.created_at, r.priority,
           (select jsonb_build_object('seq', e.seq, 'at', e.at, 'level', e.level, 'kind', e.kind,
                                      'message', left(e.message, 500))
              from public.run_events e where e.run_id = r.id
              order by e.seq desc limit 1) as last_event
    from public.runs r
    where r.status = 'running'
    order by r.claimed_at
    limit board_snapshot.running_limit
  ) x;

  select jsonb_build_object('count', count(*),
                            'ids', coalesce((array_agg(s.id order by s.lease_expires_at))[1:20], '{}'))
    into stuck
  from public.runs s
  where s.status = 'running' and s.lease_expires_at < t0;

  return query select jsonb_build_object(
    'now', t0, 'lanes', lanes, 'running', running, 'running_total', running_total,
    'stuck', stuck), t0;
end
$$;

-- ---------------------------------------------------------------------------
-- Re-run: a new run from an old one (terminal runs never change)
-- ---------------------------------------------------------------------------

-- Checked like cancel: the caller must be allowed to act on the source run (its owner, an
-- admin or the service role). The new run belongs to the caller; both runs get an event that
-- links them. params null: the source's params; lane null: the source's lane.
create function pulser_ops.rerun(source uuid, params jsonb, lane text) returns uuid
language plpgsql volatile security definer set search_path = '' as $$
declare
  src public.runs;
  fresh public.runs;
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: anonymous callers may not re-run runs' using errcode = '42501';
  end if;
  src := pulser_ops.lock_run_for(rerun.source, 're-run');
  select * into fresh from pulser_ops.enqueue_runs(jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
    'template', src.template,
    'params', coalesce(rerun.params, src.params),
    'lane', coalesce(rerun.lane, src.lane),
    'priority', src.priority,
    'session_id', src.session_id))));
  perform pulser_ops.add_event(fresh.id, 'rerun_of', 'info',
    format('re-run of %s by %s%s', src.id, who,
           case when rerun.params is not null and rerun.params <> src.params
                then ' (edited params)' else '' end),
    jsonb_build_object('rerun_of', src.id, 'by', who, 'edited', rerun.params is not null
                       and rerun.params <> src.params), 0, null);
  perform pulser_ops.add_event(src.id, 'rerun', 'info', format('re-run as %s by %s', fresh.id, who),
    jsonb_build_object('rerun', fresh.id, 'by', who), src.attempt, null);
  return fresh.id;
end
$$;

create function public.rerun_run(run_id uuid, params jsonb default null, lane text default null)
returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  fresh uuid := pulser_ops.rerun(rerun_run.run_id, rerun_run.params, rerun_run.lane);
  r public.runs;
begin
  select * into r from public.runs x where x.id = fresh;
  return r;
end
$$;

-- ---------------------------------------------------------------------------
-- Bulk actions: by ids or by filter, previewed by a dry run, capped
-- ---------------------------------------------------------------------------

-- The runs a bulk action would touch: the given ids or the filter (never both, never neither),
-- narrowed to the runs the action applies to, newest first. Security invoker: only runs the
-- caller can see are candidates; the per-run action checks the caller again.
create function pulser_ops.bulk_candidates(run_ids uuid[], filter jsonb, eligible text, max_rows integer)
returns setof uuid
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  if (bulk_candidates.run_ids is null) = (bulk_candidates.filter is null) then
    raise exception 'give either run_ids or a filter' using errcode = 'PO400';
  end if;
  if bulk_candidates.run_ids is not null and cardinality(bulk_candidates.run_ids) > 10000 then
    raise exception 'run_ids: at most 10000 ids' using errcode = 'PO400';
  end if;
  return query execute format(
    'select x.id from public.runs x where %s and %s order by x.created_at desc, x.id desc limit %s',
    case when bulk_candidates.run_ids is not null
         then format('x.id = any(%L::uuid[])', bulk_candidates.run_ids)
         else pulser_ops.runs_where(bulk_candidates.filter) end,
    bulk_candidates.eligible, bulk_candidates.max_rows);
end
$$;

-- One bulk action (cancel, rerun or run_now) by ids or filter. matched: how many runs it applies to
-- (counted up to 100000); capped: more than max_runs match, so only the newest max_runs are
-- acted on; affected/touched: what was done (the cancelled runs; for a re-run, the new runs).
-- dry_run: count only (the preview). Each run goes through the checked single-run action.
create function pulser_ops.bulk_runs(
  action text, run_ids uuid[], filter jsonb, max_runs integer, dry_run boolean, reason text
) returns table (matched bigint, affected integer, capped boolean, touched uuid[])
language plpgsql volatile set search_path = '' as $$
declare
  eligible text := case bulk_runs.action
    when 'cancel' then 'x.status in (''queued'', ''running'') and x.cancel_requested_at is null'
    when 'rerun' then 'x.status = ''failed'''
    when 'run_now' then 'x.status = ''queued'' and x.available_at > now()' end;
  n bigint;
  id uuid;
  done uuid[] := '{}';
begin
  perform pulser_ops.check_caller();
  if eligible is null then
    raise exception 'action: unknown bulk action %', bulk_runs.action using errcode = 'PO400';
  end if;
  if bulk_runs.max_runs is null or bulk_runs.max_runs not between 1 and 10000 then
    raise exception 'max_runs: must be between 1 and 10000' using errcode = 'PO400';
  end if;
  select count(*) into n
    from pulser_ops.bulk_candidates(bulk_runs.run_ids, bulk_runs.filter, eligible, 100001) c;
  if not bulk_runs.dry_run then
    for id in select c from pulser_ops.bulk_candidates(
                bulk_runs.run_ids, bulk_runs.filter, eligible, bulk_runs.max_runs) c loop
      if bulk_runs.action = 'cancel' then
        perform pulser_ops.cancel_run(id, bulk_runs.reason);
        done := done || id;
      elsif bulk_runs.action = 'run_now' then
        perform pulser_ops.run_now(id);
        done := done || id;
      else
        done := done || pulser_ops.rerun(id, null, null);
      end if;
    end loop;
  end if;
  return query select n, cardinality(done), n > bulk_runs.max_runs, done;
end
$$;

create function public.bulk_cancel_runs(
  run_ids uuid[] default null, filter jsonb default null, max_runs integer default 1000,
  dry_run boolean default false, reason text default null
) returns table (matched bigint, affected integer, capped boolean, touched uuid[])
language sql volatile set search_path = '' as $$
  select * from pulser_ops.bulk_runs('cancel', bulk_cancel_runs.run_ids, bulk_cancel_runs.filter,
    bulk_cancel_runs.max_runs, bulk_cancel_runs.dry_run, bulk_cancel_runs.reason)
$$;

-- Re-enqueue failed runs: each gets a new run with the same params (see rerun_run).
create function public.bulk_rerun_runs(
  run_ids uuid[] default null, filter jsonb default null, max_runs integer default 1000,
  dry_run boolean default false
) returns table (matched bigint, affected integer, capped boolean, touched uuid[])
language sql volatile set search_path = '' as $$
  select * from pulser_ops.bulk_runs('rerun', bulk_rerun_runs.run_ids, bulk_rerun_runs.filter,
    bulk_rerun_runs.max_runs, bulk_rerun_runs.dry_run, null)
$$;

-- Make waiting runs claimable now (see run_now): e.g. every retry waiting out its backoff, once
-- the outage that failed them is over.
create function public.bulk_run_now(
  run_ids uuid[] default null, filter jsonb default null, max_runs integer default 1000,
  dry_run boolean default false
) returns table (matched bigint, affected integer, capped boolean, touched uuid[])
language sql volatile set search_path = '' as $$
  select * from pulser_ops.bulk_runs('run_now', bulk_run_now.run_ids, bulk_run_now.filter,
    bulk_run_now.max_runs, bulk_run_now.dry_run, null)
$$;
