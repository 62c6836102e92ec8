-- pulser-ops control plane: the state machine of a run, written once.
--
-- Layout:
--   public      tables, security-invoker views, and the API functions (all security invoker).
--   pulser_ops  private (never exposed through the Data API): SECURITY DEFINER implementations
--               of the few operator-facing writes, role helpers, and the per-run event counters.
-- Every function has a fixed search_path (''), so every name below is schema-qualified.
-- Errors use stable SQLSTATEs (see docs/SQL_API.md):
--   PO400 invalid input · PO422 invalid params · PO404 not found · PO409 conflict
--   PO410 lease lost    · PO411 already terminal · 42501 permission denied

create schema if not exists pulser_ops;
comment on schema pulser_ops is 'pulser-ops internals: not exposed through the Data API.';
revoke all on schema pulser_ops from public;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table public.lanes (
  id          text primary key check (id in ('A', 'B', 'C', 'D')),
  paused      boolean not null default false,
  max_running integer check (max_running is null or max_running > 0),
  description text not null default '',
  updated_at  timestamptz not null default now()
);
insert into public.lanes (id, description) values
  ('A', 'lane A'), ('B', 'lane B'), ('C', 'lane C'), ('D', 'lane D');

create table public.sessions (
  id         uuid primary key default gen_random_uuid(),
  owner_id   uuid,
  title      text not null default '' check (char_length(title) <= 200),
  metadata   jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now()
);
create index sessions_owner_idx on public.sessions (owner_id, created_at);

create table public.run_templates (
  name                      text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  description               text not null default '' check (char_length(description) <= 2000),
  params_schema             jsonb not null default '{"type": "object"}'
                              check (jsonb_typeof(params_schema) = 'object'),
  steps                     jsonb not null default '[]' check (jsonb_typeof(steps) = 'array'),
  default_lane              text not null default 'A' check (default_lane in ('A', 'B', 'C', 'D')),
  max_attempts              integer not null default 3 check (max_attempts between 1 and 100),
  retry_backoff_seconds     numeric not null default 5 check (retry_backoff_seconds >= 0),
  retry_backoff_max_seconds numeric not null default 600,
  retry_jitter              numeric not null default 0.2 check (retry_jitter between 0 and 1),
  non_retryable_errors      text[] not null default '{}',
  lease_seconds             integer not null default 60 check (lease_seconds between 5 and 86400),
  timeout_seconds           integer check (timeout_seconds is null or timeout_seconds > 0),
  created_at                timestamptz not null default now(),
  updated_at                timestamptz not null default now(),
  constraint run_templates_backoff_cap check (retry_backoff_max_seconds >= retry_backoff_seconds)
);

create table public.runs (
  id                  uuid primary key default gen_random_uuid(),
  template            text not null references public.run_templates (name) on update cascade,
  lane                text not null check (lane in ('A', 'B', 'C', 'D')),
  status              text not null default 'queued'
                        check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  priority            integer not null default 0 check (priority between -100 and 100),
  attempt             integer not null default 0,
  max_attempts        integer not null check (max_attempts between 1 and 100),
  lease_seconds       integer not null check (lease_seconds between 5 and 86400),
  params              jsonb not null default '{}' check (jsonb_typeof(params) = 'object'),
  session_id          uuid references public.sessions (id) on delete set null,
  owner_id            uuid,
  idempotency_key     text check (char_length(idempotency_key) between 1 and 200),
  available_at        timestamptz not null default now(),
  worker_id           text,
  claimed_at          timestamptz,
  heartbeat_at        timestamptz,
  lease_expires_at    timestamptz,
  cancel_requested_at timestamptz,
  cancel_reason       text,
  result              jsonb,
  error               text,
  error_class         text,
  sweep_count         integer not null default 0 check (sweep_count >= 0),
  version             integer not null default 1,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  finished_at         timestamptz,
  constraint runs_attempt_range check (attempt between 0 and max_attempts),
  constraint runs_finished_iff_terminal
    check ((status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)),
  constraint runs_running_holds_lease
    check (status <> 'running'
           or (worker_id is not null and lease_expires_at is not null
               and claimed_at is not null and attempt >= 1)),
  constraint runs_lease_only_while_running check (status = 'running' or lease_expires_at is null),
  constraint runs_queued_has_no_worker check (status <> 'queued' or worker_id is null),
  constraint runs_succeeded_was_claimed check (status <> 'succeeded' or attempt >= 1)
) with (fillfactor = 85);
comment on table public.runs is
  'A run of a template. queued -> running -> succeeded|failed|cancelled; running -> queued by retry, sweep or release.';

