-- pulser-ops: run now. A queued run that waits (run_after, or a retry's backoff) can be made
-- claimable at once, one run or in bulk (by ids or by filter, previewed and capped like the other
-- bulk actions), and the run's timeline says who moved it and when it was due.

-- Run now: a queued run that waits (run_after, or a retry's backoff) becomes claimable at once,
-- as Oban's and Procrastinate's "retry now" do. Recorded on the run's timeline (who, and when
-- it was due). A run already due is left as it is (no event): calling it twice is harmless.
-- A running run cannot be moved (PO409); a finished one is AlreadyTerminal (PO411). The
-- runs_notify trigger wakes the lane's workers, as for a new run.
create function pulser_ops.run_now(run_id uuid) returns public.runs
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.runs;
  was timestamptz;
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
begin
  r := pulser_ops.lock_run_for(run_now.run_id, 'move');
  if r.status in ('succeeded', 'failed', 'cancelled') then
    raise exception 'run % is already %', r.id, r.status
      using errcode = 'PO411', detail = jsonb_build_object('status', r.status)::text;
  end if;
  if r.status = 'running' then
    raise exception 'run % is running: only a queued run can be moved to now', r.id
      using errcode = 'PO409';
  end if;
  if r.available_at > now() then
    was := r.available_at;
    update public.runs x set available_at = now() where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'run_now', 'info',
      format('moved to now by %s (it was due at %s)', who,
             to_char(was at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')),
      jsonb_build_object('by', who, 'was_due', was), r.attempt, null);
  end if;
  return r;
end
$$;

create function public.run_now(run_id uuid) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.run_now(run_now.run_id)
$$;

-- One bulk action (cancel, rerun or run_now) by ids or filter. matched: how many runs it applies to
-- (counted up to 100000); capped: more than max_runs match, so only the newest max_runs are
-- acted on; affected/touched: what was done (the cancelled runs; for a re-run, the new runs).
-- dry_run: count only (the preview). Each run goes through the checked single-run action.
create or replace function pulser_ops.bulk_runs(
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

-- A run's lifecycle events (the control room's attempts timeline), however many log lines it
-- has: every claim, retry, release, sweep, cancel request, re-run and its terminal event. Being
-- enqueued writes no event (it would cost the hot path an insert per run): the run's created_at
-- says when.
create or replace function public.list_run_timeline(run_id uuid, max_rows integer default 500)
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

revoke all on function pulser_ops.run_now(uuid), public.run_now(uuid),
  public.bulk_run_now(uuid[], jsonb, integer, boolean)
  from public, anon, authenticated, service_role;
-- Operators (and admins): their own runs, like cancel_run and the other bulk actions.
grant execute on function pulser_ops.run_now(uuid), public.run_now(uuid),
  public.bulk_run_now(uuid[], jsonb, integer, boolean)
  to authenticated, service_role;
