-- Artifacts per attempt (issue 15: the control room diffs an artifact across attempts).
--
-- An artifact was unique by (run, name), so a retry that saved "report.md" again replaced the
-- earlier attempt's. Now each attempt keeps its own: unique by (run, attempt, name), files at
-- '<run id>/<attempt, 0 for none>/' || storage_key(name) ('<run id>/' || storage_key(name), the
-- key of 20261201450000, stays valid from older SDKs; the table's check already takes any key
-- in the run's folder), and no two rows may share a file. get_artifact takes an attempt (null:
-- the latest attempt that saved the name). Every reader still refuses a token that names no user.

alter table public.artifacts drop constraint artifacts_run_id_name_key;
create unique index artifacts_run_attempt_name_key
  on public.artifacts (run_id, (coalesce(attempt, 0)), name);
create unique index artifacts_storage_path_key
  on public.artifacts (storage_path) where storage_path is not null;

create or replace function public.put_artifact(
  run_id uuid, name text, kind text default 'text', content_type text default null,
  inline_text text default null, storage_path text default null, size_bytes bigint default null,
  sha256 text default null, metadata jsonb default '{}', attempt integer default null
) returns public.artifacts
language plpgsql volatile set search_path = '' as $$
-- every variable is written put_artifact.<name>, so bare names in the conflict target are columns
#variable_conflict use_column
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
  if put_artifact.storage_path is not null
     and put_artifact.storage_path not in (
       put_artifact.run_id::text || '/' || coalesce(put_artifact.attempt, 0) || '/'
         || pulser_ops.storage_key(put_artifact.name),
       put_artifact.run_id::text || '/' || pulser_ops.storage_key(put_artifact.name)) then
    raise exception 'storage_path must be %',
      put_artifact.run_id::text || '/' || coalesce(put_artifact.attempt, 0) || '/'
        || pulser_ops.storage_key(put_artifact.name)
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
  on conflict (run_id, (coalesce(attempt, 0)), name) do update
    set kind = excluded.kind, content_type = excluded.content_type,
        size_bytes = excluded.size_bytes, inline_text = excluded.inline_text,
        storage_bucket = excluded.storage_bucket, storage_path = excluded.storage_path,
        sha256 = excluded.sha256, metadata = excluded.metadata, created_at = now()
  returning x.* into a;
  return a;
exception when unique_violation then
  raise exception 'storage_path % already holds another artifact of run %', put_artifact.storage_path,
    put_artifact.run_id using errcode = 'PO409';
end
$$;

create or replace function public.list_artifacts(run_id uuid) returns setof public.artifacts
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select a.* from public.artifacts a where a.run_id = list_artifacts.run_id
  order by a.name, coalesce(a.attempt, 0);
end
$$;

drop function public.get_artifact(uuid, text);
create function public.get_artifact(run_id uuid, name text, attempt integer default null)
returns public.artifacts
language plpgsql stable set search_path = '' as $$
declare
  a public.artifacts;
begin
  perform pulser_ops.check_caller();
  select * into a from public.artifacts x
   where x.run_id = get_artifact.run_id and x.name = get_artifact.name
     and (get_artifact.attempt is null or coalesce(x.attempt, 0) = get_artifact.attempt)
   order by coalesce(x.attempt, 0) desc
   limit 1;
  if not found then
    raise exception 'artifact % of run % not found%', get_artifact.name, get_artifact.run_id,
      case when get_artifact.attempt is null then '' else format(' (attempt %s)', get_artifact.attempt) end
      using errcode = 'PO404';
  end if;
  return a;
end
$$;

revoke all on function public.get_artifact(uuid, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.get_artifact(uuid, text, integer) to authenticated, service_role;
