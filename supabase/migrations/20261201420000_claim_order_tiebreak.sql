-- pulser-ops: claim order within one batch (issue 20, item 7).
--
-- Runs enqueued by one create_many share created_at (the transaction's now()), so among them
-- the claim order was the table's physical order: a run swept back to queued could land behind
-- a backlog of its own batch. runs.seq (an identity, appended as the last column) is the order
-- of enqueueing; the claim orders by priority desc, created_at, seq, and runs_claim_idx has
-- that order, so the pick still reads the first rows of the index and never sorts.

alter table public.runs add column seq bigint generated always as identity;
revoke all on sequence public.runs_seq_seq from public, anon, authenticated, service_role;

drop index public.runs_claim_idx;
-- The claim path: queued runs of a lane in priority-then-age order, enqueue order (seq) breaking
-- ties, so one batch is claimed first-in first-out and a swept run keeps its place (partial:
-- finished runs cost nothing).
create index runs_claim_idx on public.runs (lane, priority desc, created_at, seq) where status = 'queued';

create or replace function public.claim_runs(
  worker_id text, lanes text[] default '{A,B,C,D}', max_runs integer default 1,
  lease_seconds integer default null
) returns setof public.runs
language plpgsql volatile set search_path = '' set plan_cache_mode = force_generic_plan as $$
-- Two statements, each with a generic plan that is good for any argument: the pick walks
-- runs_claim_idx per lane, the update finds the picked rows by primary key. As one statement, the
-- generic plan hash-joined the whole runs table (bench/experiments/claim_generic_plan.sql).
-- Forced, because with "= any(lanes)" PostgreSQL rates the generic plan costlier than a custom
-- one and re-plans every call, and planning was most of the cost of a single claim.
declare
  capped text[];
  ids uuid[];
begin
  perform pulser_ops.require_service('claim runs');
  if claim_runs.worker_id is null or char_length(claim_runs.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  end if;
  if claim_runs.max_runs is null or claim_runs.max_runs not between 1 and 1000 then
    raise exception 'max_runs: must be between 1 and 1000 (got %)', claim_runs.max_runs
      using errcode = 'PO400';
  end if;
  if claim_runs.lease_seconds is not null and claim_runs.lease_seconds not between 5 and 86400 then
    raise exception 'lease_seconds: must be between 5 and 86400 (got %)', claim_runs.lease_seconds
      using errcode = 'PO400';
  end if;
  if claim_runs.lanes is null or not claim_runs.lanes <@ array['A', 'B', 'C', 'D'] then
    raise exception 'lanes: must be a subset of A, B, C, D (got %)', claim_runs.lanes
      using errcode = 'PO400';
  end if;

  -- Claimers of capped lanes take turns (lanes locked in id order: no deadlocks), so two of them
  -- can never both see the last free slot.
  select array_agg(l.id order by l.id) into capped from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused and l.max_running is not null;
  if capped is not null then
    perform 1 from public.lanes l where l.id = any(capped) order by l.id for no key update;
  end if;

  with slots as (
    select l.id as lane,
           case when l.max_running is null then claim_runs.max_runs
                else greatest(0, l.max_running - (select count(*) from public.runs x
                                                  where x.status = 'running' and x.lane = l.id))::int
           end as free
    from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused
  ),
  -- Oldest first within a priority; seq (enqueue order) breaks ties of created_at, which every
  -- run of one create_many shares, so a batch is claimed first-in first-out and a swept run
  -- (it keeps created_at and seq) goes back to its place, ahead of the rest of its batch.
  -- runs_claim_idx has this order: the pick reads the first rows of the index, never sorts.
  picked as (
    select c.id, c.priority, c.created_at, c.seq
    from slots s
    cross join lateral (
      select r.id, r.priority, r.created_at, r.seq from public.runs r
      where r.status = 'queued' and r.lane = s.lane and r.available_at <= now()
      order by r.priority desc, r.created_at, r.seq
      limit least(s.free, claim_runs.max_runs)
      for no key update skip locked
    ) c
    where s.free > 0
    order by c.priority desc, c.created_at, c.seq
    limit claim_runs.max_runs
  )
  select array_agg(p.id) into ids from picked p;
  if ids is null then
    return;
  end if;

  return query
  with claimed as (
    update public.runs r
       set status = 'running',
           attempt = r.attempt + 1,
           worker_id = claim_runs.worker_id,
           claimed_at = now(),
           heartbeat_at = now(),
           -- The claim's lease (if given) becomes the run's, so heartbeats extend by the same.
           lease_seconds = coalesce(claim_runs.lease_seconds, r.lease_seconds),
           lease_expires_at = now() + make_interval(secs => coalesce(claim_runs.lease_seconds, r.lease_seconds)),
           version = r.version + 1,
           updated_at = now()
     where r.id = any(ids)
    returning r.*
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    -- The runs were locked by the pick above, in an earlier statement: see "Event seqs".
    select c.id, (select coalesce(max(e.seq), 0) + 1 from public.run_events e where e.run_id = c.id),
           'claimed', 'info',
           format('claimed by %s (attempt %s of %s)', c.worker_id, c.attempt, c.max_attempts),
           jsonb_build_object('lease_expires_at', c.lease_expires_at),
           c.attempt, c.worker_id
    from claimed c
  )
  select c.* from claimed c order by c.priority desc, c.created_at, c.seq;
end
$$;
