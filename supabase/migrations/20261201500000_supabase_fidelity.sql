-- pulser-ops: what a real Supabase project needs of the SQL (issue 21, "Works on a real Supabase
-- project, not only on our stand-in").
--
-- 1. runs_changed_since pages. The Data API returns at most max_rows (1000) rows per call, so a
--    subscription's catch-up of more changed runs reads them in pages; it needs a total order
--    and a keyset. The function gains `after_id` and orders by (updated_at, id). A new
--    argument is a new signature, so the old one is dropped (PostgREST would find two
--    candidates for the old arguments otherwise) and its grants are restated. It keeps
--    20261201400000's refusal of a caller that names no user.
-- 2. Deleting runs is announced. A NOTIFY hint per statement, like inserts and updates, with
--    every deleted id (150 per notification): over a direct connection a subscriber hears that a
--    run is gone, as Realtime's DELETE tells a subscriber over Supabase.

drop function public.runs_changed_since(timestamptz, text[], integer);

create function public.runs_changed_since(since timestamptz, lanes text[] default null,
                                          max_rows integer default 1000,
                                          after_id uuid default null)
returns setof public.runs
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select x.* from public.runs x
  where x.updated_at >= runs_changed_since.since
    and (runs_changed_since.after_id is null
         or (x.updated_at, x.id) > (runs_changed_since.since, runs_changed_since.after_id))
    and (runs_changed_since.lanes is null or x.lane = any(runs_changed_since.lanes))
    and (x.status in ('queued', 'running') or x.finished_at >= runs_changed_since.since)
  order by x.updated_at, x.id
  limit least(greatest(coalesce(runs_changed_since.max_rows, 1000), 1), 10000);
end
$$;

revoke all on function public.runs_changed_since(timestamptz, text[], integer, uuid)
  from public, anon, authenticated, service_role;
grant execute on function public.runs_changed_since(timestamptz, text[], integer, uuid)
  to authenticated, service_role;

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

revoke all on function pulser_ops.notify_deleted(text, text[])
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.notify_deleted(text, text[]) to service_role;
revoke all on function pulser_ops.runs_notify_delete()
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.runs_notify_delete() to service_role;

create trigger runs_notify_delete after delete on public.runs
  referencing old table as old_rows for each statement execute function pulser_ops.runs_notify_delete();