-- The claim path: queued runs of a lane in priority-then-age order (partial: finished runs cost nothing).
create index runs_claim_idx on public.runs (lane, priority desc, created_at) where status = 'queued';
-- Running runs: lane concurrency counts and the sweeper. Leases are not indexed so heartbeats stay HOT.
create index runs_running_idx on public.runs (lane) where status = 'running';
create index runs_finished_idx on public.runs (finished_at) where finished_at is not null;
create index runs_created_idx on public.runs (created_at desc, id desc);
create index runs_template_idx on public.runs (template, created_at desc);
create index runs_session_idx on public.runs (session_id) where session_id is not null;
create index runs_owner_idx on public.runs (owner_id, created_at desc) where owner_id is not null;
create unique index runs_idempotency_idx
  on public.runs ((coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
  where idempotency_key is not null;

create table public.run_steps (
  run_id      uuid not null references public.runs (id) on delete cascade,
  attempt     integer not null check (attempt >= 1),
  idx         integer not null check (idx >= 0),
  name        text not null check (char_length(name) between 1 and 200),
  kind        text not null check (kind in ('shell', 'http', 'python', 'mcp', 'docker')),
  status      text not null check (status in ('running', 'succeeded', 'failed', 'cancelled', 'skipped')),
  started_at  timestamptz not null default now(),
  finished_at timestamptz,
  exit_code   integer,
  error       text,
  output      jsonb,
  primary key (run_id, attempt, idx),
  constraint run_steps_finished_iff_done check ((status = 'running') = (finished_at is null))
);

create table public.run_events (
  run_id    uuid not null references public.runs (id) on delete cascade,
  seq       bigint not null check (seq > 0),
  at        timestamptz not null default now(),
  kind      text not null check (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
  level     text not null default 'info' check (level in ('debug', 'info', 'warn', 'error')),
  message   text not null default '' check (octet_length(message) <= 16384),
  data      jsonb,
  attempt   integer,
  worker_id text,
  primary key (run_id, seq)
);

create table public.artifacts (
  id             uuid primary key default gen_random_uuid(),
  run_id         uuid not null references public.runs (id) on delete cascade,
  attempt        integer,
  name           text not null,
  kind           text not null default 'text' check (kind ~ '^[a-z][a-z0-9_-]{0,31}$'),
  content_type   text not null default 'text/plain; charset=utf-8',
  size_bytes     bigint not null default 0 check (size_bytes >= 0),
  inline_text    text check (octet_length(inline_text) <= 65536),
  storage_bucket text,
  storage_path   text,
  sha256         text check (sha256 is null or sha256 ~ '^[0-9a-f]{64}$'),
  metadata       jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at     timestamptz not null default now(),
  unique (run_id, name),
  constraint artifacts_name_is_relative_path check (
    char_length(name) between 1 and 255
    and name !~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])'),
  constraint artifacts_inline_xor_storage
    check ((inline_text is null) <> (storage_path is null)),
  constraint artifacts_storage_path_in_run_folder
    check (storage_path is null
           or (storage_bucket is not null and storage_path = run_id::text || '/' || name))
);

create table public.spec_docs (
  id         uuid primary key default gen_random_uuid(),
  session_id uuid references public.sessions (id) on delete cascade,
  owner_id   uuid,
  kind       text not null default 'note' check (kind ~ '^[a-z][a-z0-9_-]{0,31}$'),
  title      text not null default '' check (char_length(title) <= 200),
  content    text not null default '' check (octet_length(content) <= 1048576),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index spec_docs_session_idx on public.spec_docs (session_id);
create index spec_docs_owner_idx on public.spec_docs (owner_id);

create table public.workers (
  id           text primary key check (char_length(id) between 1 and 200),
  host         text not null default '',
  pid          integer,
  lanes        text[] not null default '{A,B,C,D}'
                 check (lanes <@ array['A', 'B', 'C', 'D']::text[]),
  version      text not null default '',
  concurrency  integer not null default 1 check (concurrency between 1 and 10000),
  status       text not null default 'active' check (status in ('active', 'draining', 'stopped')),
  started_at   timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  metadata     jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object')
);

-- Per-run event sequence counters, kept off the runs row so that log streaming does not
-- rewrite runs (and flood Realtime subscribers of runs with UPDATEs).
create table pulser_ops.run_event_counters (
  run_id   uuid primary key references public.runs (id) on delete cascade,
  last_seq bigint not null check (last_seq >= 0)
);

-- ---------------------------------------------------------------------------
-- Roles of the caller, errors
-- ---------------------------------------------------------------------------

-- Who is calling, as the control plane sees it: 'service' (workers, sweeper, a direct
-- connection with the service role's privileges), 'admin' (authenticated + app_metadata.ops_role
-- = admin), 'operator' (authenticated), 'anon', or 'none'. The 'role' GUC is what PostgREST,
-- Storage and Realtime set per request; SECURITY DEFINER does not change it.
create function pulser_ops.caller_kind() returns text
language plpgsql stable set search_path = '' as $$
-- plpgsql, not sql: a SQL function with SET search_path is never inlined and is re-planned on
-- every call, and this runs in every API call (bench/experiments/caller_kind_plpgsql.sql).
declare
  r text := nullif(pg_catalog.current_setting('role'), 'none');
begin
  if r = 'service_role' then
    return 'service';
  elsif r = 'authenticated' then
    return case when coalesce(auth.jwt() -> 'app_metadata' ->> 'ops_role', '') = 'admin'
                then 'admin' else 'operator' end;
  elsif r = 'anon' then
    return 'anon';
  elsif coalesce((select rolsuper from pg_catalog.pg_roles where rolname = coalesce(r, session_user)), false)
        or pg_catalog.pg_has_role(coalesce(r, session_user), 'service_role', 'USAGE') then
    return 'service';
  end if;
  return 'none';
end
$$;

create function pulser_ops.is_admin() returns boolean
language sql stable set search_path = '' as $$
  select pulser_ops.caller_kind() in ('service', 'admin')
$$;

create function pulser_ops.require_service(action text) returns void
language plpgsql stable set search_path = '' as $$
begin
  if pulser_ops.caller_kind() <> 'service' then
    raise exception 'permission denied: only the service role may %', action
      using errcode = '42501', hint = 'Workers and the sweeper use the service role key or a direct database connection.';
  end if;
end
$$;

create function pulser_ops.require_admin(action text) returns void
language plpgsql stable set search_path = '' as $$
begin
  if not pulser_ops.is_admin() then
    raise exception 'permission denied: only an admin or the service role may %', action
      using errcode = '42501', hint = 'Admins carry app_metadata.ops_role = ''admin'' in their JWT.';
  end if;
end
$$;

-- The run as a caller may act on it: not found (PO404) if it does not exist, 42501 if it is not
-- theirs. Locks the row (no key update) so the caller's decision holds until commit.
create function pulser_ops.lock_run_for(run_id uuid, action text) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
  k text := pulser_ops.caller_kind();
begin
  select * into r from public.runs where id = lock_run_for.run_id for no key update;
  if not found then
    raise exception 'run % not found', lock_run_for.run_id using errcode = 'PO404';
  end if;
  if k in ('service', 'admin') or (k = 'operator' and r.owner_id = auth.uid()) then
    return r;
  end if;
  raise exception 'permission denied: you may not % run %', action, lock_run_for.run_id
    using errcode = '42501';
end
$$;

-- ---------------------------------------------------------------------------
-- Run guard: transitions, version, updated_at
-- ---------------------------------------------------------------------------

create function pulser_ops.runs_guard() returns trigger
language plpgsql set search_path = '' as $$
begin
  if old.status in ('succeeded', 'failed', 'cancelled') then
    raise exception 'run % is already % and cannot change', old.id, old.status
      using errcode = 'PO411';
  end if;
  if new.status is distinct from old.status and not (
       (old.status = 'queued' and new.status in ('running', 'cancelled'))
    or (old.status = 'running' and new.status in ('queued', 'succeeded', 'failed', 'cancelled'))) then
    raise exception 'run % cannot go from % to %', old.id, old.status, new.status
      using errcode = 'PO400';
  end if;
  new.version := old.version + 1;
  new.updated_at := now();
  return new;
end
$$;
create trigger runs_guard before update on public.runs
  for each row execute function pulser_ops.runs_guard();

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
-- Events
-- ---------------------------------------------------------------------------

-- Reserve n consecutive sequence numbers for a run; returns the first. The counter row lock
-- serialises appenders of one run, so seq is gap-free and commit-ordered per run.
create function pulser_ops.reserve_event_seq(run_id uuid, n integer) returns bigint
language sql volatile set search_path = '' as $$
  insert into pulser_ops.run_event_counters as k (run_id, last_seq)
  values (reserve_event_seq.run_id, reserve_event_seq.n)
  on conflict on constraint run_event_counters_pkey
    do update set last_seq = k.last_seq + excluded.last_seq
  returning k.last_seq - reserve_event_seq.n + 1
$$;

create function pulser_ops.add_event(
  run_id uuid, kind text, level text, message text, data jsonb default null,
  attempt integer default null, worker_id text default null
) returns void
language plpgsql volatile set search_path = '' as $$
-- plpgsql keeps both statements' plans cached (a SQL function here is re-planned each call).
declare
  s bigint;
begin
  insert into pulser_ops.run_event_counters as k (run_id, last_seq) values (add_event.run_id, 1)
  on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
  returning k.last_seq into s;
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  values (add_event.run_id, s, add_event.kind, add_event.level, add_event.message,
          add_event.data, add_event.attempt, add_event.worker_id);
end
$$;

-- ---------------------------------------------------------------------------
-- Params validation: the JSON Schema subset templates may use
-- ---------------------------------------------------------------------------

create function pulser_ops.json_type_matches(value jsonb, want text) returns boolean
language plpgsql immutable set search_path = '' as $$
-- plpgsql: called per field of every enqueued run; a SQL function with SET search_path would be
-- re-planned on each call.
declare
  t text := jsonb_typeof(json_type_matches.value);
begin
  return case want
    when 'integer' then t = 'number' and (json_type_matches.value #>> '{}')::numeric % 1 = 0
    when 'object' then t = 'object'
    when 'array' then t = 'array'
    when 'string' then t = 'string'
    when 'boolean' then t = 'boolean'
    when 'null' then t = 'null'
    when 'number' then t = 'number'
    else false
  end;
end
$$;

-- First violation of value against schema, as 'path: problem', or null when valid.
create function pulser_ops.schema_violation(schema jsonb, value jsonb, path text) returns text
language plpgsql immutable set search_path = '' as $$
declare
  types jsonb;
  k text;
  sub jsonb;
  msg text;
  i integer;
  n numeric;
begin
  if schema ? 'type' then
    types := case jsonb_typeof(schema -> 'type') when 'array' then schema -> 'type'
                  else jsonb_build_array(schema -> 'type') end;
    if not exists (select 1 from jsonb_array_elements_text(types) as x(tname)
                   where pulser_ops.json_type_matches(schema_violation.value, x.tname)) then
      return format('%s: expected %s, got %s', path,
                    (select string_agg(x.tname, ' or ') from jsonb_array_elements_text(types) as x(tname)),
                    jsonb_typeof(schema_violation.value));
    end if;
  end if;
  if schema ? 'enum' and not (schema -> 'enum') @> jsonb_build_array(value) then
    return format('%s: must be one of %s', path, schema -> 'enum');
  end if;
  if schema ? 'const' and schema -> 'const' <> value then
    return format('%s: must be %s', path, schema -> 'const');
  end if;
  if jsonb_typeof(value) = 'number' then
    n := (value #>> '{}')::numeric;
    if schema ? 'minimum' and n < (schema ->> 'minimum')::numeric then
      return format('%s: must be >= %s', path, schema ->> 'minimum');
    end if;
    if schema ? 'maximum' and n > (schema ->> 'maximum')::numeric then
      return format('%s: must be <= %s', path, schema ->> 'maximum');
    end if;
    if schema ? 'exclusiveMinimum' and n <= (schema ->> 'exclusiveMinimum')::numeric then
      return format('%s: must be > %s', path, schema ->> 'exclusiveMinimum');
    end if;
    if schema ? 'exclusiveMaximum' and n >= (schema ->> 'exclusiveMaximum')::numeric then
      return format('%s: must be < %s', path, schema ->> 'exclusiveMaximum');
    end if;
  elsif jsonb_typeof(value) = 'string' then
    if schema ? 'minLength' and char_length(value #>> '{}') < (schema ->> 'minLength')::int then
      return format('%s: must be at least %s characters', path, schema ->> 'minLength');
    end if;
    if schema ? 'maxLength' and char_length(value #>> '{}') > (schema ->> 'maxLength')::int then
      return format('%s: must be at most %s characters', path, schema ->> 'maxLength');
    end if;
    if schema ? 'pattern' and (value #>> '{}') !~ (schema ->> 'pattern') then
      return format('%s: must match %s', path, schema ->> 'pattern');
    end if;
  elsif jsonb_typeof(value) = 'array' then
    if schema ? 'minItems' and jsonb_array_length(value) < (schema ->> 'minItems')::int then
      return format('%s: must have at least %s items', path, schema ->> 'minItems');
    end if;
    if schema ? 'maxItems' and jsonb_array_length(value) > (schema ->> 'maxItems')::int then
      return format('%s: must have at most %s items', path, schema ->> 'maxItems');
    end if;
    if jsonb_typeof(schema -> 'items') = 'object' then
      for i in 0 .. jsonb_array_length(value) - 1 loop
        msg := pulser_ops.schema_violation(schema -> 'items', value -> i, format('%s[%s]', path, i));
        if msg is not null then return msg; end if;
      end loop;
    end if;
  elsif jsonb_typeof(value) = 'object' then
    if jsonb_typeof(schema -> 'required') = 'array' then
      for k in select jsonb_array_elements_text(schema -> 'required') loop
        if not value ? k then
          return format('%s.%s: is required', path, k);
        end if;
      end loop;
    end if;
    for k, sub in select * from jsonb_each(schema_violation.value) loop
      if (schema -> 'properties') ? k then
        msg := pulser_ops.schema_violation(schema -> 'properties' -> k, sub, path || '.' || k);
        if msg is not null then return msg; end if;
      elsif schema -> 'additionalProperties' = 'false'::jsonb then
        return format('%s.%s: is not allowed (the schema has no such property)', path, k);
      elsif jsonb_typeof(schema -> 'additionalProperties') = 'object' then
        msg := pulser_ops.schema_violation(schema -> 'additionalProperties', sub, path || '.' || k);
        if msg is not null then return msg; end if;
      end if;
    end loop;
  end if;
  return null;
end
$$;

-- Is this a schema templates may use? Returns the first problem, or null. Unknown keywords are
-- refused so that a typo ('requried') is caught when the template is saved, not ignored forever.
create function pulser_ops.schema_problem(schema jsonb, path text) returns text
language plpgsql immutable set search_path = '' as $$
declare
  k text;
  sub jsonb;
  msg text;
  known constant text[] := array['type', 'properties', 'required', 'additionalProperties', 'enum',
    'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength',
    'maxLength', 'pattern', 'items', 'minItems', 'maxItems', 'default', 'description', 'title',
    'examples', 'format', '$schema'];
begin
  if jsonb_typeof(schema) <> 'object' then
    return format('%s: a schema must be a JSON object', path);
  end if;
  for k in select jsonb_object_keys(schema) loop
    if not k = any(known) then
      return format('%s: unsupported keyword "%s"', path, k);
    end if;
  end loop;
  if schema ? 'type' and not exists (
       select 1 from jsonb_array_elements_text(case jsonb_typeof(schema -> 'type')
         when 'array' then schema -> 'type' else jsonb_build_array(schema -> 'type') end) as x(tname)
       where x.tname in ('object', 'array', 'string', 'number', 'integer', 'boolean', 'null')) then
    return format('%s.type: unknown type %s', path, schema -> 'type');
  end if;
  if schema ? 'properties' then
    if jsonb_typeof(schema -> 'properties') <> 'object' then
      return format('%s.properties: must be an object', path);
    end if;
    for k, sub in select * from jsonb_each(schema -> 'properties') loop
      msg := pulser_ops.schema_problem(sub, format('%s.properties.%s', path, k));
      if msg is not null then return msg; end if;
    end loop;
  end if;
  if schema ? 'required' and (jsonb_typeof(schema -> 'required') <> 'array' or exists (
       select 1 from jsonb_array_elements(schema -> 'required') e where jsonb_typeof(e) <> 'string')) then
    return format('%s.required: must be an array of property names', path);
  end if;
  if schema ? 'enum' and jsonb_typeof(schema -> 'enum') <> 'array' then
    return format('%s.enum: must be an array', path);
  end if;
  if schema ? 'pattern' then
    begin
      perform '' ~ (schema ->> 'pattern');
    exception when invalid_regular_expression then
      return format('%s.pattern: invalid regular expression', path);
    end;
  end if;
  if jsonb_typeof(schema -> 'items') = 'object' then
    return pulser_ops.schema_problem(schema -> 'items', path || '.items');
  end if;
  if jsonb_typeof(schema -> 'additionalProperties') = 'object' then
    return pulser_ops.schema_problem(schema -> 'additionalProperties', path || '.additionalProperties');
  end if;
  return null;
end
$$;

-- ---------------------------------------------------------------------------
-- Enqueue
-- ---------------------------------------------------------------------------

-- Typed read of one field of a JSON request, naming the field when it has the wrong type.
create function pulser_ops.field(item jsonb, key text, want text, path text) returns jsonb
language plpgsql immutable set search_path = '' as $$
begin
  if not item ? key or item -> key = 'null'::jsonb then
    return null;
  end if;
  if not pulser_ops.json_type_matches(item -> key, want) then
    raise exception '%.%: expected %, got %', path, key, want, jsonb_typeof(item -> key)
      using errcode = 'PO400';
  end if;
  return item -> key;
end
$$;

create function pulser_ops.enqueue_runs(runs jsonb) returns setof public.runs
language plpgsql volatile security definer set search_path = '' as $$
declare
  k text := pulser_ops.caller_kind();
  uid uuid := auth.uid();
  item jsonb;
  ord bigint;
  path text;
  t public.run_templates;
  v_session uuid;
  v_owner uuid;
  v_lane text;
  v_params jsonb;
  v_priority integer;
  v_max integer;
  v_after timestamptz;
  v_key text;
  prop text;
  sub jsonb;
  msg text;
  existing public.runs;
  rows public.runs[] := '{}';
  out_ids uuid[] := '{}';
  r public.runs;
  winner uuid;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not enqueue runs', k using errcode = '42501';
  end if;
  if jsonb_typeof(enqueue_runs.runs) is distinct from 'array' then
    raise exception 'runs: expected an array of run requests' using errcode = 'PO400';
  end if;
  if jsonb_array_length(enqueue_runs.runs) > 10000 then
    raise exception 'runs: at most 10000 runs per call (got %)', jsonb_array_length(enqueue_runs.runs)
      using errcode = 'PO400';
  end if;

  for item, ord in select e, o from jsonb_array_elements(enqueue_runs.runs) with ordinality as x(e, o) loop
    path := format('runs[%s]', ord - 1);
    if jsonb_typeof(item) <> 'object' then
      raise exception '%: expected an object', path using errcode = 'PO400';
    end if;
    for prop in select jsonb_object_keys(item) loop
      if prop not in ('template', 'params', 'lane', 'priority', 'run_after', 'idempotency_key',
                      'session_id', 'max_attempts') then
        raise exception '%.%: unknown field', path, prop using errcode = 'PO400';
      end if;
    end loop;

    -- Batches are usually of one template: look it up only when the name changes.
    if t.name is distinct from (pulser_ops.field(item, 'template', 'string', path) #>> '{}') then
      select * into t from public.run_templates
        where name = pulser_ops.field(item, 'template', 'string', path) #>> '{}';
    end if;
    if t.name is distinct from (item ->> 'template') then
      raise exception 'unknown template %', coalesce(item ->> 'template', '(missing)')
        using errcode = 'PO404', detail = path || '.template';
    end if;

    v_params := coalesce(pulser_ops.field(item, 'params', 'object', path), '{}'::jsonb);
    -- Defaults from the schema fill missing top-level params, so handlers see one shape.
    for prop, sub in select * from jsonb_each(coalesce(t.params_schema -> 'properties', '{}')) loop
      if sub ? 'default' and not v_params ? prop then
        v_params := v_params || jsonb_build_object(prop, sub -> 'default');
      end if;
    end loop;
    -- The default schema ({"type": "object"}) says nothing field() has not checked already.
    msg := case when t.params_schema = '{"type": "object"}'::jsonb then null
                else pulser_ops.schema_violation(t.params_schema, v_params, 'params') end;
    if msg is not null then
      raise exception 'invalid params for template %: %', t.name, msg
        using errcode = 'PO422', detail = split_part(msg, ':', 1);
    end if;

    v_lane := coalesce(pulser_ops.field(item, 'lane', 'string', path) #>> '{}', t.default_lane);
    if v_lane not in ('A', 'B', 'C', 'D') then
      raise exception '%.lane: must be one of A, B, C, D (got %)', path, v_lane using errcode = 'PO400';
    end if;
    v_priority := coalesce((pulser_ops.field(item, 'priority', 'integer', path) #>> '{}')::numeric, 0);
    if v_priority not between -100 and 100 then
      raise exception '%.priority: must be between -100 and 100 (got %)', path, v_priority
        using errcode = 'PO400';
    end if;
    v_max := coalesce((pulser_ops.field(item, 'max_attempts', 'integer', path) #>> '{}')::numeric,
                      t.max_attempts);
    if v_max not between 1 and 100 then
      raise exception '%.max_attempts: must be between 1 and 100 (got %)', path, v_max
        using errcode = 'PO400';
    end if;
    begin
      v_after := (pulser_ops.field(item, 'run_after', 'string', path) #>> '{}')::timestamptz;
    exception when datetime_field_overflow or invalid_datetime_format then
      raise exception '%.run_after: not a timestamp (%)', path, item ->> 'run_after' using errcode = 'PO400';
    end;
    v_key := pulser_ops.field(item, 'idempotency_key', 'string', path) #>> '{}';
    if v_key is not null and char_length(v_key) not between 1 and 200 then
      raise exception '%.idempotency_key: must be 1 to 200 characters', path using errcode = 'PO400';
    end if;
    begin
      v_session := (pulser_ops.field(item, 'session_id', 'string', path) #>> '{}')::uuid;
    exception when invalid_text_representation then
      raise exception '%.session_id: not a uuid (%)', path, item ->> 'session_id' using errcode = 'PO400';
    end;

    -- Ownership: operators own what they enqueue and may only use their own sessions.
    v_owner := case when k = 'operator' then uid when k = 'admin' then uid end;
    if v_session is not null then
      select s.owner_id into v_owner from public.sessions s where s.id = v_session;
      if not found then
        raise exception '%.session_id: session % not found', path, v_session using errcode = 'PO404';
      end if;
      if k = 'operator' and v_owner is distinct from uid then
        raise exception 'permission denied: session % is not yours', v_session using errcode = '42501';
      end if;
    end if;

    if v_key is not null then
      -- The same key returns the same run (scoped per owner); within a batch too.
      select * into existing from public.runs x
        where x.idempotency_key = v_key
          and coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
            = coalesce(v_owner, '00000000-0000-0000-0000-000000000000'::uuid);
      if not found then
        select * into existing from unnest(rows) x
          where x.idempotency_key = v_key and x.owner_id is not distinct from v_owner;
      end if;
      if existing.id is not null then
        if existing.template <> t.name or existing.params <> v_params then
          raise exception 'idempotency key % was already used for a different run (%)', v_key, existing.id
            using errcode = 'PO409', detail = existing.id::text;
        end if;
        out_ids := out_ids || existing.id;
        existing := null;
        continue;
      end if;
    end if;

    r := null;
    r.id := gen_random_uuid();
    r.template := t.name;
    r.lane := v_lane;
    r.status := 'queued';
    r.priority := v_priority;
    r.attempt := 0;
    r.max_attempts := v_max;
    r.lease_seconds := t.lease_seconds;
    r.params := v_params;
    r.session_id := v_session;
    r.owner_id := v_owner;
    r.idempotency_key := v_key;
    r.available_at := greatest(now(), coalesce(v_after, now()));
    r.sweep_count := 0;
    r.version := 1;
    r.created_at := now();
    r.updated_at := now();
    rows := rows || r;
    out_ids := out_ids || r.id;
  end loop;

  -- One statement for the whole batch: one change notification, one wake-up.
  insert into public.runs select * from unnest(rows)
    on conflict ((coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
      where idempotency_key is not null do nothing;

  -- A concurrent enqueue with the same key may have won the race: return its run instead.
  if exists (select 1 from unnest(rows) q where q.idempotency_key is not null) then
    for i in 1 .. coalesce(array_length(out_ids, 1), 0) loop
      if not exists (select 1 from public.runs x where x.id = out_ids[i]) then
        select y.id into winner from unnest(rows) q
          join public.runs y on y.idempotency_key = q.idempotency_key
           and coalesce(y.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
             = coalesce(q.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
         where q.id = out_ids[i];
        out_ids[i] := winner;
      end if;
    end loop;
  end if;
  return query
    select x.* from unnest(out_ids) with ordinality as o(id, n)
    join public.runs x on x.id = o.id
    order by o.n;
end
$$;

create function public.enqueue_runs(runs jsonb) returns setof public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.enqueue_runs(enqueue_runs.runs)
$$;

create function public.enqueue_run(
  template text, params jsonb default '{}', lane text default null, priority integer default 0,
  run_after timestamptz default null, idempotency_key text default null,
  session_id uuid default null, max_attempts integer default null
) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.enqueue_runs(jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
    'template', enqueue_run.template, 'params', enqueue_run.params, 'lane', enqueue_run.lane,
    'priority', enqueue_run.priority, 'run_after', enqueue_run.run_after,
    'idempotency_key', enqueue_run.idempotency_key, 'session_id', enqueue_run.session_id,
    'max_attempts', enqueue_run.max_attempts))))
$$;

-- ---------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------

create function public.claim_runs(
  worker_id text, lanes text[] default '{A,B,C,D}', max_runs integer default 1,
  lease_seconds integer default null
) returns setof public.runs
language plpgsql volatile set search_path = '' as $$
-- Custom plans on purpose: a pinned generic plan (bench/experiments/claim_generic_plan.sql)
-- made claims ten times slower with 100,000 queued runs (bench/run.py --only depth).
declare
  capped text[];
begin
  perform pulser_ops.require_service('claim runs');
  if claim_runs.worker_id is null or char_length(claim_runs.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  end if;
  if claim_runs.max_runs is null or claim_runs.max_runs not between 1 and 1000 then
    raise exception 'max_runs: must be between 1 and 1000 (got %)', claim_runs.max_runs
      using errcode = 'PO400';
  end if;
  if claim_runs.lease_seconds is not null and claim_runs.lease_seconds not between 5 and 86400 then
    raise exception 'lease_seconds: must be between 5 and 86400 (got %)', claim_runs.lease_seconds
      using errcode = 'PO400';
  end if;
  if claim_runs.lanes is null or not claim_runs.lanes <@ array['A', 'B', 'C', 'D'] then
    raise exception 'lanes: must be a subset of A, B, C, D (got %)', claim_runs.lanes
      using errcode = 'PO400';
  end if;

  -- Claimers of capped lanes take turns (lanes locked in id order: no deadlocks), so two of them
  -- can never both see the last free slot.
  select array_agg(l.id order by l.id) into capped from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused and l.max_running is not null;
  if capped is not null then
    perform 1 from public.lanes l where l.id = any(capped) order by l.id for no key update;
  end if;

  return query
  with slots as (
    select l.id as lane,
           case when l.max_running is null then claim_runs.max_runs
                else greatest(0, l.max_running - (select count(*) from public.runs x
                                                  where x.status = 'running' and x.lane = l.id))::int
           end as free
    from public.lanes l
    where l.id = any(claim_runs.lanes) and not l.paused
  ),
  picked as (
    select c.id, c.priority, c.created_at
    from slots s
    cross join lateral (
      select r.id, r.priority, r.created_at from public.runs r
      where r.status = 'queued' and r.lane = s.lane and r.available_at <= now()
      order by r.priority desc, r.created_at
      limit least(s.free, claim_runs.max_runs)
      for no key update skip locked
    ) c
    where s.free > 0
    order by c.priority desc, c.created_at
    limit claim_runs.max_runs
  ),
  claimed as (
    update public.runs r
       set status = 'running',
           attempt = r.attempt + 1,
           worker_id = claim_runs.worker_id,
           claimed_at = now(),
           heartbeat_at = now(),
           -- The claim's lease (if given) becomes the run's, so heartbeats extend by the same.
           lease_seconds = coalesce(claim_runs.lease_seconds, r.lease_seconds),
           lease_expires_at = now() + make_interval(secs => coalesce(claim_runs.lease_seconds, r.lease_seconds))
      from picked p
     where r.id = p.id
    returning r.*
  ),
  seqs as (
    insert into pulser_ops.run_event_counters as k (run_id, last_seq)
    select c.id, 1 from claimed c order by c.id
    on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
    returning k.run_id, k.last_seq
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select c.id, s.last_seq, 'claimed', 'info',
           format('claimed by %s (attempt %s of %s)', c.worker_id, c.attempt, c.max_attempts),
           jsonb_build_object('lease_expires_at', c.lease_expires_at),
           c.attempt, c.worker_id
    from claimed c join seqs s on s.run_id = c.id
  )
  select c.* from claimed c order by c.priority desc, c.created_at;
end
$$;

-- ---------------------------------------------------------------------------
-- Heartbeat (fenced by run, worker and attempt)
-- ---------------------------------------------------------------------------

create type public.heartbeat_result as (
  run_id uuid, attempt integer, cancel_requested boolean, lease_expires_at timestamptz
);

-- Raise the error that explains why a fenced call on run_id was refused.
create function pulser_ops.raise_fenced(run_id uuid, worker_id text, attempt integer, action text)
returns void
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
begin
  select * into r from public.runs where id = raise_fenced.run_id;
  if not found then
    raise exception 'run % not found', raise_fenced.run_id using errcode = 'PO404';
  end if;
  raise exception 'lease lost: cannot % run % as worker % attempt %; it is % (worker %, attempt %)',
    action, raise_fenced.run_id, raise_fenced.worker_id, raise_fenced.attempt,
    r.status, coalesce(r.worker_id, '-'), r.attempt
    using errcode = 'PO410',
          detail = jsonb_build_object('status', r.status, 'worker_id', r.worker_id,
                                      'attempt', r.attempt)::text;
end
$$;

create function public.heartbeat_run(
  run_id uuid, worker_id text, attempt integer, lease_seconds integer default null
) returns public.heartbeat_result
language plpgsql volatile set search_path = '' as $$
declare
  res public.heartbeat_result;
begin
  perform pulser_ops.require_service('heartbeat runs');
  if heartbeat_run.lease_seconds is not null and heartbeat_run.lease_seconds not between 5 and 86400 then
    raise exception 'lease_seconds: must be between 5 and 86400' using errcode = 'PO400';
  end if;
  update public.runs r
     set heartbeat_at = now(),
         lease_expires_at = now() + make_interval(secs => coalesce(heartbeat_run.lease_seconds, r.lease_seconds))
   where r.id = heartbeat_run.run_id and r.status = 'running'
     and r.worker_id = heartbeat_run.worker_id and r.attempt = heartbeat_run.attempt
  returning r.id, r.attempt, r.cancel_requested_at is not null, r.lease_expires_at into res;
  if not found then
    perform pulser_ops.raise_fenced(heartbeat_run.run_id, heartbeat_run.worker_id,
                                    heartbeat_run.attempt, 'heartbeat');
  end if;
  return res;
end
$$;

create type public.heartbeat_batch_result as (
  run_id uuid, attempt integer, ok boolean, cancel_requested boolean, lease_expires_at timestamptz
);

-- Every run a worker holds in one statement; runs whose lease moved on come back with ok = false.
create function public.heartbeat_runs(worker_id text, runs jsonb)
returns setof public.heartbeat_batch_result
language plpgsql volatile set search_path = '' as $$
begin
  perform pulser_ops.require_service('heartbeat runs');
  if jsonb_typeof(heartbeat_runs.runs) is distinct from 'array' then
    raise exception 'runs: expected an array of {"run_id", "attempt"}' using errcode = 'PO400';
  end if;
  update public.workers w set last_seen_at = now() where w.id = heartbeat_runs.worker_id;
  return query
  with wanted as (
    select x.run_id, x.attempt from jsonb_to_recordset(heartbeat_runs.runs) as x(run_id uuid, attempt integer)
  ),
  beat as (
    update public.runs r
       set heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => r.lease_seconds)
      from wanted w
     where r.id = w.run_id and r.attempt = w.attempt and r.status = 'running'
       and r.worker_id = heartbeat_runs.worker_id
    returning r.id, r.attempt, r.cancel_requested_at is not null as cancel_requested, r.lease_expires_at
  )
  select w.run_id, w.attempt, b.id is not null, coalesce(b.cancel_requested, false), b.lease_expires_at
  from wanted w left join beat b on b.id = w.run_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Cancel
-- ---------------------------------------------------------------------------

create function pulser_ops.cancel_run(run_id uuid, reason text) returns public.runs
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.runs;
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: anonymous callers may not cancel runs' using errcode = '42501';
  end if;
  if cancel_run.reason is not null and char_length(cancel_run.reason) > 1000 then
    raise exception 'reason: at most 1000 characters' using errcode = 'PO400';
  end if;
  r := pulser_ops.lock_run_for(cancel_run.run_id, 'cancel');
  if r.status in ('succeeded', 'failed', 'cancelled') then
    raise exception 'run % is already %', r.id, r.status
      using errcode = 'PO411', detail = jsonb_build_object('status', r.status)::text;
  end if;
  if r.status = 'queued' then
    update public.runs x
       set status = 'cancelled', finished_at = now(), cancel_requested_at = now(),
           cancel_reason = cancel_run.reason
     where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'cancelled', 'warn',
      format('cancelled while queued by %s%s', who, coalesce(': ' || cancel_run.reason, '')),
      jsonb_build_object('reason', cancel_run.reason, 'by', who), r.attempt, null);
  elsif r.cancel_requested_at is null then
    update public.runs x
       set cancel_requested_at = now(), cancel_reason = cancel_run.reason
     where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'cancel_requested', 'warn',
      format('cancel requested by %s%s', who, coalesce(': ' || cancel_run.reason, '')),
      jsonb_build_object('reason', cancel_run.reason, 'by', who), r.attempt, r.worker_id);
  end if;
  return r;
end
$$;

create function public.cancel_run(run_id uuid, reason text default null) returns public.runs
language sql volatile set search_path = '' as $$
  select * from pulser_ops.cancel_run(cancel_run.run_id, cancel_run.reason)
$$;

-- ---------------------------------------------------------------------------
-- Complete and release (fenced)
-- ---------------------------------------------------------------------------

create function public.complete_run(
  run_id uuid, worker_id text, attempt integer, status text, result jsonb default null,
  error text default null, error_class text default null, retryable boolean default true
) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
  t public.run_templates;
  delay numeric;
begin
  perform pulser_ops.require_service('complete runs');
  if complete_run.status is null or complete_run.status not in ('succeeded', 'failed', 'cancelled') then
    raise exception 'status: must be succeeded, failed or cancelled (got %)', complete_run.status
      using errcode = 'PO400';
  end if;
  if complete_run.error is not null and octet_length(complete_run.error) > 65536 then
    raise exception 'error: at most 65536 bytes' using errcode = 'PO400';
  end if;
  select * into r from public.runs x where x.id = complete_run.run_id for no key update;
  if not found then
    raise exception 'run % not found', complete_run.run_id using errcode = 'PO404';
  end if;
  if r.status = complete_run.status and r.worker_id = complete_run.worker_id
     and r.attempt = complete_run.attempt then
    return r;  -- the same completion again (a retried request): nothing more to do
  end if;
  if r.status <> 'running' or r.worker_id <> complete_run.worker_id or r.attempt <> complete_run.attempt then
    perform pulser_ops.raise_fenced(complete_run.run_id, complete_run.worker_id,
                                    complete_run.attempt, 'complete');
  end if;

  select * into t from public.run_templates x where x.name = r.template;
  -- A failure retries unless attempts are used up, the error is not retryable, or someone asked
  -- to cancel the run (then the failure is final).
  if complete_run.status = 'failed' and complete_run.retryable and r.attempt < r.max_attempts
     and r.cancel_requested_at is null and not coalesce(complete_run.error_class = any(t.non_retryable_errors), false) then
    -- Exponential backoff with a cap; jitter spreads retries of runs that failed together.
    delay := least(t.retry_backoff_max_seconds,
                   t.retry_backoff_seconds * power(2::numeric, r.attempt - 1))
             * (1 - t.retry_jitter * random()::numeric);
    update public.runs x
       set status = 'queued', worker_id = null, lease_expires_at = null,
           available_at = now() + make_interval(secs => delay::double precision),
           error = complete_run.error, error_class = complete_run.error_class
     where x.id = r.id returning x.* into r;
    perform pulser_ops.add_event(r.id, 'retry_scheduled', 'warn',
      format('attempt %s of %s failed; retry in %ss: %s', r.attempt, r.max_attempts,
             round(delay, 1), coalesce(complete_run.error, 'no error message')),
      jsonb_build_object('delay_seconds', round(delay, 3), 'error_class', complete_run.error_class,
                         'available_at', r.available_at),
      r.attempt, complete_run.worker_id);
    return r;
  end if;

  update public.runs x
     set status = complete_run.status, finished_at = now(), lease_expires_at = null,
         result = complete_run.result, error = complete_run.error,
         error_class = complete_run.error_class
   where x.id = r.id returning x.* into r;
  perform pulser_ops.add_event(r.id, complete_run.status,
    case complete_run.status when 'succeeded' then 'info' when 'cancelled' then 'warn' else 'error' end,
    case complete_run.status
      when 'succeeded' then format('succeeded on attempt %s', r.attempt)
      when 'cancelled' then format('cancelled on attempt %s', r.attempt)
      else format('failed on attempt %s of %s%s: %s', r.attempt, r.max_attempts,
                  case when not complete_run.retryable
                         or coalesce(complete_run.error_class = any(t.non_retryable_errors), false)
                       then ' (not retryable)' else '' end,
                  coalesce(complete_run.error, 'no error message')) end,
    jsonb_build_object('error_class', complete_run.error_class), r.attempt, complete_run.worker_id);
  return r;
end
$$;

-- A worker shutting down gives the run back without using up an attempt.
create function public.release_run(
  run_id uuid, worker_id text, attempt integer, reason text default null
) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
begin
  perform pulser_ops.require_service('release runs');
  update public.runs x
     set status = 'queued', attempt = x.attempt - 1, worker_id = null, lease_expires_at = null,
         available_at = now()
   where x.id = release_run.run_id and x.status = 'running'
     and x.worker_id = release_run.worker_id and x.attempt = release_run.attempt
  returning x.* into r;
  if not found then
    perform pulser_ops.raise_fenced(release_run.run_id, release_run.worker_id,
                                    release_run.attempt, 'release');
  end if;
  perform pulser_ops.add_event(r.id, 'released', 'warn',
    format('released by %s%s; the attempt was given back', release_run.worker_id,
           coalesce(': ' || release_run.reason, '')),
    jsonb_build_object('reason', release_run.reason), release_run.attempt, release_run.worker_id);
  return r;
end
$$;

-- ---------------------------------------------------------------------------
-- Events, steps, artifacts
-- ---------------------------------------------------------------------------

create function pulser_ops.event_batch(events jsonb)
returns table (n bigint, run_id uuid, kind text, level text, message text, data jsonb,
               attempt integer, worker_id text)
language sql immutable set search_path = '' as $$
  select e.o - 1, x.run_id, x.kind, coalesce(x.level, 'info'), coalesce(x.message, ''), x.data,
         x.attempt, x.worker_id
  from jsonb_array_elements(event_batch.events) with ordinality as e(v, o),
       jsonb_to_record(e.v) as x(run_id uuid, kind text, level text, message text, data jsonb,
                                 attempt integer, worker_id text)
$$;

create function pulser_ops.append_run_events(events jsonb) returns setof public.run_events
language plpgsql volatile security definer set search_path = '' as $$
declare
  k text := pulser_ops.caller_kind();
  bad record;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not append events', k using errcode = '42501';
  end if;
  if jsonb_typeof(append_run_events.events) is distinct from 'array' then
    raise exception 'events: expected an array of events' using errcode = 'PO400';
  end if;
  if jsonb_array_length(append_run_events.events) > 5000 then
    raise exception 'events: at most 5000 events per call' using errcode = 'PO400';
  end if;
  if exists (select 1 from jsonb_array_elements(append_run_events.events) v where jsonb_typeof(v) <> 'object') then
    raise exception 'events: every event must be an object' using errcode = 'PO400';
  end if;
  begin
    select * into bad from pulser_ops.event_batch(append_run_events.events) b
     where b.run_id is null or b.kind is null or b.kind !~ '^[a-z][a-z0-9_.]{0,63}$'
        or b.level not in ('debug', 'info', 'warn', 'error') or octet_length(b.message) > 16384
     order by b.n limit 1;
  exception when invalid_text_representation or datatype_mismatch or invalid_parameter_value
                 or numeric_value_out_of_range then
    raise exception 'events: %', sqlerrm using errcode = 'PO400';
  end;
  if found then
    raise exception 'events[%]: %', bad.n, case
      when bad.run_id is null then 'run_id is required'
      when bad.kind is null then 'kind is required'
      when bad.kind !~ '^[a-z][a-z0-9_.]{0,63}$' then format('kind %L must match [a-z][a-z0-9_.]*', bad.kind)
      when bad.level not in ('debug', 'info', 'warn', 'error') then format('level %L must be debug, info, warn or error', bad.level)
      else 'message is longer than 16384 bytes' end
      using errcode = 'PO400';
  end if;
  select b.n, b.run_id into bad from pulser_ops.event_batch(append_run_events.events) b
   where not exists (select 1 from public.runs r where r.id = b.run_id
                     and (k in ('service', 'admin') or r.owner_id = auth.uid()))
   order by b.n limit 1;
  if found then
    if exists (select 1 from public.runs r where r.id = bad.run_id) then
      raise exception 'permission denied: run % is not yours', bad.run_id using errcode = '42501';
    end if;
    raise exception 'events[%]: run % not found', bad.n, bad.run_id using errcode = 'PO404';
  end if;

  return query
  with b as (
    select * from pulser_ops.event_batch(append_run_events.events)
  ),
  reserved as (
    -- One counter bump per run, in run id order (a fixed lock order: no deadlocks).
    select p.run_id, pulser_ops.reserve_event_seq(p.run_id, p.n) as first_seq
    from (select b.run_id, count(*)::int as n from b group by b.run_id order by b.run_id) p
  )
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  select b.run_id,
         r.first_seq + row_number() over (partition by b.run_id order by b.n) - 1,
         b.kind, b.level, b.message, b.data, b.attempt, b.worker_id
  from b join reserved r on r.run_id = b.run_id
  order by b.n
  returning *;
end
$$;

create function public.append_run_events(events jsonb) returns setof public.run_events
language sql volatile set search_path = '' as $$
  select * from pulser_ops.append_run_events(append_run_events.events)
$$;

create function public.record_run_step(
  run_id uuid, worker_id text, attempt integer, idx integer, name text, kind text, status text,
  exit_code integer default null, error text default null, output jsonb default null
) returns public.run_steps
language plpgsql volatile set search_path = '' as $$
declare
  s public.run_steps;
begin
  perform pulser_ops.require_service('record run steps');
  perform 1 from public.runs r
   where r.id = record_run_step.run_id and r.status = 'running'
     and r.worker_id = record_run_step.worker_id and r.attempt = record_run_step.attempt;
  if not found then
    perform pulser_ops.raise_fenced(record_run_step.run_id, record_run_step.worker_id,
                                    record_run_step.attempt, 'record a step of');
  end if;
  insert into public.run_steps as x (run_id, attempt, idx, name, kind, status, finished_at,
                                     exit_code, error, output)
  values (record_run_step.run_id, record_run_step.attempt, record_run_step.idx, record_run_step.name,
          record_run_step.kind, record_run_step.status,
          case when record_run_step.status <> 'running' then now() end,
          record_run_step.exit_code, record_run_step.error, record_run_step.output)
  on conflict on constraint run_steps_pkey do update
    set status = excluded.status, finished_at = excluded.finished_at,
        exit_code = excluded.exit_code, error = excluded.error, output = excluded.output
  returning x.* into s;
  return s;
end
$$;

create function public.put_artifact(
  run_id uuid, name text, kind text default 'text', content_type text default null,
  inline_text text default null, storage_path text default null, size_bytes bigint default null,
  sha256 text default null, metadata jsonb default '{}', attempt integer default null
) returns public.artifacts
language plpgsql volatile set search_path = '' as $$
declare
  a public.artifacts;
begin
  perform pulser_ops.require_service('save artifacts');
  if put_artifact.name is null or char_length(put_artifact.name) not between 1 and 255
     or put_artifact.name ~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])' then
    raise exception 'name: % is not a safe relative path (no leading /, no . or .. segments, no backslashes or control characters, at most 255 characters)',
      coalesce(quote_literal(put_artifact.name), 'null') using errcode = 'PO400';
  end if;
  if (put_artifact.inline_text is null) = (put_artifact.storage_path is null) then
    raise exception 'give exactly one of inline_text and storage_path' using errcode = 'PO400';
  end if;
  if octet_length(put_artifact.inline_text) > 65536 then
    raise exception 'inline_text is % bytes; the inline limit is 65536 bytes: upload it to Storage instead',
      octet_length(put_artifact.inline_text) using errcode = 'PO400';
  end if;
  if put_artifact.storage_path is not null
     and put_artifact.storage_path <> put_artifact.run_id::text || '/' || put_artifact.name then
    raise exception 'storage_path must be %', put_artifact.run_id::text || '/' || put_artifact.name
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

-- ---------------------------------------------------------------------------
-- Sweeper
-- ---------------------------------------------------------------------------

create type public.sweep_result as (
  run_id uuid, action text, attempt integer, worker_id text, stuck_for_seconds numeric
);

-- Requeue (or fail, after the last attempt) runs whose lease expired. The expiry is re-checked on
-- the locked row, so a heartbeat or completion that committed first always wins.
create function public.sweep_expired_runs(max_runs integer default 500)
returns setof public.sweep_result
language plpgsql volatile set search_path = '' as $$
begin
  perform pulser_ops.require_service('sweep runs');
  if sweep_expired_runs.max_runs is null or sweep_expired_runs.max_runs not between 1 and 10000 then
    raise exception 'max_runs: must be between 1 and 10000' using errcode = 'PO400';
  end if;
  return query
  with expired as (
    select r.id, r.worker_id as old_worker, r.lease_expires_at as old_lease, r.heartbeat_at as old_beat
    from public.runs r
    where r.status = 'running' and r.lease_expires_at < now()
    order by r.lease_expires_at
    limit sweep_expired_runs.max_runs
    for no key update skip locked
  ),
  swept as (
    update public.runs r
       set status = case when r.cancel_requested_at is not null then 'cancelled'
                         when r.attempt >= r.max_attempts then 'failed' else 'queued' end,
           finished_at = case when r.cancel_requested_at is not null or r.attempt >= r.max_attempts
                              then now() end,
           worker_id = case when r.cancel_requested_at is not null or r.attempt >= r.max_attempts
                            then r.worker_id end,
           lease_expires_at = null,
           available_at = now(),
           sweep_count = r.sweep_count + 1,
           error = case when r.cancel_requested_at is not null
                        then format('cancelled: worker %s stopped heartbeating after the cancel request', r.worker_id)
                        when r.attempt >= r.max_attempts
                        then format('lease expired on the last attempt (%s of %s): worker %s stopped heartbeating',
                                    r.attempt, r.max_attempts, r.worker_id)
                        else r.error end,
           error_class = case when r.cancel_requested_at is null and r.attempt >= r.max_attempts
                              then 'lease_expired' else r.error_class end
      from expired e
     where r.id = e.id and r.status = 'running' and r.lease_expires_at < now()
    returning r.id, r.status, r.attempt, r.max_attempts, e.old_worker, e.old_beat
  ),
  seqs as (
    insert into pulser_ops.run_event_counters as k (run_id, last_seq)
    select s.id, 1 from swept s order by s.id
    on conflict on constraint run_event_counters_pkey do update set last_seq = k.last_seq + 1
    returning k.run_id, k.last_seq
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select s.id, q.last_seq, 'swept', case when s.status = 'failed' then 'error' else 'warn' end,
           format('lease of worker %s expired (last heartbeat %ss ago); %s', s.old_worker,
                  round(extract(epoch from now() - s.old_beat)::numeric, 1),
                  case s.status
                    when 'failed' then format('failed: attempt %s was the last of %s', s.attempt, s.max_attempts)
                    when 'cancelled' then 'cancelled, as requested'
                    else format('requeued after attempt %s of %s', s.attempt, s.max_attempts) end),
           jsonb_build_object('old_worker_id', s.old_worker, 'action',
                              case s.status when 'queued' then 'requeued' else s.status end),
           s.attempt, s.old_worker
    from swept s join seqs q on q.run_id = s.id
  )
  select s.id, case s.status when 'queued' then 'requeued' else s.status end, s.attempt,
         s.old_worker, round(extract(epoch from now() - s.old_beat)::numeric, 3)
  from swept s;
end
$$;

-- ---------------------------------------------------------------------------
-- Templates, lanes, sessions, workers, retention
-- ---------------------------------------------------------------------------

create function pulser_ops.upsert_template(template jsonb) returns public.run_templates
language plpgsql volatile security definer set search_path = '' as $$
declare
  t public.run_templates;
  prop text;
  problem text;
  step jsonb;
  i integer := 0;
begin
  perform pulser_ops.require_admin('change templates');
  if jsonb_typeof(upsert_template.template) is distinct from 'object' then
    raise exception 'template: expected an object' using errcode = 'PO400';
  end if;
  for prop in select jsonb_object_keys(upsert_template.template) loop
    if prop not in ('name', 'description', 'params_schema', 'steps', 'default_lane', 'max_attempts',
                    'retry_backoff_seconds', 'retry_backoff_max_seconds', 'retry_jitter',
                    'non_retryable_errors', 'lease_seconds', 'timeout_seconds') then
      raise exception 'template.%: unknown field', prop using errcode = 'PO400';
    end if;
  end loop;
  if coalesce(upsert_template.template ->> 'name', '') !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
    raise exception 'template.name: must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got %)',
      coalesce(upsert_template.template ->> 'name', 'nothing') using errcode = 'PO400';
  end if;
  problem := pulser_ops.schema_problem(coalesce(upsert_template.template -> 'params_schema',
                                                '{"type": "object"}'), 'template.params_schema');
  if problem is null and coalesce(upsert_template.template -> 'params_schema' ->> 'type', 'object') <> 'object' then
    problem := 'template.params_schema.type: the params of a run are always an object';
  end if;
  if problem is not null then
    raise exception '%', problem using errcode = 'PO400';
  end if;
  if upsert_template.template ? 'steps' then
    if jsonb_typeof(upsert_template.template -> 'steps') <> 'array' then
      raise exception 'template.steps: expected an array' using errcode = 'PO400';
    end if;
    for step in select jsonb_array_elements(upsert_template.template -> 'steps') loop
      if jsonb_typeof(step) <> 'object'
         or coalesce(step ->> 'kind', '') not in ('shell', 'http', 'python', 'mcp', 'docker') then
        raise exception 'template.steps[%].kind: must be shell, http, python, mcp or docker', i
          using errcode = 'PO400';
      end if;
      i := i + 1;
    end loop;
  end if;
  begin
    t := jsonb_populate_record(null::public.run_templates,
           upsert_template.template || jsonb_build_object('created_at', now(), 'updated_at', now()));
  exception when others then
    raise exception 'template: %', sqlerrm using errcode = 'PO400';
  end;
  insert into public.run_templates as x (name, description, params_schema, steps, default_lane,
    max_attempts, retry_backoff_seconds, retry_backoff_max_seconds, retry_jitter,
    non_retryable_errors, lease_seconds, timeout_seconds)
  values (t.name, coalesce(t.description, ''), coalesce(t.params_schema, '{"type": "object"}'),
    coalesce(t.steps, '[]'), coalesce(t.default_lane, 'A'), coalesce(t.max_attempts, 3),
    coalesce(t.retry_backoff_seconds, 5), coalesce(t.retry_backoff_max_seconds, 600),
    coalesce(t.retry_jitter, 0.2), coalesce(t.non_retryable_errors, '{}'),
    coalesce(t.lease_seconds, 60), t.timeout_seconds)
  on conflict (name) do update
    set description = excluded.description, params_schema = excluded.params_schema,
        steps = excluded.steps, default_lane = excluded.default_lane,
        max_attempts = excluded.max_attempts, retry_backoff_seconds = excluded.retry_backoff_seconds,
        retry_backoff_max_seconds = excluded.retry_backoff_max_seconds,
        retry_jitter = excluded.retry_jitter, non_retryable_errors = excluded.non_retryable_errors,
        lease_seconds = excluded.lease_seconds, timeout_seconds = excluded.timeout_seconds,
        updated_at = now()
  returning x.* into t;
  return t;
exception when check_violation or not_null_violation then
  raise exception 'template: %', sqlerrm using errcode = 'PO400';
end
$$;

create function public.upsert_template(template jsonb) returns public.run_templates
language sql volatile set search_path = '' as $$
  select * from pulser_ops.upsert_template(upsert_template.template)
$$;

create function pulser_ops.set_lane(lane text, paused boolean, max_running integer,
                                    clear_max_running boolean) returns public.lanes
language plpgsql volatile security definer set search_path = '' as $$
declare
  l public.lanes;
begin
  perform pulser_ops.require_admin('change lanes');
  if set_lane.max_running is not null and set_lane.max_running < 1 then
    raise exception 'max_running: must be at least 1 (or clear it for no limit)' using errcode = 'PO400';
  end if;
  update public.lanes x
     set paused = coalesce(set_lane.paused, x.paused),
         max_running = case when set_lane.clear_max_running then null
                            else coalesce(set_lane.max_running, x.max_running) end,
         updated_at = now()
   where x.id = set_lane.lane
  returning x.* into l;
  if not found then
    raise exception 'lane % not found (lanes are A, B, C and D)', set_lane.lane using errcode = 'PO404';
  end if;
  if not l.paused then
    perform pg_catalog.pg_notify('pulser_ops_wakeup', l.id);
  end if;
  return l;
end
$$;

create function public.set_lane(lane text, paused boolean default null,
                                max_running integer default null,
                                clear_max_running boolean default false) returns public.lanes
language sql volatile set search_path = '' as $$
  select * from pulser_ops.set_lane(set_lane.lane, set_lane.paused, set_lane.max_running,
                                    set_lane.clear_max_running)
$$;

create function pulser_ops.create_session(title text, metadata jsonb) returns public.sessions
language plpgsql volatile security definer set search_path = '' as $$
declare
  s public.sessions;
  k text := pulser_ops.caller_kind();
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not create sessions', k using errcode = '42501';
  end if;
  if jsonb_typeof(coalesce(create_session.metadata, '{}')) <> 'object' then
    raise exception 'metadata: expected an object' using errcode = 'PO400';
  end if;
  if char_length(coalesce(create_session.title, '')) > 200 then
    raise exception 'title: at most 200 characters' using errcode = 'PO400';
  end if;
  insert into public.sessions as x (owner_id, title, metadata)
  values (case when k in ('operator', 'admin') then auth.uid() end,
          coalesce(create_session.title, ''), coalesce(create_session.metadata, '{}'))
  returning x.* into s;
  return s;
end
$$;

create function public.create_session(title text default null, metadata jsonb default '{}')
returns public.sessions
language sql volatile set search_path = '' as $$
  select * from pulser_ops.create_session(create_session.title, create_session.metadata)
$$;

create function public.register_worker(
  worker_id text, host text default '', pid integer default null, lanes text[] default '{A,B,C,D}',
  version text default '', concurrency integer default 1, metadata jsonb default '{}'
) returns public.workers
language plpgsql volatile set search_path = '' as $$
declare
  w public.workers;
begin
  perform pulser_ops.require_service('register workers');
  if register_worker.worker_id is null or char_length(register_worker.worker_id) not between 1 and 200 then
    raise exception 'worker_id: must be 1 to 200 characters' using errcode = 'PO400';
  end if;
  if register_worker.lanes is null or not register_worker.lanes <@ array['A', 'B', 'C', 'D'] then
    raise exception 'lanes: must be a subset of A, B, C, D' using errcode = 'PO400';
  end if;
  insert into public.workers as x (id, host, pid, lanes, version, concurrency, status, started_at,
                                   last_seen_at, metadata)
  values (register_worker.worker_id, coalesce(register_worker.host, ''), register_worker.pid,
          register_worker.lanes, coalesce(register_worker.version, ''), register_worker.concurrency,
          'active', now(), now(), coalesce(register_worker.metadata, '{}'))
  on conflict (id) do update
    set host = excluded.host, pid = excluded.pid, lanes = excluded.lanes, version = excluded.version,
        concurrency = excluded.concurrency, status = 'active', started_at = now(),
        last_seen_at = now(), metadata = excluded.metadata
  returning x.* into w;
  return w;
exception when check_violation then
  raise exception 'worker: %', sqlerrm using errcode = 'PO400';
end
$$;

create function public.deregister_worker(worker_id text, status text default 'stopped')
returns public.workers
language plpgsql volatile set search_path = '' as $$
declare
  w public.workers;
begin
  perform pulser_ops.require_service('deregister workers');
  if deregister_worker.status not in ('draining', 'stopped') then
    raise exception 'status: must be draining or stopped' using errcode = 'PO400';
  end if;
  update public.workers x set status = deregister_worker.status, last_seen_at = now()
   where x.id = deregister_worker.worker_id returning x.* into w;
  if not found then
    raise exception 'worker % not found', deregister_worker.worker_id using errcode = 'PO404';
  end if;
  return w;
end
$$;

create type public.prune_result as (run_id uuid, storage_paths text[]);

-- Delete finished runs older than the cutoff, in one bounded batch; their events, steps and
-- artifact rows go with them (on delete cascade). Returns the Storage paths the caller must
-- remove, because files in Storage are removed through the Storage API, not SQL.
create function pulser_ops.prune_runs(older_than_seconds numeric, max_runs integer)
returns setof public.prune_result
language plpgsql volatile security definer set search_path = '' as $$
begin
  perform pulser_ops.require_admin('prune runs');
  if prune_runs.older_than_seconds is null or prune_runs.older_than_seconds < 0 then
    raise exception 'older_than_seconds: must be >= 0' using errcode = 'PO400';
  end if;
  if prune_runs.max_runs is null or prune_runs.max_runs not between 1 and 10000 then
    raise exception 'max_runs: must be between 1 and 10000' using errcode = 'PO400';
  end if;
  return query
  with doomed as (
    select r.id from public.runs r
    where r.finished_at is not null
      and r.finished_at < now() - make_interval(secs => prune_runs.older_than_seconds::double precision)
    order by r.finished_at
    limit prune_runs.max_runs
    for update skip locked
  ),
  files as (
    select a.run_id, array_agg(a.storage_path order by a.storage_path) as paths
    from public.artifacts a join doomed d on d.id = a.run_id
    where a.storage_path is not null group by a.run_id
  ),
  gone as (
    delete from public.runs r using doomed d where r.id = d.id returning r.id
  )
  select g.id, coalesce(f.paths, '{}') from gone g left join files f on f.run_id = g.id;
end
$$;

create function public.prune_runs(older_than_seconds numeric, max_runs integer default 500)
returns setof public.prune_result
language sql volatile set search_path = '' as $$
  select * from pulser_ops.prune_runs(prune_runs.older_than_seconds, prune_runs.max_runs)
$$;

-- Delete some finished runs by id (the targeted form of prune_runs), e.g. to clean up after
-- `pulser-ops doctor --smoke`. Returns the Storage paths the caller must remove.
create function pulser_ops.delete_runs(run_ids uuid[]) returns setof public.prune_result
language plpgsql volatile security definer set search_path = '' as $$
declare
  bad uuid;
begin
  perform pulser_ops.require_admin('delete runs');
  select x.id into bad from public.runs x
   where x.id = any(delete_runs.run_ids) and x.finished_at is null limit 1;
  if found then
    raise exception 'run % is not finished; cancel it first', bad using errcode = 'PO409';
  end if;
  return query
  with files as (
    select a.run_id, array_agg(a.storage_path order by a.storage_path) as paths
    from public.artifacts a
    where a.run_id = any(delete_runs.run_ids) and a.storage_path is not null group by a.run_id
  ),
  gone as (
    delete from public.runs r where r.id = any(delete_runs.run_ids) returning r.id
  )
  select g.id, coalesce(f.paths, '{}') from gone g left join files f on f.run_id = g.id;
end
$$;

create function public.delete_runs(run_ids uuid[]) returns setof public.prune_result
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_runs(delete_runs.run_ids)
$$;

-- What `pulser-ops doctor` checks, readable over either transport: which migrations are
-- applied, which API functions exist, what Realtime publishes, whether the bucket is there,
-- which tables lack RLS, and what kind of caller the current key is.
create function pulser_ops.control_plane_info() returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  versions jsonb := '[]';
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied' using errcode = '42501';
  end if;
  if to_regclass('supabase_migrations.schema_migrations') is not null then
    execute 'select coalesce(jsonb_agg(version order by version), ''[]'') from supabase_migrations.schema_migrations'
      into versions;
  end if;
  return jsonb_build_object(
    'caller', pulser_ops.caller_kind(),
    'migrations', versions,
    'functions', (select coalesce(jsonb_agg(distinct p.proname order by p.proname), '[]')
                  from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                  where n.nspname = 'public'
                    and not exists (select 1 from pg_catalog.pg_depend d
                                    where d.objid = p.oid and d.deptype = 'e')),
    'published', (select coalesce(jsonb_agg(t.tablename order by t.tablename), '[]')
                  from pg_catalog.pg_publication_tables t
                  where t.pubname = 'supabase_realtime' and t.schemaname = 'public'),
    'bucket', (select jsonb_build_object('id', b.id, 'public', b.public)
               from storage.buckets b where b.id = 'run-artifacts'),
    'tables_without_rls', (select coalesce(jsonb_agg(c.relname order by c.relname), '[]')
                           from pg_catalog.pg_class c
                           join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                           where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity
                             and c.relname in ('lanes', 'sessions', 'run_templates', 'runs',
                               'run_steps', 'run_events', 'artifacts', 'spec_docs', 'workers')),
    'server_version', pg_catalog.current_setting('server_version')
  );
end
$$;

-- A row of two columns rather than a bare jsonb (which PostgREST unwraps, as it does a
-- one-column table), so PostgREST and psycopg return the same shape.
create function public.control_plane_info() returns table (info jsonb, checked_at timestamptz)
language sql stable set search_path = '' as $$
  select pulser_ops.control_plane_info(), now()
$$;

-- ---------------------------------------------------------------------------
-- Readers (security invoker: RLS decides what each caller sees)
-- ---------------------------------------------------------------------------

create function public.get_run(run_id uuid) returns public.runs
language plpgsql stable set search_path = '' as $$
declare
  r public.runs;
begin
  select * into r from public.runs x where x.id = get_run.run_id;
  if not found then
    raise exception 'run % not found', get_run.run_id using errcode = 'PO404';
  end if;
  return r;
end
$$;

create function public.list_runs(
  status text[] default null, lanes text[] default null, template text default null,
  session_id uuid default null, created_after timestamptz default null,
  created_before timestamptz default null, stuck boolean default false,
  max_rows integer default 100, after_id uuid default null
) returns setof public.runs
language plpgsql stable set search_path = '' as $$
declare
  cursor_at timestamptz;
begin
  if list_runs.max_rows is null or list_runs.max_rows not between 1 and 1000 then
    raise exception 'max_rows: must be between 1 and 1000' using errcode = 'PO400';
  end if;
  if list_runs.status is not null
     and not list_runs.status <@ array['queued', 'running', 'succeeded', 'failed', 'cancelled'] then
    raise exception 'status: unknown status in %', list_runs.status using errcode = 'PO400';
  end if;
  if list_runs.after_id is not null then
    select x.created_at into cursor_at from public.runs x where x.id = list_runs.after_id;
    if not found then
      raise exception 'after_id: run % not found', list_runs.after_id using errcode = 'PO404';
    end if;
  end if;
  return query
  select x.* from public.runs x
  where (list_runs.status is null or x.status = any(list_runs.status))
    and (list_runs.lanes is null or x.lane = any(list_runs.lanes))
    and (list_runs.template is null or x.template = list_runs.template)
    and (list_runs.session_id is null or x.session_id = list_runs.session_id)
    and (list_runs.created_after is null or x.created_at >= list_runs.created_after)
    and (list_runs.created_before is null or x.created_at < list_runs.created_before)
    and (not list_runs.stuck or (x.status in ('queued', 'running') and x.sweep_count > 0)
         or (x.status = 'running' and x.lease_expires_at < now()))
    and (cursor_at is null or (x.created_at, x.id) < (cursor_at, list_runs.after_id))
  order by x.created_at desc, x.id desc
  limit list_runs.max_rows;
end
$$;

create function public.list_run_events(run_id uuid, after_seq bigint default 0,
                                       max_rows integer default 1000)
returns setof public.run_events
language sql stable set search_path = '' as $$
  select e.* from public.run_events e
  where e.run_id = list_run_events.run_id and e.seq > coalesce(list_run_events.after_seq, 0)
  order by e.seq
  limit least(greatest(coalesce(list_run_events.max_rows, 1000), 1), 5000)
$$;

create function public.list_run_steps(run_id uuid) returns setof public.run_steps
language sql stable set search_path = '' as $$
  select s.* from public.run_steps s where s.run_id = list_run_steps.run_id
  order by s.attempt, s.idx
$$;

create function public.list_artifacts(run_id uuid) returns setof public.artifacts
language sql stable set search_path = '' as $$
  select a.* from public.artifacts a where a.run_id = list_artifacts.run_id order by a.name
$$;

create function public.get_artifact(run_id uuid, name text) returns public.artifacts
language plpgsql stable set search_path = '' as $$
declare
  a public.artifacts;
begin
  select * into a from public.artifacts x where x.run_id = get_artifact.run_id and x.name = get_artifact.name;
  if not found then
    raise exception 'artifact % of run % not found', get_artifact.name, get_artifact.run_id
      using errcode = 'PO404';
  end if;
  return a;
end
$$;

create function public.list_templates() returns setof public.run_templates
language sql stable set search_path = '' as $$
  select t.* from public.run_templates t order by t.name
$$;

create function public.get_template(name text) returns public.run_templates
language plpgsql stable set search_path = '' as $$
declare
  t public.run_templates;
begin
  select * into t from public.run_templates x where x.name = get_template.name;
  if not found then
    raise exception 'template % not found', get_template.name using errcode = 'PO404';
  end if;
  return t;
end
$$;

create function public.list_lanes() returns setof public.lanes
language sql stable set search_path = '' as $$
  select l.* from public.lanes l order by l.id
$$;

create function public.list_sessions(max_rows integer default 100) returns setof public.sessions
language sql stable set search_path = '' as $$
  select s.* from public.sessions s order by s.created_at desc
  limit least(greatest(coalesce(list_sessions.max_rows, 100), 1), 1000)
$$;

create function public.list_workers() returns setof public.workers
language sql stable set search_path = '' as $$
  select w.* from public.workers w order by w.id
$$;

-- Catch-up after a reconnect: runs that changed at or after `since` (plus every unfinished run
-- touched since, found through the partial indexes), so a subscriber misses nothing.
create function public.runs_changed_since(since timestamptz, lanes text[] default null,
                                          max_rows integer default 1000)
returns setof public.runs
language sql stable set search_path = '' as $$
  select x.* from public.runs x
  where x.updated_at >= runs_changed_since.since
    and (runs_changed_since.lanes is null or x.lane = any(runs_changed_since.lanes))
    and (x.status in ('queued', 'running') or x.finished_at >= runs_changed_since.since)
  order by x.updated_at
  limit least(greatest(coalesce(runs_changed_since.max_rows, 1000), 1), 10000)
$$;

create function public.get_runs(run_ids uuid[]) returns setof public.runs
language sql stable set search_path = '' as $$
  select x.* from public.runs x where x.id = any(get_runs.run_ids) order by x.created_at, x.id
$$;

create view public.lane_stats with (security_invoker = true) as
select l.id as lane, l.paused, l.max_running, s.status,
       coalesce(c.runs, 0) as runs,
       c.oldest_age_seconds
from public.lanes l
cross join (values ('queued'), ('running')) as s(status)
left join lateral (
  select count(*) as runs,
         round(extract(epoch from now() - min(case when s.status = 'queued' then r.available_at
                                                   else r.claimed_at end))::numeric, 1)
           as oldest_age_seconds
  from public.runs r where r.lane = l.id and r.status = s.status
) c on true;

create view public.worker_health with (security_invoker = true) as
select w.id, w.host, w.pid, w.lanes, w.version, w.concurrency, w.status, w.started_at,
       w.last_seen_at,
       round(extract(epoch from now() - w.last_seen_at)::numeric, 1) as seen_seconds_ago,
       (w.status <> 'stopped' and w.last_seen_at < now() - interval '60 seconds') as stale,
       (select count(*) from public.runs r where r.status = 'running' and r.worker_id = w.id) as running
from public.workers w;

create view public.stuck_runs with (security_invoker = true) as
select r.id, r.template, r.lane, r.status, r.attempt, r.max_attempts, r.sweep_count, r.worker_id,
       r.lease_expires_at,
       round(extract(epoch from now() - coalesce(r.heartbeat_at, r.created_at))::numeric, 1)
         as since_heartbeat_seconds
from public.runs r
where (r.status in ('queued', 'running') and r.sweep_count > 0)
   or (r.status = 'running' and r.lease_expires_at < now());

create function public.get_lane_stats() returns setof public.lane_stats
language sql stable set search_path = '' as $$
  select s.* from public.lane_stats s order by s.lane, s.status
$$;

create function public.get_worker_health() returns setof public.worker_health
language sql stable set search_path = '' as $$
  select h.* from public.worker_health h order by h.id
$$;

create function public.list_stuck_runs(max_rows integer default 100) returns setof public.stuck_runs
language sql stable set search_path = '' as $$
  select s.* from public.stuck_runs s order by s.sweep_count desc, s.since_heartbeat_seconds desc
  limit least(greatest(coalesce(list_stuck_runs.max_rows, 100), 1), 1000)
$$;

-- ---------------------------------------------------------------------------
-- Row level security: operators see their own runs; admins and the service role see all
-- ---------------------------------------------------------------------------

alter table public.lanes enable row level security;
alter table public.sessions enable row level security;
alter table public.run_templates enable row level security;
alter table public.runs enable row level security;
alter table public.run_steps enable row level security;
alter table public.run_events enable row level security;
alter table public.artifacts enable row level security;
alter table public.spec_docs enable row level security;
alter table public.workers enable row level security;
alter table pulser_ops.run_event_counters enable row level security;

create policy "operators read lanes" on public.lanes for select to authenticated using (true);
create policy "operators read templates" on public.run_templates for select to authenticated using (true);
create policy "operators read workers" on public.workers for select to authenticated using (true);
create policy "operators read their sessions" on public.sessions for select to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()));
create policy "operators read their runs" on public.runs for select to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()));
create policy "operators read steps of their runs" on public.run_steps for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
create policy "operators read events of their runs" on public.run_events for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
create policy "operators read artifacts of their runs" on public.artifacts for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
create policy "operators manage their spec docs" on public.spec_docs for all to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()))
  with check (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()));
create policy "service role keeps event counters" on pulser_ops.run_event_counters for all
  to service_role using (true) with check (true);

-- ---------------------------------------------------------------------------
-- Grants: explicit, nothing by default (Supabase no longer auto-exposes new tables)
-- ---------------------------------------------------------------------------

revoke all on public.lanes, public.sessions, public.run_templates, public.runs, public.run_steps,
  public.run_events, public.artifacts, public.spec_docs, public.workers,
  public.lane_stats, public.worker_health, public.stuck_runs
  from public, anon, authenticated, service_role;
grant select on public.lanes, public.sessions, public.run_templates, public.runs, public.run_steps,
  public.run_events, public.artifacts, public.workers,
  public.lane_stats, public.worker_health, public.stuck_runs to authenticated;
grant select, insert, update, delete on public.spec_docs to authenticated;
grant select, insert, update, delete on public.lanes, public.sessions, public.run_templates,
  public.runs, public.run_steps, public.run_events, public.artifacts, public.spec_docs,
  public.workers to service_role;
grant select on public.lane_stats, public.worker_health, public.stuck_runs to service_role;

revoke all on pulser_ops.run_event_counters from public, anon, authenticated, service_role;
grant select, insert, update on pulser_ops.run_event_counters to service_role;
grant usage on schema pulser_ops to authenticated, service_role;

do $$
declare
  f regprocedure;
begin
  -- Functions are executable by PUBLIC by default, and Supabase's default privileges add
  -- anon/authenticated/service_role: take all of that away, then grant exactly.
  for f in select p.oid::regprocedure from pg_catalog.pg_proc p
           join pg_catalog.pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'pulser_ops'
              or (n.nspname = 'public' and p.proname in (
                'enqueue_run', 'enqueue_runs', 'claim_runs', 'heartbeat_run', 'heartbeat_runs',
                'cancel_run', 'complete_run', 'release_run', 'append_run_events', 'record_run_step',
                'put_artifact', 'sweep_expired_runs', 'upsert_template', 'set_lane',
                'create_session', 'register_worker', 'deregister_worker', 'prune_runs', 'get_run',
                'list_runs', 'list_run_events', 'list_run_steps', 'list_artifacts', 'get_artifact',
                'list_templates', 'get_template', 'list_lanes', 'list_sessions', 'list_workers',
                'runs_changed_since', 'get_runs', 'get_lane_stats', 'get_worker_health',
                'list_stuck_runs', 'delete_runs', 'control_plane_info'))
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', f);
    -- The service role (workers, sweeper) may call every one of them.
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

-- Operators (and admins): their own runs, through the checked implementations.
grant execute on function
  public.enqueue_run(text, jsonb, text, integer, timestamptz, text, uuid, integer),
  public.enqueue_runs(jsonb), public.cancel_run(uuid, text), public.append_run_events(jsonb),
  public.upsert_template(jsonb), public.set_lane(text, boolean, integer, boolean),
  public.create_session(text, jsonb), public.prune_runs(numeric, integer),
  public.get_run(uuid),
  public.list_runs(text[], text[], text, uuid, timestamptz, timestamptz, boolean, integer, uuid),
  public.list_run_events(uuid, bigint, integer), public.list_run_steps(uuid),
  public.list_artifacts(uuid), public.get_artifact(uuid, text), public.list_templates(),
  public.get_template(text), public.list_lanes(), public.list_sessions(integer),
  public.list_workers(), public.runs_changed_since(timestamptz, text[], integer),
  public.get_runs(uuid[]), public.get_lane_stats(), public.get_worker_health(),
  public.list_stuck_runs(integer), public.delete_runs(uuid[]), public.control_plane_info(),
  pulser_ops.delete_runs(uuid[]), pulser_ops.control_plane_info(),
  pulser_ops.enqueue_runs(jsonb), pulser_ops.cancel_run(uuid, text),
  pulser_ops.append_run_events(jsonb), pulser_ops.upsert_template(jsonb),
  pulser_ops.set_lane(text, boolean, integer, boolean), pulser_ops.create_session(text, jsonb),
  pulser_ops.prune_runs(numeric, integer), pulser_ops.caller_kind(), pulser_ops.is_admin()
  to authenticated, service_role;

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
