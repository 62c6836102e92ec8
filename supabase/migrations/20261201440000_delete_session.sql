-- pulser-ops: deleting a session (issue 20, the sessions question).
--
-- A session with finished runs could not be deleted, not even by the service role: the
-- foreign key's ON DELETE SET NULL updates its runs, and the run guard refused any change to a
-- finished run. The guard now lets a finished run lose its session and nothing else, and
-- delete_session() deletes a session with clear rules: its runs stay, detached; its spec docs
-- go; refused (PO409) while any of its runs is queued or running. Operators delete their own
-- sessions (another's is not found), admins and the service role any.

drop trigger runs_guard_finished on public.runs;
create trigger runs_guard_finished before update on public.runs
  for each row
  when (old.status in ('succeeded', 'failed', 'cancelled')
        and not (old.session_id is not null and new.session_id is null
                 and to_jsonb(new) - '{session_id,version,updated_at}'::text[]
                   = to_jsonb(old) - '{session_id,version,updated_at}'::text[]))
  execute function pulser_ops.runs_refuse('finished');

create type public.session_deleted as (session_id uuid, runs_detached integer, spec_docs_deleted integer);

create function pulser_ops.delete_session(session_id uuid) returns public.session_deleted
language plpgsql volatile security definer set search_path = '' as $$
declare
  k text := pulser_ops.caller_kind();
  s public.sessions;
  unfinished bigint;
  res public.session_deleted;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not delete sessions', k using errcode = '42501';
  end if;
  -- Locked first: an enqueue into the session waits (its foreign key check) and then fails.
  select * into s from public.sessions x
   where x.id = delete_session.session_id and (k <> 'operator' or x.owner_id = auth.uid())
   for update;
  if not found then
    raise exception 'session % not found', delete_session.session_id using errcode = 'PO404';
  end if;
  select count(*) into unfinished from public.runs r
   where r.session_id = s.id and r.status in ('queued', 'running');
  if unfinished > 0 then
    raise exception 'session % has % unfinished run(s); cancel them or let them finish first',
      s.id, unfinished
      using errcode = 'PO409', detail = jsonb_build_object('unfinished_runs', unfinished)::text;
  end if;
  res.session_id := s.id;
  select count(*) into res.runs_detached from public.runs r where r.session_id = s.id;
  select count(*) into res.spec_docs_deleted from public.spec_docs d where d.session_id = s.id;
  -- The foreign keys do the rest: runs.session_id set null, spec_docs deleted.
  delete from public.sessions x where x.id = s.id;
  return res;
end
$$;

create function public.delete_session(session_id uuid) returns public.session_deleted
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_session(delete_session.session_id)
$$;
comment on function public.delete_session(uuid) is
  'Delete a session with no unfinished runs: its runs stay, detached; its spec docs go.';

revoke all on function pulser_ops.delete_session(uuid) from public, anon, authenticated, service_role;
grant execute on function pulser_ops.delete_session(uuid) to authenticated, service_role;
revoke all on function public.delete_session(uuid) from public, anon, authenticated, service_role;
grant execute on function public.delete_session(uuid) to authenticated, service_role;
