-- pulser-ops plain-PostgreSQL bootstrap.
--
-- Creates ONLY what a Supabase project already provides and our migrations rely
-- on (API roles, auth.* helpers, the realtime publication, a subset of the
-- storage schema), so the same migrations run unchanged on plain PostgreSQL.
-- Never run this against Supabase (pulser_ops.db.migrate checks first).
--
-- Idempotent and non-destructive: every object is created only when absent, so
-- running it twice (or concurrently from two databases of one cluster) is safe
-- and never replaces something a user changed.

-- Roles are cluster-wide: another database of the same cluster may create them
-- concurrently, hence the unique_violation handler.
do $bootstrap$
declare
  grantee text;
  api_role text;
begin
  -- INHERIT like Supabase today (20230529180330_alter_api_roles_for_inherit).
  begin
    create role anon nologin inherit;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role authenticated nologin inherit;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role service_role nologin inherit bypassrls;
  exception when duplicate_object or unique_violation then null;
  end;
  begin
    create role authenticator login noinherit;
  exception when duplicate_object or unique_violation then null;
  end;
  -- authenticator (PostgREST's login role) and postgres (plus whoever runs this)
  -- are members of the three API roles, as on Supabase (20230201083204). Checked
  -- in pg_auth_members: pg_has_role() is always true for a superuser.
  for grantee, api_role in
    select m.rolname, r.rolname
    from unnest(array['authenticator', 'postgres', current_user::text]) as m(rolname),
         unnest(array['anon', 'authenticated', 'service_role']) as r(rolname)
    where to_regrole(m.rolname) is not null
  loop
    if not exists (select 1 from pg_auth_members
                   where roleid = to_regrole(api_role) and member = to_regrole(grantee)) then
      execute format('grant %I to %I', api_role, grantee);
    end if;
  end loop;
end
$bootstrap$;

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
-- Supabase ships pgcrypto in `extensions`; some builds (the pgserver wheel) lack it, and
-- nothing of pulser-ops needs it, so it is only added where available.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pgcrypto') then
    create extension if not exists pgcrypto with schema extensions;
  end if;
end
$$;

-- Supabase sets `alter role postgres set search_path to "$user", public, extensions`
-- (00000000000003-post-setup.sql), so unqualified extension functions (pgTAP's
-- plan(), ...) resolve. Role-level like Supabase (a per-database setting would
-- not survive CREATE DATABASE ... TEMPLATE), and only if the role has none yet.
do $bootstrap$
begin
  if not exists (
    select 1 from pg_db_role_setting s
    where s.setrole = (select oid from pg_roles where rolname = current_user)
      and s.setdatabase = 0
      and exists (select 1 from unnest(s.setconfig) c where c like 'search_path=%')
  ) then
    execute format('alter role %I set search_path to "$user", public, extensions', current_user);
  end if;
end
$bootstrap$;

grant usage on schema public to anon, authenticated, service_role;

-- auth: the helpers exactly as GoTrue defines them
-- (supabase/auth 20240624145325_recreate_auth_functions.up.sql).
create schema if not exists auth;
comment on schema auth is 'pulser-ops plain-postgres bootstrap';
grant usage on schema auth to anon, authenticated, service_role;

do $bootstrap$
begin
  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      set search_path to ''
    as $fn$
      select
        coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
    $fn$;
    comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
  end if;
  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
      language sql stable
      set search_path to ''
    as $fn$
      select
        coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
    $fn$;
    comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
  end if;
  if to_regprocedure('auth.email()') is null then
    create function auth.email() returns text
      language sql stable
      set search_path to ''
    as $fn$
      select
        coalesce(
          nullif(current_setting('request.jwt.claim.email', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
        )::text
    $fn$;
    comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';
  end if;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      set search_path to ''
    as $fn$
      select
        coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
    $fn$;
  end if;
end
$bootstrap$;
grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
  to anon, authenticated, service_role;

-- A minimal auth.users: only the columns foreign keys and the advisors look at.
create table if not exists auth.users (
  id uuid primary key,
  email text,
  role text,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_anonymous boolean not null default false,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

-- realtime: the empty publication Supabase creates in its init script.
do $bootstrap$
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
exception when duplicate_object or unique_violation then null;
end
$bootstrap$;

-- storage: the subset of supabase/storage's tenant schema our migrations use.
create schema if not exists storage;
grant usage on schema storage to anon, authenticated, service_role;

create table if not exists storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  owner_id text,
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);
create unique index if not exists bname on storage.buckets using btree (name);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  user_metadata jsonb
);
create unique index if not exists bucketid_objname on storage.objects using btree (bucket_id, name);
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- As on Supabase (storage 0002: default privileges grant ALL on storage tables
-- to the API roles); row level security is what actually restricts them.
grant all on storage.buckets to anon, authenticated, service_role;
grant all on storage.objects to anon, authenticated, service_role;

do $bootstrap$
begin
  if to_regprocedure('storage.foldername(text)') is null then
    create function storage.foldername(name text) returns text[]
      language plpgsql immutable
      set search_path to ''
    as $fn$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[1:array_length(_parts, 1) - 1];
    end
    $fn$;
  end if;
  if to_regprocedure('storage.filename(text)') is null then
    create function storage.filename(name text) returns text
      language plpgsql immutable
      set search_path to ''
    as $fn$
    declare
      _parts text[];
    begin
      select string_to_array(name, '/') into _parts;
      return _parts[array_length(_parts, 1)];
    end
    $fn$;
  end if;
  if to_regprocedure('storage.extension(text)') is null then
    create function storage.extension(name text) returns text
      language plpgsql immutable
      set search_path to ''
    as $fn$
    declare
      _parts text[];
      _filename text;
    begin
      select string_to_array(name, '/') into _parts;
      select _parts[array_length(_parts, 1)] into _filename;
      return reverse(split_part(reverse(_filename), '.', 1));
    end
    $fn$;
  end if;
  -- Direct deletes are blocked unless the Storage API's GUC is set
  -- (supabase/storage 0050-prevent-direct-deletes.sql, later GUC name).
  if to_regprocedure('storage.protect_delete()') is null then
    create function storage.protect_delete() returns trigger
      language plpgsql
    as $fn$
    begin
      if coalesce(current_setting('storage.allow_delete_query', true), 'false') != 'true' then
        raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
          using hint = 'This prevents accidental data loss from orphaned objects.',
                errcode = '42501';
      end if;
      return null;
    end;
    $fn$;
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'protect_buckets_delete'
                 and tgrelid = 'storage.buckets'::regclass) then
    create trigger protect_buckets_delete before delete on storage.buckets
      for each statement execute function storage.protect_delete();
  end if;
  if not exists (select 1 from pg_trigger where tgname = 'protect_objects_delete'
                 and tgrelid = 'storage.objects'::regclass) then
    create trigger protect_objects_delete before delete on storage.objects
      for each statement execute function storage.protect_delete();
  end if;
end
$bootstrap$;
grant execute on function storage.foldername(text), storage.filename(text),
  storage.extension(text) to anon, authenticated, service_role;
