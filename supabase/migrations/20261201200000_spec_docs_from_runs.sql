-- Spec docs written by the generate_spec_kit run type: one row per document, linked to the run
-- that generated it and to the run's session and owner (copied from the run, never from input).

alter table public.spec_docs
  add column run_id uuid references public.runs (id) on delete cascade,
  add column path text,
  add constraint spec_docs_path_is_relative check (
    path is null or (char_length(path) between 1 and 255
                     and path !~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])')),
  add constraint spec_docs_run_has_path check ((run_id is null) = (path is null)),
  -- nulls are distinct: documents made outside a run are not constrained
  add constraint spec_docs_run_path_key unique (run_id, path);
comment on column public.spec_docs.run_id is 'The run that generated this document (generate_spec_kit), if any.';
comment on column public.spec_docs.path is 'The document''s path in its kit (spec/<name>/prd.md, specs/001-<name>/spec.md, ...).';

-- The worker holding the run's lease saves its documents; a retried attempt replaces them.
create function public.put_spec_docs(run_id uuid, worker_id text, attempt integer, docs jsonb)
returns setof public.spec_docs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
  d jsonb;
  i integer := 0;
begin
  perform pulser_ops.require_service('save spec docs');
  if jsonb_typeof(put_spec_docs.docs) is distinct from 'array' then
    raise exception 'docs: expected a JSON array' using errcode = 'PO400';
  end if;
  if jsonb_array_length(put_spec_docs.docs) > 100 then
    raise exception 'docs: at most 100 documents per call (got %)',
      jsonb_array_length(put_spec_docs.docs) using errcode = 'PO400';
  end if;
  for d in select * from jsonb_array_elements(put_spec_docs.docs) loop
    if jsonb_typeof(d) <> 'object' or jsonb_typeof(d -> 'path') <> 'string'
       or jsonb_typeof(d -> 'content') <> 'string' then
      raise exception 'docs[%]: expected {"path": text, "kind": text, "title": text, "content": text}', i
        using errcode = 'PO400';
    end if;
    if (d ->> 'path') ~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])' or char_length(d ->> 'path') not between 1 and 255 then
      raise exception 'docs[%].path: % is not a safe relative path', i, quote_literal(d ->> 'path')
        using errcode = 'PO400';
    end if;
    if coalesce(d ->> 'kind', 'note') !~ '^[a-z][a-z0-9_-]{0,31}$' then
      raise exception 'docs[%].kind: % must match ^[a-z][a-z0-9_-]{0,31}$', i, quote_literal(d ->> 'kind')
        using errcode = 'PO400';
    end if;
    if char_length(coalesce(d ->> 'title', '')) > 200 then
      raise exception 'docs[%].title: at most 200 characters', i using errcode = 'PO400';
    end if;
    if octet_length(d ->> 'content') > 1048576 then
      raise exception 'docs[%].content: % bytes; the limit is 1048576', i, octet_length(d ->> 'content')
        using errcode = 'PO400';
    end if;
    i := i + 1;
  end loop;
  select * into r from public.runs x
   where x.id = put_spec_docs.run_id and x.status = 'running'
     and x.worker_id = put_spec_docs.worker_id and x.attempt = put_spec_docs.attempt
   for share;
  if not found then
    perform pulser_ops.raise_fenced(put_spec_docs.run_id, put_spec_docs.worker_id,
                                    put_spec_docs.attempt, 'save spec docs of');
  end if;
  return query
  insert into public.spec_docs as s (session_id, owner_id, kind, title, content, run_id, path)
  select r.session_id, r.owner_id, coalesce(e ->> 'kind', 'note'), coalesce(e ->> 'title', ''),
         e ->> 'content', r.id, e ->> 'path'
    from jsonb_array_elements(put_spec_docs.docs) as e
  on conflict on constraint spec_docs_run_path_key do update
    set kind = excluded.kind, title = excluded.title, content = excluded.content, updated_at = now()
  returning s.*;
end
$$;

comment on function public.put_spec_docs(uuid, text, integer, jsonb) is
  'Save the documents a run generated (generate_spec_kit): fenced by the lease, one row per (run, path), session and owner from the run.';

-- Spec docs as the caller may see them (RLS applies: an operator sees their own).
create function public.list_spec_docs(
  run_id uuid default null, session_id uuid default null, max_rows integer default 100
) returns setof public.spec_docs
language sql stable set search_path = '' as $$
  select s.* from public.spec_docs s
   where (list_spec_docs.run_id is null or s.run_id = list_spec_docs.run_id)
     and (list_spec_docs.session_id is null or s.session_id = list_spec_docs.session_id)
   order by s.created_at, s.path, s.id
   limit least(greatest(coalesce(list_spec_docs.max_rows, 100), 1), 1000)
$$;
comment on function public.list_spec_docs(uuid, uuid, integer) is
  'Spec docs the caller may see (RLS), by run and/or session, oldest first.';

revoke all on function public.put_spec_docs(uuid, text, integer, jsonb),
  public.list_spec_docs(uuid, uuid, integer) from public, anon, authenticated, service_role;
grant execute on function public.put_spec_docs(uuid, text, integer, jsonb) to service_role;
grant execute on function public.list_spec_docs(uuid, uuid, integer) to authenticated, service_role;
