-- Template versions, and validation without writing (issue 15: the control room's template editor).
--
-- * run_templates.version and run_template_versions: every change of a template's definition is
--   a new version, recorded by triggers; enqueue_runs stamps each run with the version current at
--   that moment (runs.template_version). The worker executes that version's steps and timeout and
--   complete_runs applies its retry policy, so editing a template never changes an enqueued run.
-- * pulser_ops.template_problems: the one list of template checks, now shared by upsert_template
--   (raises the first) and validate_template (returns each, for live validation by field).
-- * validate_params: every params problem, field by field, through schema_violation (the check
--   enqueue_runs makes); params_with_defaults is shared with enqueue_runs.
-- * list_template_summaries (the Templates tab), get_template_version / list_template_versions,
--   delete_template (admins; refused while runs refer to the template).

alter table public.run_templates add column version integer not null default 1 check (version >= 1);

create table public.run_template_versions (
  template   text not null references public.run_templates (name)
               on update cascade on delete cascade,
  version    integer not null check (version >= 1),
  -- the template's settable fields (everything but name, version and timestamps)
  definition jsonb not null check (jsonb_typeof(definition) = 'object'),
  created_at timestamptz not null default now(),
  primary key (template, version)
);

alter table public.runs add column template_version integer;

create type public.field_problem as (field text, message text);

create or replace function pulser_ops.params_with_defaults(schema jsonb, params jsonb) returns jsonb
language plpgsql immutable set search_path = '' as $$
declare
  v jsonb := params_with_defaults.params;
  prop text;
  sub jsonb;
begin
  for prop, sub in select * from jsonb_each(coalesce(schema -> 'properties', '{}')) loop
    if sub ? 'default' and not v ? prop then
      v := v || jsonb_build_object(prop, sub -> 'default');
    end if;
  end loop;
  return v;
end
$$;

create or replace function public.validate_params(template text, params jsonb) returns setof public.field_problem
language plpgsql stable set search_path = '' as $$
declare
  s jsonb;
  v jsonb;
  req jsonb;
  cut jsonb;
  k text;
  msg text;
  seen text[] := '{}';
begin
  perform pulser_ops.check_caller();
  select t.params_schema into s from public.run_templates t where t.name = validate_params.template;
  if not found then
    raise exception 'unknown template %', validate_params.template using errcode = 'PO404';
  end if;
  if jsonb_typeof(validate_params.params) is distinct from 'object' then
    return next row('', 'expected an object')::public.field_problem;
    return;
  end if;
  v := pulser_ops.params_with_defaults(s, validate_params.params);
  req := case jsonb_typeof(s -> 'required') when 'array' then s -> 'required' else '[]' end;
  for k in
    select p from jsonb_object_keys(coalesce(s -> 'properties', '{}')) p
    union select r from jsonb_array_elements_text(req) r
    union select x from jsonb_object_keys(v) x
    order by 1
  loop
    cut := '{"type": "object"}';
    if s -> 'properties' ? k then
      cut := cut || jsonb_build_object('properties', jsonb_build_object(k, s -> 'properties' -> k));
    end if;
    if req ? k then
      cut := cut || jsonb_build_object('required', jsonb_build_array(k));
    end if;
    if s ? 'additionalProperties' then
      cut := cut || jsonb_build_object('additionalProperties', s -> 'additionalProperties');
    end if;
    msg := pulser_ops.schema_violation(cut,
      case when v ? k then jsonb_build_object(k, v -> k) else '{}' end, 'params');
    if msg is not null then
      seen := seen || msg;
      return next row(regexp_replace(split_part(msg, ': ', 1), '^params\.?', ''),
                      substr(msg, strpos(msg, ': ') + 2))::public.field_problem;
    end if;
  end loop;
  msg := pulser_ops.schema_violation(s, v, 'params');
  if msg is not null and not msg = any(seen) then
    return next row(regexp_replace(split_part(msg, ': ', 1), '^params\.?', ''),
                    substr(msg, strpos(msg, ': ') + 2))::public.field_problem;
  end if;
end
$$;

create or replace function pulser_ops.template_problems(template jsonb) returns setof public.field_problem
language plpgsql immutable set search_path = '' as $$
declare
  t jsonb := template_problems.template;
  k text;
  want text;
  lo numeric;
  hi numeric;
  problem text;
  step jsonb;
  i integer := 0;
begin
  if jsonb_typeof(t) is distinct from 'object' then
    return next row('', 'expected an object')::public.field_problem;
    return;
  end if;
  for k in select jsonb_object_keys(t) loop
    if k not in ('name', 'description', 'params_schema', 'steps', 'default_lane', 'max_attempts',
                 'retry_backoff_seconds', 'retry_backoff_max_seconds', 'retry_jitter',
                 'non_retryable_errors', 'lease_seconds', 'timeout_seconds') then
      return next row(k, 'unknown field')::public.field_problem;
    end if;
  end loop;
  if coalesce(t ->> 'name', '') !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
    return next row('name', format('must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (got %s)',
                                   coalesce(t ->> 'name', 'nothing')))::public.field_problem;
  end if;
  problem := pulser_ops.schema_problem(coalesce(t -> 'params_schema', '{"type": "object"}'),
                                       'params_schema');
  if problem is null and coalesce(t -> 'params_schema' ->> 'type', 'object') <> 'object' then
    problem := 'params_schema.type: the params of a run are always an object';
  end if;
  if problem is not null then
    return next row(split_part(problem, ': ', 1),
                    substr(problem, strpos(problem, ': ') + 2))::public.field_problem;
  end if;
  if t ? 'steps' then
    if jsonb_typeof(t -> 'steps') <> 'array' then
      return next row('steps', 'expected an array')::public.field_problem;
    else
      for step in select jsonb_array_elements(t -> 'steps') loop
        if jsonb_typeof(step) <> 'object'
           or coalesce(step ->> 'kind', '') not in ('shell', 'http', 'python', 'mcp', 'docker') then
          return next row(format('steps[%s].kind', i),
                          'must be shell, http, python, mcp or docker')::public.field_problem;
        end if;
        i := i + 1;
      end loop;
    end if;
  end if;
  if jsonb_typeof(t -> 'description') not in ('string', 'null') then
    return next row('description', 'expected a string')::public.field_problem;
  elsif char_length(t ->> 'description') > 2000 then
    return next row('description', 'at most 2000 characters')::public.field_problem;
  end if;
  if jsonb_typeof(t -> 'default_lane') <> 'null'
     and (jsonb_typeof(t -> 'default_lane') <> 'string' or t ->> 'default_lane' not in ('A', 'B', 'C', 'D')) then
    return next row('default_lane', 'must be one of A, B, C, D')::public.field_problem;
  end if;
  for k, want, lo, hi in values
    ('max_attempts', 'integer', 1, 100), ('retry_backoff_seconds', 'number', 0, null),
    ('retry_backoff_max_seconds', 'number', 0, null), ('retry_jitter', 'number', 0, 1),
    ('lease_seconds', 'integer', 5, 86400), ('timeout_seconds', 'integer', 1, null)
  loop
    if t ? k and t -> k <> 'null'::jsonb then
      if not pulser_ops.json_type_matches(t -> k, want) then
        return next row(k, format('expected %s %s, got %s', case want when 'integer' then 'an' else 'a' end,
                                  want, jsonb_typeof(t -> k)))::public.field_problem;
      elsif (t ->> k)::numeric < lo or (t ->> k)::numeric > hi then
        return next row(k, case when hi is null then format('must be at least %s', lo)
                                else format('must be between %s and %s', lo, hi) end)::public.field_problem;
      end if;
    end if;
  end loop;
  if pulser_ops.json_type_matches(coalesce(t -> 'retry_backoff_seconds', '5'), 'number')
     and pulser_ops.json_type_matches(coalesce(t -> 'retry_backoff_max_seconds', '600'), 'number')
     and coalesce(t ->> 'retry_backoff_max_seconds', '600')::numeric
         < coalesce(t ->> 'retry_backoff_seconds', '5')::numeric then
    return next row('retry_backoff_max_seconds',
                    format('must be at least retry_backoff_seconds (%s)',
                           coalesce(t ->> 'retry_backoff_seconds', '5')))::public.field_problem;
  end if;
  if t ? 'non_retryable_errors' and t -> 'non_retryable_errors' <> 'null'::jsonb
     and (jsonb_typeof(t -> 'non_retryable_errors') <> 'array' or exists (
          select 1 from jsonb_array_elements(t -> 'non_retryable_errors') e
          where jsonb_typeof(e) <> 'string')) then
    return next row('non_retryable_errors', 'expected an array of error class names')::public.field_problem;
  end if;
end
$$;

create or replace function pulser_ops.upsert_template(template jsonb) returns public.run_templates
language plpgsql volatile security definer set search_path = '' as $$
declare
  t public.run_templates;
  bad public.field_problem;
begin
  perform pulser_ops.require_admin('change templates');
  select * into bad from pulser_ops.template_problems(upsert_template.template) limit 1;
  if bad.field is not null then
    raise exception '%: %', case when bad.field = '' then 'template' else 'template.' || bad.field end,
      bad.message using errcode = 'PO400';
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

create or replace function pulser_ops.template_definition(t public.run_templates) returns jsonb
language sql immutable set search_path = '' as $$
  select to_jsonb(t) - array['name', 'version', 'created_at', 'updated_at']
$$;

create or replace function pulser_ops.template_versioning() returns trigger
language plpgsql set search_path = '' as $$
begin
  if tg_op = 'INSERT' then
    new.version := 1;
  elsif pulser_ops.template_definition(new) is distinct from pulser_ops.template_definition(old) then
    new.version := old.version + 1;
  else
    new.version := old.version;
  end if;
  return new;
end
$$;

create or replace function pulser_ops.record_template_version() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.run_template_versions (template, version, definition)
  values (new.name, new.version, pulser_ops.template_definition(new))
  on conflict (template, version) do nothing;
  return null;
end
$$;

create trigger run_templates_version before insert or update on public.run_templates
  for each row execute function pulser_ops.template_versioning();
create trigger run_templates_record_version after insert or update on public.run_templates
  for each row execute function pulser_ops.record_template_version();

-- Every template as it is now is its version 1; the runs that have not finished yet run it.
insert into public.run_template_versions (template, version, definition)
select t.name, t.version, pulser_ops.template_definition(t) from public.run_templates t;
update public.runs set template_version = 1 where status in ('queued', 'running');

create or replace function public.get_template_version(name text, version integer) returns public.run_templates
language plpgsql stable set search_path = '' as $$
declare
  v public.run_template_versions;
begin
  perform pulser_ops.check_caller();
  select * into v from public.run_template_versions x
   where x.template = get_template_version.name and x.version = get_template_version.version;
  if not found then
    raise exception 'template % has no version %', get_template_version.name,
      get_template_version.version using errcode = 'PO404';
  end if;
  return jsonb_populate_record(null::public.run_templates, v.definition || jsonb_build_object(
    'name', v.template, 'version', v.version, 'created_at', v.created_at, 'updated_at', v.created_at));
end
$$;

create or replace function public.list_template_versions(name text, max_rows integer default 100)
returns setof public.run_template_versions
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select v.* from public.run_template_versions v where v.template = list_template_versions.name
  order by v.version desc
  limit least(greatest(coalesce(list_template_versions.max_rows, 100), 1), 1000);
end
$$;

create or replace function public.list_template_summaries()
returns table (name text, description text, default_lane text, version integer, steps jsonb,
               max_attempts integer, lease_seconds integer, timeout_seconds integer,
               updated_at timestamptz, last_used_at timestamptz)
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select t.name, t.description, t.default_lane, t.version, t.steps, t.max_attempts,
         t.lease_seconds, t.timeout_seconds, t.updated_at,
         (select r.created_at from public.runs r where r.template = t.name
           order by r.created_at desc limit 1)
  from public.run_templates t
  order by t.name;
end
$$;

create or replace function public.validate_template(template jsonb) returns setof public.field_problem
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query select * from pulser_ops.template_problems(validate_template.template);
end
$$;

create or replace function pulser_ops.delete_template(name text) returns public.run_templates
language plpgsql volatile security definer set search_path = '' as $$
declare
  t public.run_templates;
begin
  perform pulser_ops.require_admin('delete templates');
  select * into t from public.run_templates x where x.name = delete_template.name for update;
  if not found then
    raise exception 'template % not found', delete_template.name using errcode = 'PO404';
  end if;
  if exists (select 1 from public.runs r where r.template = delete_template.name) then
    raise exception 'template % still has runs; prune or delete them first', delete_template.name
      using errcode = 'PO409';
  end if;
  delete from public.run_templates x where x.name = delete_template.name;
  return t;
end
$$;

create or replace function public.delete_template(name text) returns public.run_templates
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_template(delete_template.name)
$$;

create or replace function pulser_ops.enqueue_runs(runs jsonb) returns setof public.runs
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

    -- Defaults from the schema fill missing top-level params, so handlers see one shape.
    v_params := pulser_ops.params_with_defaults(t.params_schema,
                  coalesce(pulser_ops.field(item, 'params', 'object', path), '{}'::jsonb));
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

    -- Ownership: operators own what they enqueue and may only use their own sessions; another
    -- operator's session is answered like one that does not exist (no probing which ids do).
    v_owner := case when k = 'operator' then uid when k = 'admin' then uid end;
    if v_session is not null then
      select s.owner_id into v_owner from public.sessions s
       where s.id = v_session and (k <> 'operator' or s.owner_id = uid);
      if not found then
        raise exception '%.session_id: session % not found', path, v_session using errcode = 'PO404';
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
    r.template_version := t.version;
    rows := rows || r;
    out_ids := out_ids || r.id;
  end loop;

  -- One statement for the whole batch: one change notification, one wake-up. In the batch's
  -- order, so that seq (the claim's tiebreak within a created_at) keeps it.
  insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                           lease_seconds, params, session_id, owner_id, idempotency_key,
                           available_at, sweep_count, version, created_at, updated_at,
                           template_version)
  select q.id, q.template, q.lane, q.status, q.priority, q.attempt, q.max_attempts,
         q.lease_seconds, q.params, q.session_id, q.owner_id, q.idempotency_key,
         q.available_at, q.sweep_count, q.version, q.created_at, q.updated_at,
         q.template_version
  from unnest(rows) with ordinality as q
  order by q.ordinality
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

create or replace function pulser_ops.complete_runs(worker_id text, items jsonb)
returns setof public.complete_batch_result
language plpgsql volatile set search_path = '' set plan_cache_mode = force_generic_plan as $$
-- Runs are found by "id = any(ids)", never by joining the items: that keeps the one cached generic
-- plan on the primary key however many runs the table holds.
declare
  ids uuid[];
begin
  select array_agg(x.run_id) into ids from jsonb_to_recordset(complete_runs.items) as x(run_id uuid);
  -- Locked in id order, so two batches over the same runs cannot deadlock; in a statement of
  -- its own, so the next one sees every event committed before the locks were granted.
  perform 1 from public.runs r where r.id = any(ids) order by r.id for no key update;
  return query
  with items as (
    select x.run_id, x.attempt, x.status, x.result, x.error, x.error_class,
           coalesce(x.retryable, true) as retryable, x.steps, x.events
    from jsonb_to_recordset(complete_runs.items)
      as x(run_id uuid, attempt integer, status text, result jsonb, error text,
           error_class text, retryable boolean, steps jsonb, events jsonb)
  ),
  locked as materialized (
    select r.id, r.status, r.worker_id, r.attempt, r.max_attempts, r.cancel_requested_at, r.template,
           r.template_version
    from public.runs r
    where r.id = any(ids)
  ),
  judged as (
    select i.*, l.status as now_status, l.worker_id as now_worker, l.attempt as now_attempt,
           l.max_attempts,
           coalesce(l.status = 'running' and l.worker_id = complete_runs.worker_id
                    and l.attempt = i.attempt, false) as go,
           coalesce(l.status = i.status and l.worker_id = complete_runs.worker_id
                    and l.attempt = i.attempt, false) as repeated,
           coalesce(i.error_class = any(t.non_retryable_errors), false) as class_final,
           -- A failure retries unless attempts are used up, the error is not retryable, or
           -- someone asked to cancel the run (then the failure is final).
           coalesce(i.status = 'failed' and i.retryable and l.attempt < l.max_attempts
                    and l.cancel_requested_at is null
                    and not coalesce(i.error_class = any(t.non_retryable_errors), false),
                    false) as retry,
           t.retry_backoff_seconds, t.retry_backoff_max_seconds, t.retry_jitter
    from items i
    left join locked l on l.id = i.run_id
    -- The retry policy of the template version the run was enqueued with (the current
    -- template only for a run enqueued before versions existed).
    left join lateral (
      select p.* from public.run_template_versions v
      cross join lateral jsonb_populate_record(null::public.run_templates, v.definition) p
      where v.template = l.template and v.version = l.template_version
      union all
      select c.* from public.run_templates c where c.name = l.template and l.template_version is null
    ) t on true
  ),
  decided as (
    select z.*,
           -- Exponential backoff with a cap; jitter spreads retries of runs that failed together.
           case when z.retry
                then least(z.retry_backoff_max_seconds,
                           z.retry_backoff_seconds * power(2::numeric, z.now_attempt - 1))
                     * (1 - z.retry_jitter * random()::numeric) end as delay
    from judged z
  ),
  done as (
    update public.runs r
       set status = case when d.retry then 'queued' else d.status end,
           finished_at = case when d.retry then null else now() end,
           worker_id = case when d.retry then null else r.worker_id end,
           lease_expires_at = null,
           available_at = case when d.retry
                               then now() + make_interval(secs => d.delay::double precision)
                               else r.available_at end,
           result = case when d.retry then r.result else d.result end,
           error = d.error,
           error_class = d.error_class,
           version = r.version + 1,
           updated_at = now()
      from decided d
     where r.id = any(ids) and r.id = d.run_id and d.go
    returning r.id, r.status, r.attempt, r.max_attempts, r.available_at, d.retry, d.delay,
              d.error, d.error_class, d.retryable, d.class_final
  ),
  -- Step rows that come with the completion (the worker's last step, skipped ones): the same
  -- upsert as record_run_step, written only for runs this call completes.
  steps as (
    insert into public.run_steps as st (run_id, attempt, idx, name, kind, status, started_at,
                                        finished_at, exit_code, error, output)
    select x.id, x.attempt, s.idx, s.name, s.kind, s.status, coalesce(s.started_at, now()),
           case when s.status <> 'running' then now() end, s.exit_code, s.error, s.output
    from done x
    join items i on i.run_id = x.id
    cross join lateral jsonb_to_recordset(coalesce(i.steps, '[]'))
      as s(idx integer, name text, kind text, status text, exit_code integer, error text,
           output jsonb, started_at timestamptz)
    on conflict on constraint run_steps_pkey do update
      set status = excluded.status, finished_at = excluded.finished_at,
          exit_code = excluded.exit_code, error = excluded.error, output = excluded.output
  ),
  -- Each completed run's seqs: its carried events first, then the terminal event. The runs were
  -- locked in an earlier statement, so max(seq) is the last committed one (see "Event seqs").
  numbered as (
    select x.id, x.attempt, i.events,
           (select coalesce(max(e.seq), 0) from public.run_events e where e.run_id = x.id) as last,
           coalesce(jsonb_array_length(case when jsonb_typeof(i.events) = 'array'
                                            then i.events end), 0) as carried
    from done x
    join items i on i.run_id = x.id
  ),
  logged as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select n.id, n.last + v.o, v.e ->> 'kind', coalesce(v.e ->> 'level', 'info'),
           coalesce(v.e ->> 'message', ''), nullif(v.e -> 'data', 'null'), n.attempt,
           complete_runs.worker_id
    from numbered n
    cross join lateral jsonb_array_elements(n.events) with ordinality as v(e, o)
    where n.carried > 0
  ),
  events as (
    insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
    select x.id, (select n.last + n.carried + 1 from numbered n where n.id = x.id),
           case when x.retry then 'retry_scheduled' else x.status end,
           case when x.retry then 'warn' when x.status = 'succeeded' then 'info'
                when x.status = 'cancelled' then 'warn' else 'error' end,
           case when x.retry
                then format('attempt %s of %s failed; retry in %ss: %s', x.attempt, x.max_attempts,
                            round(x.delay, 1), coalesce(x.error, 'no error message'))
                when x.status = 'succeeded' then format('succeeded on attempt %s', x.attempt)
                when x.status = 'cancelled' then format('cancelled on attempt %s', x.attempt)
                else format('failed on attempt %s of %s%s: %s', x.attempt, x.max_attempts,
                            case when not x.retryable or x.class_final then ' (not retryable)'
                                 else '' end,
                            coalesce(x.error, 'no error message')) end,
           case when x.retry
                then jsonb_build_object('delay_seconds', round(x.delay, 3),
                                        'error_class', x.error_class,
                                        'available_at', x.available_at)
                else jsonb_build_object('error_class', x.error_class) end,
           x.attempt, complete_runs.worker_id
    from done x
  )
  select d.run_id, d.attempt, d.go or d.repeated or rs.retry_at is not null,
         coalesce(x.status, case when rs.retry_at is not null then 'queued' end, d.now_status),
         coalesce(case when x.retry then x.available_at end, rs.retry_at),
         case when d.now_status is null then format('run %s not found', d.run_id)
              when not (d.go or d.repeated or rs.retry_at is not null)
              then format('lease lost: it is %s (worker %s, attempt %s)', d.now_status,
                          coalesce(d.now_worker, '-'), d.now_attempt) end
  from decided d left join done x on x.id = d.run_id
  -- A failure that was scheduled for retry, sent again (its reply was lost): the run is queued
  -- again, or claimed again by now, so it is not "the same status" as the call asked for; the
  -- retry event this worker's attempt wrote is what says the call was recorded. Answered as
  -- the first call was. Looked for only when the completion is not otherwise recorded.
  left join lateral (
    select (e.data ->> 'available_at')::timestamptz as retry_at
    from public.run_events e
    where not (d.go or d.repeated) and d.status = 'failed' and d.now_status is not null
      and e.run_id = d.run_id and e.kind = 'retry_scheduled' and e.attempt = d.attempt
      and e.worker_id = complete_runs.worker_id
    order by e.seq desc
    limit 1
  ) rs on true;
end
$$;

alter table public.run_template_versions enable row level security;
create policy "operators read template versions" on public.run_template_versions for select
  to authenticated using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
revoke all on public.run_template_versions from public, anon, authenticated, service_role;
grant select on public.run_template_versions to authenticated;
grant select, insert, update, delete on public.run_template_versions to service_role;

do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_catalog.pg_proc p
           join pg_catalog.pg_namespace n on n.oid = p.pronamespace
           where (n.nspname = 'pulser_ops' and p.proname in (
                   'params_with_defaults', 'template_problems', 'template_definition',
                   'template_versioning', 'record_template_version', 'delete_template'))
              or (n.nspname = 'public' and p.proname in (
                   'validate_template', 'validate_params', 'list_template_summaries',
                   'get_template_version', 'list_template_versions', 'delete_template'))
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

grant execute on function
  public.validate_template(jsonb), public.validate_params(text, jsonb),
  public.list_template_summaries(), public.get_template_version(text, integer),
  public.list_template_versions(text, integer), public.delete_template(text),
  pulser_ops.delete_template(text), pulser_ops.template_problems(jsonb),
  pulser_ops.schema_problem(jsonb, text), pulser_ops.schema_violation(jsonb, jsonb, text),
  pulser_ops.json_type_matches(jsonb, text), pulser_ops.params_with_defaults(jsonb, jsonb)
  to authenticated, service_role;
