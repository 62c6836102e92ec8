-- pulser-ops: a token that names no user is no one (issue 20, security 2).
--
-- An authenticated JWT without "sub" (or with one that is not a user id) made auth.uid() null,
-- and null matched the null owner of what the service role creates: such a caller got back the
-- service role's run for a shared idempotency key, saw its id in a conflict, and could enqueue
-- into a service-created session. caller_kind() now refuses such a token (42501, with a message
-- that says why), and every API function an operator may call reaches it first: the writers
-- through their own checks, the readers through pulser_ops.check_caller(), the policies of the
-- shared tables (lanes, templates, workers) through caller_kind() itself.

create or replace function pulser_ops.caller_kind() returns text
language plpgsql stable set search_path = '' as $$
-- plpgsql, not sql: a SQL function with SET search_path is never inlined and is re-planned on
-- every call, and this runs in every API call (bench/experiments/caller_kind_plpgsql.sql).
declare
  r text := nullif(pg_catalog.current_setting('role'), 'none');
begin
  if r = 'service_role' then
    return 'service';
  elsif r = 'authenticated' then
    -- A token that names no user would own nothing and match every row owned by nobody (the
    -- service role's): refused here, so every operator call and policy refuses it.
    if coalesce(auth.jwt() ->> 'sub', '')
       !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      raise exception 'permission denied: the access token names no user (its JWT has no user id in "sub")'
        using errcode = '42501',
              hint = 'Operators call with a signed-in user''s access token; workers use the service role key.';
    end if;
    return case when coalesce(auth.jwt() -> 'app_metadata' ->> 'ops_role', '') = 'admin'
                then 'admin' else 'operator' end;
  elsif r = 'anon' then
    return 'anon';
  elsif coalesce((select rolsuper from pg_catalog.pg_roles where rolname = coalesce(r, session_user)), false)
        or pg_catalog.pg_has_role(coalesce(r, session_user), 'service_role', 'USAGE') then
    return 'service';
  end if;
  return 'none';
end
$$;

create function pulser_ops.check_caller() returns void
language plpgsql stable set search_path = '' as $$
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: sign in to read the control plane' using errcode = '42501';
  end if;
end
$$;

revoke all on function pulser_ops.check_caller() from public, anon, authenticated, service_role;
grant execute on function pulser_ops.check_caller() to authenticated, service_role;

create or replace function public.get_run(run_id uuid) returns public.runs
language plpgsql stable set search_path = '' as $$
declare
  r public.runs;
begin
  perform pulser_ops.check_caller();
  select * into r from public.runs x where x.id = get_run.run_id;
  if not found then
    raise exception 'run % not found', get_run.run_id using errcode = 'PO404';
  end if;
  return r;
end
$$;

create or replace function public.list_runs(
  status text[] default null, lanes text[] default null, template text default null,
  session_id uuid default null, created_after timestamptz default null,
  created_before timestamptz default null, stuck boolean default false,
  max_rows integer default 100, after_id uuid default null
) returns setof public.runs
language plpgsql stable set search_path = '' as $$
declare
  cursor_at timestamptz;
begin
  perform pulser_ops.check_caller();
  if list_runs.max_rows is null or list_runs.max_rows not between 1 and 1000 then
    raise exception 'max_rows: must be between 1 and 1000' using errcode = 'PO400';
  end if;
  if list_runs.status is not null
     and not list_runs.status <@ array['queued', 'running', 'succeeded', 'failed', 'cancelled'] then
    raise exception 'status: unknown status in %', list_runs.status using errcode = 'PO400';
  end if;
  if list_runs.after_id is not null then
    select x.created_at into cursor_at from public.runs x where x.id = list_runs.after_id;
    if not found then
      raise exception 'after_id: run % not found', list_runs.after_id using errcode = 'PO404';
    end if;
  end if;
  return query
  select x.* from public.runs x
  where (list_runs.status is null or x.status = any(list_runs.status))
    and (list_runs.lanes is null or x.lane = any(list_runs.lanes))
    and (list_runs.template is null or x.template = list_runs.template)
    and (list_runs.session_id is null or x.session_id = list_runs.session_id)
    and (list_runs.created_after is null or x.created_at >= list_runs.created_after)
    and (list_runs.created_before is null or x.created_at < list_runs.created_before)
    and (not list_runs.stuck or (x.status in ('queued', 'running') and x.sweep_count > 0)
         or (x.status = 'running' and x.lease_expires_at < now()))
    and (cursor_at is null or (x.created_at, x.id) < (cursor_at, list_runs.after_id))
  order by x.created_at desc, x.id desc
  limit list_runs.max_rows;
end
$$;

create or replace function public.list_run_events(run_id uuid, after_seq bigint default 0,
                                       max_rows integer default 1000)
returns setof public.run_events
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select e.* from public.run_events e
  where e.run_id = list_run_events.run_id and e.seq > coalesce(list_run_events.after_seq, 0)
  order by e.seq
  limit least(greatest(coalesce(list_run_events.max_rows, 1000), 1), 5000);
end
$$;

create or replace function public.list_run_steps(run_id uuid) returns setof public.run_steps
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.run_steps s where s.run_id = list_run_steps.run_id
  order by s.attempt, s.idx;
end
$$;

create or replace function public.list_artifacts(run_id uuid) returns setof public.artifacts
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select a.* from public.artifacts a where a.run_id = list_artifacts.run_id order by a.name;
end
$$;

create or replace function public.get_artifact(run_id uuid, name text) returns public.artifacts
language plpgsql stable set search_path = '' as $$
declare
  a public.artifacts;
begin
  perform pulser_ops.check_caller();
  select * into a from public.artifacts x where x.run_id = get_artifact.run_id and x.name = get_artifact.name;
  if not found then
    raise exception 'artifact % of run % not found', get_artifact.name, get_artifact.run_id
      using errcode = 'PO404';
  end if;
  return a;
end
$$;

create or replace function public.list_templates() returns setof public.run_templates
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select t.* from public.run_templates t order by t.name;
end
$$;

create or replace function public.get_template(name text) returns public.run_templates
language plpgsql stable set search_path = '' as $$
declare
  t public.run_templates;
begin
  perform pulser_ops.check_caller();
  select * into t from public.run_templates x where x.name = get_template.name;
  if not found then
    raise exception 'template % not found', get_template.name using errcode = 'PO404';
  end if;
  return t;
end
$$;

create or replace function public.list_lanes() returns setof public.lanes
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select l.* from public.lanes l order by l.id;
end
$$;

create or replace function public.list_sessions(max_rows integer default 100) returns setof public.sessions
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.sessions s order by s.created_at desc
  limit least(greatest(coalesce(list_sessions.max_rows, 100), 1), 1000);
end
$$;

create or replace function public.list_workers() returns setof public.workers
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select w.* from public.workers w order by w.id;
end
$$;

create or replace function public.runs_changed_since(since timestamptz, lanes text[] default null,
                                          max_rows integer default 1000)
returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select x.* from public.runs x
  where x.updated_at >= runs_changed_since.since
    and (runs_changed_since.lanes is null or x.lane = any(runs_changed_since.lanes))
    and (x.status in ('queued', 'running') or x.finished_at >= runs_changed_since.since)
  order by x.updated_at
  limit least(greatest(coalesce(runs_changed_since.max_rows, 1000), 1), 10000);
end
$$;

create or replace function public.get_runs(run_ids uuid[]) returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select x.* from public.runs x where x.id = any(get_runs.run_ids) order by x.created_at, x.id;
end
$$;

create or replace function public.get_lane_stats() returns setof public.lane_stats
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.lane_stats s order by s.lane, s.status;
end
$$;

create or replace function public.get_worker_health() returns setof public.worker_health
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select h.* from public.worker_health h order by h.id;
end
$$;

create or replace function public.list_stuck_runs(max_rows integer default 100) returns setof public.stuck_runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.stuck_runs s order by s.sweep_count desc, s.since_heartbeat_seconds desc
  limit least(greatest(coalesce(list_stuck_runs.max_rows, 100), 1), 1000);
end
$$;

create or replace function public.list_spec_docs(
  run_id uuid default null, session_id uuid default null, max_rows integer default 100
) returns setof public.spec_docs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.spec_docs s
   where (list_spec_docs.run_id is null or s.run_id = list_spec_docs.run_id)
     and (list_spec_docs.session_id is null or s.session_id = list_spec_docs.session_id)
   order by s.created_at, s.path, s.id
   limit least(greatest(coalesce(list_spec_docs.max_rows, 100), 1), 1000);
end
$$;
comment on function public.list_spec_docs(uuid, uuid, integer) is
  'Spec docs the caller may see (RLS), by run and/or session, oldest first.';

create or replace function pulser_ops.runs_where(filter jsonb) returns text
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

create or replace function pulser_ops.estimate_rows(query text) returns bigint
language plpgsql volatile set search_path = '' as $$
declare
  plan jsonb;
begin
  perform pulser_ops.check_caller();
  execute 'explain (format json) ' || estimate_rows.query into plan;
  return greatest(0, round((plan -> 0 -> 'Plan' ->> 'Plan Rows')::numeric))::bigint;
end
$$;

create or replace function public.search_runs(filter jsonb default '{}', max_rows integer default 50)
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

create or replace function public.board_snapshot(running_limit integer default 100)
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

create or replace function pulser_ops.bulk_candidates(run_ids uuid[], filter jsonb, eligible text, max_rows integer)
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

create or replace function pulser_ops.bulk_runs(
  action text, run_ids uuid[], filter jsonb, max_runs integer, dry_run boolean, reason text
) returns table (matched bigint, affected integer, capped boolean, touched uuid[])
language plpgsql volatile set search_path = '' as $$
declare
  eligible text := case bulk_runs.action
    when 'cancel' then 'x.status in (''queued'', ''running'') and x.cancel_requested_at is null'
    when 'rerun' then 'x.status = ''failed''' end;
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
      else
        done := done || pulser_ops.rerun(id, null, null);
      end if;
    end loop;
  end if;
  return query select n, cardinality(done), n > bulk_runs.max_runs, done;
end
$$;

create or replace function public.upsert_templates(templates jsonb) returns setof public.run_templates
language plpgsql volatile set search_path = '' as $$
declare
  item jsonb;
  n bigint;
  msg text;
  code text;
  hint text;
begin
  -- Who first (as upsert_template would), so that a caller who may not is told that, whatever
  -- the input. (This function runs with the caller's rights: is_admin, not require_admin.)
  if not pulser_ops.is_admin() then
    raise exception 'permission denied: only an admin or the service role may change templates'
      using errcode = '42501', hint = 'Admins carry app_metadata.ops_role = ''admin'' in their JWT.';
  end if;
  if jsonb_typeof(upsert_templates.templates) is distinct from 'array'
     or jsonb_array_length(upsert_templates.templates) = 0 then
    raise exception 'templates: expected a non-empty array of template objects' using errcode = 'PO400';
  end if;
  if jsonb_array_length(upsert_templates.templates) > 200 then
    raise exception 'templates: at most 200 per call (got %)', jsonb_array_length(upsert_templates.templates)
      using errcode = 'PO400';
  end if;
  if (select count(distinct e ->> 'name') <> count(*)
      from jsonb_array_elements(upsert_templates.templates) e) then
    raise exception 'templates: a name appears more than once' using errcode = 'PO400';
  end if;
  for item, n in
    select e, i from jsonb_array_elements(upsert_templates.templates) with ordinality as a(e, i)
  loop
    begin
      return next pulser_ops.upsert_template(item);
    exception when others then
      get stacked diagnostics msg = message_text, code = returned_sqlstate, hint = pg_exception_hint;
      raise exception 'templates[%] (%): %', n - 1, coalesce(item ->> 'name', 'no name'), msg
        using errcode = code, hint = coalesce(hint, '');
    end;
  end loop;
end
$$;
comment on function public.upsert_templates(jsonb) is
  'Create or update several templates in one transaction: all of them, or none.';

alter policy "operators read lanes" on public.lanes to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
alter policy "operators read templates" on public.run_templates to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
alter policy "operators read workers" on public.workers to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
