-- add_event() and reserve_event_seq() are SQL functions with SET search_path: planned on
-- every call. The same two statements in plpgsql keep cached plans. Scratch database only.
create or replace function pulser_ops.add_event(
  run_id uuid, kind text, level text, message text, data jsonb default null,
  attempt integer default null, worker_id text default null
) returns void
language plpgsql volatile set search_path = '' as $$
declare s bigint;
begin
  insert into pulser_ops.run_event_counters as k (run_id, last_seq) values (add_event.run_id, 1)
  on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
  returning k.last_seq into s;
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  values (add_event.run_id, s, add_event.kind, add_event.level, add_event.message, add_event.data,
          add_event.attempt, add_event.worker_id);
end $$
