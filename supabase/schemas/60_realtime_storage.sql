-- pulser-ops: how others hear of changes (NOTIFY hints for workers and the board, the
-- supabase_realtime publication) and where big artifacts live (the Storage bucket).

-- ---------------------------------------------------------------------------
-- Notifications: hints only, one per statement (polling alone is correct)
-- ---------------------------------------------------------------------------

-- pulser_ops_changes: {"t": table, "ids": [...]} (ids null when more than 150: refetch);
-- pulser_ops_wakeup: the lanes that have claimable work, comma-separated.
-- The trigger functions below do their work in one statement each (no helper call, no second
-- query): they fire on every claim, completion and event append, where two or three nested
-- statements per firing were a tenth of a single claim + completion (docs/benchmarks.md).
create function pulser_ops.runs_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', 'runs', 'ids', case when x.n <= 150 then to_jsonb(x.ids) end)::text),
          case when x.wake is not null then pg_catalog.pg_notify('pulser_ops_wakeup', x.wake) end
  from (select count(*) as n, array_agg(r.id::text) as ids,
               string_agg(distinct r.lane, ',' order by r.lane)
                 filter (where r.status = 'queued' and r.available_at <= now()) as wake
        from new_rows r) x
  where x.n > 0;
  return null;
end
$$;

create trigger runs_notify_insert after insert on public.runs
  referencing new table as new_rows for each statement execute function pulser_ops.runs_notify();
create trigger runs_notify_update after update on public.runs
  referencing new table as new_rows for each statement execute function pulser_ops.runs_notify();

-- pulser_ops_changes: {"t": table, "ids": [...], "deleted": true} for deleted rows. Unlike
-- an update, a delete cannot be read back, so the ids are always sent, 150 per notification.
create function pulser_ops.notify_deleted(tbl text, ids text[]) returns void
language plpgsql volatile set search_path = '' as $$
declare
  i integer := 1;
begin
  while i <= coalesce(cardinality(ids), 0) loop
    perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
      't', tbl, 'ids', to_jsonb(ids[i:i + 149]), 'deleted', true)::text);
    i := i + 150;
  end loop;
end
$$;

create function pulser_ops.runs_notify_delete() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pulser_ops.notify_deleted('runs', (select array_agg(o.id::text) from old_rows o));
  return null;
end
$$;

create trigger runs_notify_delete after delete on public.runs
  referencing old table as old_rows for each statement execute function pulser_ops.runs_notify_delete();

create function pulser_ops.run_children_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', tg_table_name,
            'ids', case when cardinality(x.ids) <= 150 then to_jsonb(x.ids) end)::text)
  from (select array_agg(distinct r.run_id::text) as ids from new_rows r) x
  where x.ids is not null;
  return null;
end
$$;

create trigger run_events_notify after insert on public.run_events
  referencing new table as new_rows for each statement execute function pulser_ops.run_children_notify();
create trigger artifacts_notify_insert after insert on public.artifacts
  referencing new table as new_rows for each statement execute function pulser_ops.run_children_notify();
create trigger artifacts_notify_update after update on public.artifacts
  referencing new table as new_rows for each statement execute function pulser_ops.run_children_notify();
create trigger run_steps_notify_insert after insert on public.run_steps
  referencing new table as new_rows for each statement execute function pulser_ops.run_children_notify();
create trigger run_steps_notify_update after update on public.run_steps
  referencing new table as new_rows for each statement execute function pulser_ops.run_children_notify();

create function pulser_ops.workers_notify() returns trigger
language plpgsql set search_path = '' as $$
begin
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
            't', 'workers', 'ids', case when x.n <= 150 then to_jsonb(x.ids) end)::text)
  from (select count(*) as n, array_agg(w.id) as ids from new_rows w) x
  where x.n > 0;
  return null;
end
$$;

create trigger workers_notify_insert after insert on public.workers
  referencing new table as new_rows for each statement execute function pulser_ops.workers_notify();
create trigger workers_notify_update after update on public.workers
  referencing new table as new_rows for each statement execute function pulser_ops.workers_notify();

-- ---------------------------------------------------------------------------
-- Realtime: publish the tables the board watches; full old records on UPDATE/DELETE
-- ---------------------------------------------------------------------------

alter table public.runs replica identity full;
alter table public.run_steps replica identity full;
alter table public.run_events replica identity full;
alter table public.artifacts replica identity full;
alter table public.workers replica identity full;

do $$
declare
  t text;
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if (select puballtables from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    return;
  end if;
  foreach t in array array['runs', 'run_steps', 'run_events', 'artifacts', 'workers'] loop
    if not exists (select 1 from pg_catalog.pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t) then
      execute format('alter publication supabase_realtime add table public.%I', t);
    end if;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------
-- Storage: a private bucket; objects live under '<run id>/...' and are readable by whoever can
-- read the run (the runs policy applies inside the subquery). Workers write with the service role.
-- ---------------------------------------------------------------------------

insert into storage.buckets (id, name, public)
values ('run-artifacts', 'run-artifacts', false)
on conflict (id) do nothing;
drop policy if exists "pulser-ops: read artifacts of runs you can see" on storage.objects;
create policy "pulser-ops: read artifacts of runs you can see" on storage.objects
  for select to authenticated
  using (bucket_id = 'run-artifacts'
         and exists (select 1 from public.runs r
                     where r.id::text = (storage.foldername(name))[1]));
