-- pulser-ops: what runs are made of and where they run: templates (and the JSON Schema subset
-- their params may use), lanes, sessions, workers; and retention (pruning finished runs) and the
-- self-check `pulser-ops doctor` reads.

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
-- Templates
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

-- Several templates in one transaction: all of them, or (with the first error, named by its
-- position) none, so `pulser-ops templates apply` of a file never leaves half of it applied.

create function public.upsert_templates(templates jsonb) returns setof public.run_templates
language plpgsql volatile set search_path = '' as $$
declare
  item jsonb;
  n bigint;
  msg text;
  code text;
  hint text;
begin
  if jsonb_typeof(upsert_templates.templates) is distinct from 'array'
     or jsonb_array_length(upsert_templates.templates) = 0 then
    raise exception 'templates: expected a non-empty array of template objects' using errcode = 'PO400';
  end if;
  if jsonb_array_length(upsert_templates.templates) > 200 then
    raise exception 'templates: at most 200 per call (got %)', jsonb_array_length(upsert_templates.templates)
      using errcode = 'PO400';
  end if;
  if (select count(distinct e ->> 'name') <> count(*)
      from jsonb_array_elements(upsert_templates.templates) e) then
    raise exception 'templates: a name appears more than once' using errcode = 'PO400';
  end if;
  for item, n in
    select e, i from jsonb_array_elements(upsert_templates.templates) with ordinality as a(e, i)
  loop
    begin
      return next pulser_ops.upsert_template(item);
    exception when others then
      get stacked diagnostics msg = message_text, code = returned_sqlstate, hint = pg_exception_hint;
      raise exception 'templates[%] (%): %', n - 1, coalesce(item ->> 'name', 'no name'), msg
        using errcode = code, hint = coalesce(hint, '');
    end;
  end loop;
end
$$;
comment on function public.upsert_templates(jsonb) is
  'Create or update several templates in one transaction: all of them, or none.';

-- ---------------------------------------------------------------------------
-- Lanes, sessions, workers
-- ---------------------------------------------------------------------------

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

-- ---------------------------------------------------------------------------
-- Retention
-- ---------------------------------------------------------------------------

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

-- ---------------------------------------------------------------------------
-- Self-check
-- ---------------------------------------------------------------------------

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
                               'run_steps', 'run_events', 'artifacts', 'spec_docs', 'workers',
                               'alerts')),
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
