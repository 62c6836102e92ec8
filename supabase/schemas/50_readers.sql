-- pulser-ops: the readers. Functions and views that only read, all security invoker, so row
-- level security (90_security.sql) decides what each caller sees. Each function first refuses
-- a caller that is no one (pulser_ops.check_caller: anon, a token that names no user).

create function public.get_run(run_id uuid) returns public.runs
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

-- The run, when it has the same owner as another run (two runs of no owner count as the same):
-- how a worker, with the service role's rights over every run, reads only what the owner of the
-- run it is working on could read, e.g. a Spec Kit validation reading the kit another run of the
-- same operator generated. Another owner's run is answered like one that does not exist, so a
-- run cannot probe which ids exist.
create function public.get_run_on_behalf_of(run_id uuid, of_run uuid) returns public.runs
language plpgsql stable set search_path = '' as $$
declare
  r public.runs;
begin
  perform pulser_ops.require_service('read a run on behalf of another run''s owner');
  select x.* into r
  from public.runs x
  join public.runs a on a.id = get_run_on_behalf_of.of_run
  where x.id = get_run_on_behalf_of.run_id and x.owner_id is not distinct from a.owner_id;
  if not found then
    raise exception 'run % not found', get_run_on_behalf_of.run_id using errcode = 'PO404';
  end if;
  return r;
end
$$;

create function public.list_runs(
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

create function public.list_run_events(run_id uuid, after_seq bigint default 0,
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

-- A run's lifecycle events (the control room's attempts timeline), however many log lines it
-- has: every claim, retry, release, sweep, cancel request, re-run and its terminal event. Being
-- enqueued writes no event (it would cost the hot path an insert per run): the run's created_at
-- says when.
create function public.list_run_timeline(run_id uuid, max_rows integer default 500)
returns setof public.run_events
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select e.* from public.run_events e
  where e.run_id = list_run_timeline.run_id
    and e.kind in ('claimed', 'retry_scheduled', 'released', 'swept', 'cancel_requested',
                   'cancelled', 'succeeded', 'failed', 'rerun', 'rerun_of', 'run_now')
  order by e.seq
  limit least(greatest(coalesce(list_run_timeline.max_rows, 500), 1), 5000);
end
$$;

-- A run's newest events, oldest first: the tail of its log (chat's `logs`, the MCP server's
-- get_run), read backwards through the primary key however long the log is.
create function public.list_last_run_events(run_id uuid, max_rows integer default 20)
returns setof public.run_events
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select t.* from (
    select e.* from public.run_events e
    where e.run_id = list_last_run_events.run_id
    order by e.seq desc
    limit least(greatest(coalesce(list_last_run_events.max_rows, 20), 1), 1000)
  ) t order by t.seq;
end
$$;

create function public.list_run_steps(run_id uuid) returns setof public.run_steps
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.run_steps s where s.run_id = list_run_steps.run_id
  order by s.attempt, s.idx;
end
$$;

-- Every artifact of every attempt, by name then attempt.
create function public.list_artifacts(run_id uuid) returns setof public.artifacts
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select a.* from public.artifacts a where a.run_id = list_artifacts.run_id
  order by a.name, coalesce(a.attempt, 0);
end
$$;

-- One artifact: of the given attempt, or (attempt null) of the latest attempt that saved it.
create function public.get_artifact(run_id uuid, name text, attempt integer default null)
returns public.artifacts
language plpgsql stable set search_path = '' as $$
declare
  a public.artifacts;
begin
  perform pulser_ops.check_caller();
  select * into a from public.artifacts x
   where x.run_id = get_artifact.run_id and x.name = get_artifact.name
     and (get_artifact.attempt is null or coalesce(x.attempt, 0) = get_artifact.attempt)
   order by coalesce(x.attempt, 0) desc
   limit 1;
  if not found then
    raise exception 'artifact % of run % not found%', get_artifact.name, get_artifact.run_id,
      case when get_artifact.attempt is null then '' else format(' (attempt %s)', get_artifact.attempt) end
      using errcode = 'PO404';
  end if;
  return a;
end
$$;

create function public.list_templates() returns setof public.run_templates
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select t.* from public.run_templates t order by t.name;
end
$$;

create function public.get_template(name text) returns public.run_templates
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

create function public.list_lanes() returns setof public.lanes
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select l.* from public.lanes l order by l.id;
end
$$;

create function public.list_sessions(max_rows integer default 100) returns setof public.sessions
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.sessions s order by s.created_at desc
  limit least(greatest(coalesce(list_sessions.max_rows, 100), 1), 1000);
