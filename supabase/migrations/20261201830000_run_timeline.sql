-- The run detail's attempts timeline (issue 15): every lifecycle event of a run, however many
-- log lines it has (the page read them from its first 1000 events, so a chatty run showed
-- only its claim); and the tail of a run's log (list_last_run_events).

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
                   'cancelled', 'succeeded', 'failed', 'rerun', 'rerun_of')
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

revoke all on function public.list_run_timeline(uuid, integer), public.list_last_run_events(uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.list_run_timeline(uuid, integer), public.list_last_run_events(uuid, integer)
  to authenticated, service_role;
