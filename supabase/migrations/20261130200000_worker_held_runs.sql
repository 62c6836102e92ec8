-- pulser-ops: a worker can ask which runs it holds (issue 20, "a claim whose reply was lost").
--
-- A claim can commit just as the server dies (a restart, a failover): the worker never hears of
-- the runs it was given, and they sat out their lease, in the meantime counted as running. A
-- single-attempt run then failed with lease_expired without ever running. After a failed claim,
-- the reference worker now asks which runs the database has running under its worker id, and
-- adopts the ones it does not know about (it executes them under the claim's attempt) or, when
-- it is stopping, releases them (release_run gives the attempt back).
--
-- A read of the service role's, like claim_runs and heartbeat_runs: a worker id is not a secret,
-- and the runs are the worker's own. It walks runs_running_idx (running runs are few).

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

revoke all on function public.list_held_runs(text) from public, anon, authenticated, service_role;
grant execute on function public.list_held_runs(text) to service_role;