end
$$;

create function public.list_workers() returns setof public.workers
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select w.* from public.workers w order by w.id;
end
$$;

-- Catch-up after a reconnect: runs that changed at or after `since` (plus every unfinished run
-- touched since, found through the partial indexes), so a subscriber misses nothing.
-- In (updated_at, id) order, and `after_id` continues after the row (`since`, `after_id`): a
-- keyset for callers that read it page by page (the Data API returns at most max_rows rows per
-- call). A run that changes while they page moves behind the cursor and is read again, never
-- skipped; runs that changed in one transaction share updated_at, which the id tells apart.
create function public.runs_changed_since(since timestamptz, lanes text[] default null,
                                          max_rows integer default 1000,
                                          after_id uuid default null)
returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select x.* from public.runs x
  where x.updated_at >= runs_changed_since.since
    and (runs_changed_since.after_id is null
         or (x.updated_at, x.id) > (runs_changed_since.since, runs_changed_since.after_id))
    and (runs_changed_since.lanes is null or x.lane = any(runs_changed_since.lanes))
    and (x.status in ('queued', 'running') or x.finished_at >= runs_changed_since.since)
  order by x.updated_at, x.id
  limit least(greatest(coalesce(runs_changed_since.max_rows, 1000), 1), 10000);
end
$$;

create function public.get_runs(run_ids uuid[]) returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select x.* from public.runs x where x.id = any(get_runs.run_ids) order by x.created_at, x.id;
end
$$;

-- ---------------------------------------------------------------------------
-- Views for the board: lanes, worker health, stuck runs
-- ---------------------------------------------------------------------------

create view public.lane_stats with (security_invoker = true) as
select l.id as lane, l.paused, l.max_running, s.status,
       coalesce(c.runs, 0) as runs,
       c.oldest_age_seconds
from public.lanes l
cross join (values ('queued'), ('running')) as s(status)
left join lateral (
  select count(*) as runs,
         round(extract(epoch from now() - min(case when s.status = 'queued' then r.available_at
                                                   else r.claimed_at end))::numeric, 1)
           as oldest_age_seconds
  from public.runs r where r.lane = l.id and r.status = s.status
) c on true;

create view public.worker_health with (security_invoker = true) as
select w.id, w.host, w.pid, w.lanes, w.version, w.concurrency, w.status, w.started_at,
       w.last_seen_at,
       round(extract(epoch from now() - w.last_seen_at)::numeric, 1) as seen_seconds_ago,
       (w.status <> 'stopped' and w.last_seen_at < now() - interval '60 seconds') as stale,
       (select count(*) from public.runs r where r.status = 'running' and r.worker_id = w.id) as running
from public.workers w;

create view public.stuck_runs with (security_invoker = true) as
select r.id, r.template, r.lane, r.status, r.attempt, r.max_attempts, r.sweep_count, r.worker_id,
       r.lease_expires_at,
       round(extract(epoch from now() - coalesce(r.heartbeat_at, r.created_at))::numeric, 1)
         as since_heartbeat_seconds
from public.runs r
where (r.status in ('queued', 'running') and r.sweep_count > 0)
   or (r.status = 'running' and r.lease_expires_at < now());

create function public.get_lane_stats() returns setof public.lane_stats
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.lane_stats s order by s.lane, s.status;
end
$$;

create function public.get_worker_health() returns setof public.worker_health
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select h.* from public.worker_health h order by h.id;
end
$$;

create function public.list_stuck_runs(max_rows integer default 100) returns setof public.stuck_runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select s.* from public.stuck_runs s order by s.sweep_count desc, s.since_heartbeat_seconds desc
  limit least(greatest(coalesce(list_stuck_runs.max_rows, 100), 1), 1000);
end
$$;

-- What a worker holds, as the database sees it: after a claim whose reply was lost (the claim
-- committed as the connection died), the reference worker adopts or releases these.
create function public.list_held_runs(worker_id text) returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.require_service('list the runs a worker holds');
  if list_held_runs.worker_id is null or char_length(list_held_runs.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  end if;
  return query
  select r.* from public.runs r
   where r.status = 'running' and r.worker_id = list_held_runs.worker_id
   order by r.claimed_at, r.id;
end
$$;
comment on function public.list_held_runs(text) is
  'The runs running under a worker id, oldest claim first: what a worker holds, as the database sees it.';

-- Spec docs as the caller may see them (RLS applies: an operator sees their own).
create function public.list_spec_docs(
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
