-- pulser-ops: how others hear of changes (NOTIFY hints for workers and the board, the
-- supabase_realtime publication) and where big artifacts live (the Storage bucket).

-- ---------------------------------------------------------------------------
-- Notifications: hints only, one per statement (polling alone is correct)
-- ---------------------------------------------------------------------------

-- pulser_ops_changes: {"t": table, "ids": [...]} (ids null when too many to fit: refetch).
create function pulser_ops.notify_changes(tbl text, ids text[]) returns void
language plpgsql volatile set search_path = '' as $$
begin
  if ids is null or cardinality(ids) = 0 then
    return;
  end if;
  perform pg_catalog.pg_notify('pulser_ops_changes', jsonb_build_object(
    't', tbl,
    'ids', case when cardinality(ids) <= 150 then to_jsonb(ids) end)::text);
end
$$;

create function pulser_ops.runs_notify() returns trigger
language plpgsql set search_path = '' as $$
declare
  ids text[];
  wake text;
begin
  select array_agg(n.id::text), string_agg(distinct n.lane, ',' order by n.lane)
           filter (where n.status = 'queued' and n.available_at <= now())
    into ids, wake
    from new_rows n;
  perform pulser_ops.notify_changes('runs', ids);
  if wake is not null then
    perform pg_catalog.pg_notify('pulser_ops_wakeup', wake);
  end if;
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
  perform pulser_ops.notify_changes(tg_table_name,
    (select array_agg(distinct n.run_id::text) from new_rows n));
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
  perform pulser_ops.notify_changes('workers', (select array_agg(n.id) from new_rows n));
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
