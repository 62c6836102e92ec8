-- pulser-ops: get_run_on_behalf_of, so the "same owner" rule a worker applies when it reads
-- another run for the run it is working on (a Spec Kit validation reading a generated kit) lives
-- in SQL, not in the worker's Python. The service role only.

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

revoke all on function public.get_run_on_behalf_of(uuid, uuid)
  from public, anon, authenticated, service_role;
grant execute on function public.get_run_on_behalf_of(uuid, uuid) to service_role;
