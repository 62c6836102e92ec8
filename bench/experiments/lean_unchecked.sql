-- Experiment, NOT shipped (issue 18): a lower bound for the SQL's cost per run. Applied on top
-- of lean_recording.sql (everything it removes), it also removes the integrity the schema keeps:
--   * every CHECK constraint of runs, run_events and run_steps, and the run_events foreign key;
--   * the guard triggers of runs (a finished run is frozen, only legal status moves);
--   * the indexes the board and metrics read by (newest first, per template, per owner, finished);
--   * complete_runs' argument checks (a malformed completion would no longer get its typed error).
-- What is left is the claim, fencing, the terminal event and the change notifications. Applied by
-- `bench/run.py --only drain --experiment
-- bench/experiments/lean_recording.sql+bench/experiments/lean_unchecked.sql` (files joined by +
-- are applied in order to one copy of the schema).

do $x$
declare c record;
begin
  for c in select conrelid::regclass as t, conname from pg_constraint
           where conrelid in ('public.runs'::regclass, 'public.run_events'::regclass,
                              'public.run_steps'::regclass)
             and (contype = 'c' or conname = 'run_events_run_id_fkey') loop
    execute format('alter table %s drop constraint %I', c.t, c.conname);
  end loop;
end
$x$;
drop trigger runs_guard_finished on public.runs;
drop trigger runs_guard_moves on public.runs;
drop index public.runs_created_idx, public.runs_template_idx, public.runs_owner_idx,
           public.runs_finished_idx;

create or replace function public.complete_runs(worker_id text, runs jsonb)
returns setof public.complete_batch_result
language plpgsql volatile set search_path = '' as $$
begin
  perform pulser_ops.require_service('complete runs');
  return query select * from pulser_ops.complete_runs(complete_runs.worker_id, complete_runs.runs);
end
$$;
