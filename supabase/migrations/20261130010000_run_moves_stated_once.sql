-- pulser-ops: the moves a run may make, stated once.
--
-- They were written twice: in pulser_ops.runs_guard() and again in the WHEN clause of the
-- runs_guard trigger, which kept the hot paths from calling the function. Now three row
-- triggers each state one rule in their WHEN clause and nowhere else (a finished run never
-- changes; the moves a run may make; every change bumps version and updated_at), and the
-- functions they call only word the refusal or do the stamping. Behaviour is unchanged: the
-- same refusals with the same SQLSTATEs (PO411 first, then PO400), the same stamping, and the
-- hot paths still call no trigger function (supabase/schemas/20_state_machine.sql).

drop trigger runs_guard on public.runs;
drop function pulser_ops.runs_guard();

-- Words the refusal; which rule was broken is the trigger's argument.
create function pulser_ops.runs_refuse() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_argv[0] = 'finished' then
    raise exception 'run % is already % and cannot change', old.id, old.status
      using errcode = 'PO411';
  end if;
  raise exception 'run % cannot go from % to %', old.id, old.status, new.status
    using errcode = 'PO400';
end
$$;

create function pulser_ops.runs_stamp() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.version := old.version + 1;
  new.updated_at := now();
  return new;
end
$$;

create trigger runs_guard_finished before update on public.runs
  for each row
  when (old.status in ('succeeded', 'failed', 'cancelled'))
  execute function pulser_ops.runs_refuse('finished');

create trigger runs_guard_moves before update on public.runs
  for each row
  when (new.status is distinct from old.status and not (
          (old.status = 'queued' and new.status in ('running', 'cancelled'))
       or (old.status = 'running' and new.status in ('queued', 'succeeded', 'failed', 'cancelled'))))
  execute function pulser_ops.runs_refuse('move');

create trigger runs_stamp before update on public.runs
  for each row
  when (new.version is distinct from old.version + 1 or new.updated_at is distinct from now())
  execute function pulser_ops.runs_stamp();

revoke all on function pulser_ops.runs_refuse(), pulser_ops.runs_stamp()
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.runs_refuse(), pulser_ops.runs_stamp() to service_role;
