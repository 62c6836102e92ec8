-- pulser-ops: artifact names, in bytes, and the keys of their files (issue 20 item 13, issue 21
-- item 2).
--
-- Names were limited to 255 characters: a name of 100 emoji (400 bytes) passed, and the local
-- file store then failed with "File name too long". put_artifact now holds names to 255 bytes
-- (pulser_ops.artifact_name_problem; the SDK checks the same before it sends anything).
-- Supabase Storage takes only keys of ^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$, so a file named
-- ünï.txt, b[1].txt or 50%.txt worked on a local disk and failed on Supabase: its key is now
-- pulser_ops.storage_key(name), which writes other characters as '*' and the hex of their
-- UTF-8 bytes. The row keeps the name; the key stays in the run's folder, where the
-- storage.objects policy reads the run id. Rows written before keep their keys (the check of
-- the table is now "in the run's folder"), and the table's check of names stays the looser one
-- those rows were held to.

alter table public.artifacts drop constraint artifacts_storage_path_in_run_folder;
alter table public.artifacts add constraint artifacts_storage_path_in_run_folder
    check (storage_path is null
           or (storage_bucket is not null and split_part(storage_path, '/', 1) = run_id::text
               and storage_path <> run_id::text || '/'));

create function pulser_ops.storage_key(name text) returns text
language plpgsql immutable set search_path = '' as $$
begin
  if storage_key.name is null or storage_key.name ~ '^[A-Za-z0-9_/!.''() &$=@;:+,?-]*$' then
    return storage_key.name;
  end if;
  return (select string_agg(case when x.c ~ '^[A-Za-z0-9_/!.''() &$=@;:+,?-]$' then x.c
                                 else regexp_replace(upper(encode(convert_to(x.c, 'UTF8'), 'hex')),
                                                     '(..)', '*\1', 'g') end,
                            '' order by x.n)
          from regexp_split_to_table(storage_key.name, '') with ordinality as x(c, n));
end
$$;

create function pulser_ops.artifact_name_problem(name text) returns text
language plpgsql immutable set search_path = '' as $$
declare
  seg text;
begin
  if artifact_name_problem.name is null or artifact_name_problem.name = '' then
    return 'an artifact needs a name';
  end if;
  if octet_length(artifact_name_problem.name) > 255 then
    return format('at most 255 bytes (this one is %s)', octet_length(artifact_name_problem.name));
  end if;
  if artifact_name_problem.name ~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[\u0001-\u001f\u007f-\u009f])' then
    return 'not a safe relative path (no leading /, no . or .. segments, no backslashes or control characters)';
  end if;
  select s into seg
    from regexp_split_to_table(pulser_ops.storage_key(artifact_name_problem.name), '/') as s
   where octet_length(s) > 255 limit 1;
  if found then
    return format('a path segment is %s bytes as a file key (characters other than letters, digits and _/!.''() &$=@;:+,?- take 3 bytes per UTF-8 byte); at most 255',
                  octet_length(seg));
  end if;
  return null;
end
$$;

revoke all on function pulser_ops.storage_key(text) from public, anon, authenticated, service_role;
grant execute on function pulser_ops.storage_key(text) to service_role;
revoke all on function pulser_ops.artifact_name_problem(text) from public, anon, authenticated, service_role;
grant execute on function pulser_ops.artifact_name_problem(text) to service_role;

create or replace function public.put_artifact(
  run_id uuid, name text, kind text default 'text', content_type text default null,
  inline_text text default null, storage_path text default null, size_bytes bigint default null,
  sha256 text default null, metadata jsonb default '{}', attempt integer default null
) returns public.artifacts
language plpgsql volatile set search_path = '' as $$
declare
  a public.artifacts;
  problem text;
begin
  perform pulser_ops.require_service('save artifacts');
  problem := pulser_ops.artifact_name_problem(put_artifact.name);
  if problem is not null then
    raise exception 'name %: %', coalesce(quote_literal(put_artifact.name), 'null'), problem
      using errcode = 'PO400';
  end if;
  if (put_artifact.inline_text is null) = (put_artifact.storage_path is null) then
    raise exception 'give exactly one of inline_text and storage_path' using errcode = 'PO400';
  end if;
  if octet_length(put_artifact.inline_text) > 65536 then
    raise exception 'inline_text is % bytes; the inline limit is 65536 bytes: upload it to Storage instead',
      octet_length(put_artifact.inline_text) using errcode = 'PO400';
  end if;
  if put_artifact.storage_path is not null and put_artifact.storage_path
     is distinct from put_artifact.run_id::text || '/' || pulser_ops.storage_key(put_artifact.name) then
    raise exception 'storage_path must be %',
      put_artifact.run_id::text || '/' || pulser_ops.storage_key(put_artifact.name)
      using errcode = 'PO400';
  end if;
  if not exists (select 1 from public.runs r where r.id = put_artifact.run_id) then
    raise exception 'run % not found', put_artifact.run_id using errcode = 'PO404';
  end if;
  insert into public.artifacts as x (run_id, attempt, name, kind, content_type, size_bytes,
    inline_text, storage_bucket, storage_path, sha256, metadata)
  values (put_artifact.run_id, put_artifact.attempt, put_artifact.name, put_artifact.kind,
    coalesce(put_artifact.content_type, 'text/plain; charset=utf-8'),
    coalesce(put_artifact.size_bytes, octet_length(put_artifact.inline_text), 0),
    put_artifact.inline_text,
    case when put_artifact.storage_path is not null then 'run-artifacts' end,
    put_artifact.storage_path, put_artifact.sha256, coalesce(put_artifact.metadata, '{}'))
  on conflict on constraint artifacts_run_id_name_key do update
    set attempt = excluded.attempt, kind = excluded.kind, content_type = excluded.content_type,
        size_bytes = excluded.size_bytes, inline_text = excluded.inline_text,
        storage_bucket = excluded.storage_bucket, storage_path = excluded.storage_path,
        sha256 = excluded.sha256, metadata = excluded.metadata, created_at = now()
  returning x.* into a;
  return a;
end
$$;
