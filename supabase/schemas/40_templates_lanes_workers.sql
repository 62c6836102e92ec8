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

-- The rules of a schema (see pulser_ops.template_params) at path, as a JSON array of
-- {"path", "kind", ...}; null when the schema uses what the rules cannot state (then its runs
-- are checked by schema_violation, whose reading of the schema the rules follow exactly).
create function pulser_ops.schema_rules(schema jsonb, path text[]) returns jsonb
language plpgsql immutable set search_path = '' as $$
declare
  rules jsonb := '[]';
  key text;
  sub jsonb;
  inner_rules jsonb;
begin
  if jsonb_typeof(schema) <> 'object' then
    return null;
  end if;
  if schema ? 'type' then
    rules := rules || jsonb_build_object('path', path, 'kind', 'type', 'types',
      case jsonb_typeof(schema -> 'type') when 'array' then schema -> 'type'
           else jsonb_build_array(schema -> 'type') end);
  end if;
  if schema ? 'enum' then
    rules := rules || jsonb_build_object('path', path, 'kind', 'enum', 'val', schema -> 'enum');
  end if;
  if schema ? 'const' then
    rules := rules || jsonb_build_object('path', path, 'kind', 'const', 'val', schema -> 'const');
  end if;
  foreach key in array array['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
                             'minLength', 'maxLength', 'minItems', 'maxItems'] loop
    if schema ? key then
      -- The walker casts these (lengths to integer); anything but a plain number is its to read.
      if jsonb_typeof(schema -> key) <> 'number'
         or (key like 'm__Length' or key like 'm__Items')
            and ((schema ->> key)::numeric % 1 <> 0 or abs((schema ->> key)::numeric) > 2147483647) then
        return null;
      end if;
      rules := rules || jsonb_build_object('path', path, 'kind', key, 'num', schema -> key);
    end if;
  end loop;
  if schema ? 'pattern' then
    if jsonb_typeof(schema -> 'pattern') <> 'string' then
      return null;
    end if;
    rules := rules || jsonb_build_object('path', path, 'kind', 'pattern', 'txt', schema -> 'pattern');
  end if;
  if jsonb_typeof(schema -> 'items') = 'object' or jsonb_typeof(schema -> 'additionalProperties') = 'object' then
    return null;
  end if;
  if jsonb_typeof(schema -> 'required') = 'array' then
    for key in select jsonb_array_elements_text(schema -> 'required') loop
      rules := rules || jsonb_build_object('path', path, 'kind', 'required', 'txt', key);
    end loop;
  end if;
  if schema -> 'additionalProperties' = 'false'::jsonb then
    rules := rules || jsonb_build_object('path', path, 'kind', 'closed', 'names',
      coalesce((select jsonb_agg(p.key) from jsonb_object_keys(
                  case when jsonb_typeof(schema -> 'properties') = 'object'
                       then schema -> 'properties' else '{}' end) as p(key)), '[]'));
  end if;
  if jsonb_typeof(schema -> 'properties') = 'object' then
    for key, sub in select * from jsonb_each(schema -> 'properties') loop
      -- A name that reads as an array index would let a path step into an array.
      if key ~ '^-?[0-9]+$' then
        return null;
      end if;
      inner_rules := pulser_ops.schema_rules(sub, path || key);
      if inner_rules is null then
        return null;
      end if;
      rules := rules || inner_rules;
    end loop;
  end if;
  return rules;
end
$$;

-- Compile a template's params schema (its defaults and rules) when it is written.
create function pulser_ops.run_templates_compile() returns trigger
language plpgsql volatile security definer set search_path = '' as $$
declare
  rules jsonb := pulser_ops.schema_rules(new.params_schema, '{}');
begin
  insert into pulser_ops.template_params (template, defaults, walk)
  values (new.name,
          -- the defaults alone: what params_with_defaults adds to empty params
          pulser_ops.params_with_defaults(new.params_schema, '{}'),
          rules is null)
  on conflict (template) do update set defaults = excluded.defaults, walk = excluded.walk;
  delete from pulser_ops.template_params_rules r where r.template = new.name;
  insert into pulser_ops.template_params_rules (template, idx, path, kind, types, num, txt, val, names)
  select new.name, x.n - 1,
         array(select jsonb_array_elements_text(x.r -> 'path')), x.r ->> 'kind',
         case when x.r ? 'types' then array(select jsonb_array_elements_text(x.r -> 'types')) end,
         (x.r ->> 'num')::numeric, x.r ->> 'txt', x.r -> 'val',
         case when x.r ? 'names' then array(select jsonb_array_elements_text(x.r -> 'names')) end
  from jsonb_array_elements(coalesce(rules, '[]')) with ordinality as x(r, n);
  return null;
end
$$;

create trigger run_templates_compile after insert or update of params_schema on public.run_templates
  for each row execute function pulser_ops.run_templates_compile();

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

-- One problem of a template or of a run's params, named by its field (validate_template,
-- validate_params), so a form can show it next to that field.
create type public.field_problem as (field text, message text);

-- The params a run gets: the caller's, with the schema's top-level defaults filled in (so
-- handlers see one shape). Shared by enqueue_runs and validate_params.
create function pulser_ops.params_with_defaults(schema jsonb, params jsonb) returns jsonb
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

-- Every problem of params for a template, field by field, without enqueueing: the run form's
-- live validation. Each field is checked by schema_violation (the check enqueue_runs makes) on
-- the schema cut down to that one property; then the whole schema once more, so anything
-- enqueue would refuse is reported here too. field: the param's path without 'params.' ('' for
-- the params object itself).
create function public.validate_params(template text, params jsonb) returns setof public.field_problem
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

-- ---------------------------------------------------------------------------
-- Templates
-- ---------------------------------------------------------------------------

-- A template's problems, each as (field, message), in the order upsert_template reports them:
-- the one list of template checks, shared by upsert_template (which raises the first) and
-- validate_template (the control room's live validation, which shows each next to its field).
-- The table's CHECK constraints stay as the last line of defence.

create function pulser_ops.template_problems(template jsonb) returns setof public.field_problem
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

create function pulser_ops.upsert_template(template jsonb) returns public.run_templates
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
  -- Who first (as upsert_template would), so that a caller who may not is told that, whatever
  -- the input. (This function runs with the caller's rights: is_admin, not require_admin.)
  if not pulser_ops.is_admin() then
    raise exception 'permission denied: only an admin or the service role may change templates'
      using errcode = '42501', hint = 'Admins carry app_metadata.ops_role = ''admin'' in their JWT.';
  end if;
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
-- Template versions: what a run keeps from its template
-- ---------------------------------------------------------------------------
-- Each change of a template's definition (every settable field: steps, params schema, default
-- lane, retry policy, lease, timeout, description) makes a new version, recorded in
-- run_template_versions by the two triggers below, so every path that changes a template
-- (upsert_template, the seed, an edit in Studio) is versioned. enqueue_runs stamps each run with
-- the version current at that moment (runs.template_version) and copies max_attempts and
-- lease_seconds into the run; the worker executes that version's steps and timeout, and
-- complete_runs applies that version's retry policy. Editing a template therefore never changes
-- a run that is already enqueued; the runs enqueued after the edit get the new version.

create function pulser_ops.template_definition(t public.run_templates) returns jsonb
language sql immutable set search_path = '' as $$
  select to_jsonb(t) - array['name', 'version', 'created_at', 'updated_at']
$$;

create function pulser_ops.template_versioning() returns trigger
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

-- Security definer: whoever may change a template records its version (operators never can).
create function pulser_ops.record_template_version() returns trigger
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

-- One version of a template, shaped like the template (what the worker executes for a run).
create function public.get_template_version(name text, version integer) returns public.run_templates
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

create function public.list_template_versions(name text, max_rows integer default 100)
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

-- The Templates tab's list: each template with its step kinds and when a run of it was last
-- enqueued (among the runs the caller can see: security invoker, so RLS applies).
create function public.list_template_summaries()
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

-- Live validation (the control room's template editor): every problem upsert_template would
-- refuse, without writing anything.
create function public.validate_template(template jsonb) returns setof public.field_problem
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query select * from pulser_ops.template_problems(validate_template.template);
end
$$;

-- Delete a template: admins only, and only while no run refers to it (a run keeps its
-- template's name; prune its runs first). Its versions go with it.
create function pulser_ops.delete_template(name text) returns public.run_templates
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
  if exists (select 1 from public.run_schedules s where s.template = delete_template.name) then
    raise exception 'template % has schedules (%); delete them first', delete_template.name,
      (select string_agg(s.name, ', ' order by s.name) from public.run_schedules s
        where s.template = delete_template.name)
      using errcode = 'PO409';
  end if;
  delete from public.run_templates x where x.name = delete_template.name;
  return t;
end
$$;

create function public.delete_template(name text) returns public.run_templates
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_template(delete_template.name)
$$;

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

-- Append messages to a session's conversation, in order, in one transaction (a command and the
-- room's answer to it). Operators may write only to their own sessions; a message may name a
-- run the caller may see. author: the caller's email (or id) as the JWT says.
create function pulser_ops.add_session_messages(session_id uuid, messages jsonb)
returns setof public.session_messages
language plpgsql volatile security definer set search_path = '' as $$
declare
  k text := pulser_ops.caller_kind();
  uid uuid := auth.uid();
  who text := coalesce(auth.jwt() ->> 'email', auth.jwt() ->> 'sub', pulser_ops.caller_kind());
  m jsonb;
  n bigint;
  path text;
  v_run uuid;
  out_ids bigint[] := '{}';
  new_id bigint;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not write to sessions', k using errcode = '42501';
  end if;
  -- another operator's session is not found, like one that does not exist (no id probing)
  perform 1 from public.sessions s where s.id = add_session_messages.session_id
    and (k <> 'operator' or s.owner_id = uid)
    for key share;
  if not found then
    raise exception 'session % not found', add_session_messages.session_id using errcode = 'PO404';
  end if;
  if jsonb_typeof(add_session_messages.messages) is distinct from 'array'
     or jsonb_array_length(add_session_messages.messages) not between 1 and 20 then
    raise exception 'messages: expected an array of 1 to 20 message objects' using errcode = 'PO400';
  end if;
  for m, n in select e, o from jsonb_array_elements(add_session_messages.messages) with ordinality as x(e, o) loop
    path := format('messages[%s]', n - 1);
    if jsonb_typeof(m) <> 'object' then
      raise exception '%: expected an object', path using errcode = 'PO400';
    end if;
    if exists (select 1 from jsonb_object_keys(m) f where f not in ('kind', 'body', 'run_id', 'data')) then
      raise exception '%: unknown field (known: kind, body, run_id, data)', path using errcode = 'PO400';
    end if;
    if coalesce(m ->> 'kind', '') not in ('command', 'reply', 'error', 'note') then
      raise exception '%.kind: must be command, reply, error or note', path using errcode = 'PO400';
    end if;
    if jsonb_typeof(m -> 'body') is distinct from 'string' or octet_length(m ->> 'body') > 16384 then
      raise exception '%.body: expected a string of at most 16384 bytes', path using errcode = 'PO400';
    end if;
    if jsonb_typeof(coalesce(m -> 'data', 'null')) not in ('object', 'null') then
      raise exception '%.data: expected an object', path using errcode = 'PO400';
    end if;
    v_run := null;
    if coalesce(m -> 'run_id', 'null') <> 'null'::jsonb then
      begin
        v_run := (m ->> 'run_id')::uuid;
      exception when invalid_text_representation then
        raise exception '%.run_id: not a uuid', path using errcode = 'PO400';
      end;
      -- the run must exist and be the caller's to see (an operator's own)
      perform 1 from public.runs r where r.id = v_run
        and (k in ('service', 'admin') or r.owner_id = uid);
      if not found then
        raise exception '%.run_id: run % not found', path, v_run using errcode = 'PO404';
      end if;
    end if;
    insert into public.session_messages as x (session_id, author_id, author, kind, body, run_id, data)
    values (add_session_messages.session_id, uid, left(who, 200), m ->> 'kind', m ->> 'body', v_run,
            nullif(m -> 'data', 'null'::jsonb))
    returning x.id into new_id;
    out_ids := out_ids || new_id;
  end loop;
  return query select x.* from public.session_messages x where x.id = any(out_ids) order by x.id;
end
$$;

create function public.add_session_messages(session_id uuid, messages jsonb)
returns setof public.session_messages
language sql volatile set search_path = '' as $$
  select * from pulser_ops.add_session_messages(add_session_messages.session_id,
                                                add_session_messages.messages)
$$;

-- A session's conversation: its newest max_rows messages (before before_id, to page back),
-- oldest first. Security invoker: RLS shows an operator only their own sessions' messages.
create function public.list_session_messages(session_id uuid, before_id bigint default null,
                                             max_rows integer default 200)
returns setof public.session_messages
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query
  select m.* from (
    select x.* from public.session_messages x
    where x.session_id = list_session_messages.session_id
      and (list_session_messages.before_id is null or x.id < list_session_messages.before_id)
    order by x.id desc
    limit least(greatest(coalesce(list_session_messages.max_rows, 200), 1), 1000)
  ) m order by m.id;
end
$$;

-- The Chat tab's list: the caller's sessions (an admin's: everyone's), most recently active
-- first, with how many messages and runs each has and how many runs are still going.
create function public.list_session_summaries(max_rows integer default 100)
returns table (id uuid, owner_id uuid, title text, metadata jsonb, created_at timestamptz,
               messages bigint, runs bigint, active_runs bigint, last_activity_at timestamptz)
language plpgsql stable set search_path = '' as $$
#variable_conflict use_column
begin
  perform pulser_ops.check_caller();
  return query
  select s.id, s.owner_id, s.title, s.metadata, s.created_at, m.messages, r.runs, r.active,
         greatest(s.created_at, m.last_at, r.last_at)
  from (select x.* from public.sessions x order by x.created_at desc limit 1000) s
  cross join lateral (select count(*) as messages, max(x.at) as last_at
                      from public.session_messages x where x.session_id = s.id) m
  cross join lateral (select count(*) as runs,
                             count(*) filter (where x.status in ('queued', 'running')) as active,
                             max(greatest(x.created_at, x.finished_at)) as last_at
                      from public.runs x where x.session_id = s.id) r
  order by 9 desc, s.id
  limit least(greatest(coalesce(list_session_summaries.max_rows, 100), 1), 1000);
end
$$;

-- The runs of a session as live cards: each run with its last event and its artifacts, oldest
-- first (the newest max_rows of them).
create function public.list_session_runs(session_id uuid, max_rows integer default 100)
returns table (run public.runs, last_event jsonb, artifacts jsonb)
language plpgsql stable set search_path = '' as $$
#variable_conflict use_column
begin
  perform pulser_ops.check_caller();
  return query
  select r,
         (select jsonb_build_object('seq', e.seq, 'at', e.at, 'level', e.level, 'kind', e.kind,
                                    'message', left(e.message, 500))
            from public.run_events e where e.run_id = r.id order by e.seq desc limit 1),
         (select coalesce(jsonb_agg(jsonb_build_object('name', a.name, 'attempt', a.attempt,
                                                       'kind', a.kind, 'content_type', a.content_type,
                                                       'size_bytes', a.size_bytes)
                                    order by a.name, coalesce(a.attempt, 0)), '[]')
            from public.artifacts a where a.run_id = r.id)
  from public.runs r
  where r.id in (select x.id from public.runs x where x.session_id = list_session_runs.session_id
                 order by x.created_at desc
                 limit least(greatest(coalesce(list_session_runs.max_rows, 100), 1), 1000))
  order by r.created_at, r.id;
end
$$;

-- Deleting a session: its runs stay (they are the record of what ran), detached from it
-- (session_id cleared: the run guard lets a finished run lose its session and nothing else),
-- and its spec docs go with it. Refused while any of its runs is queued or running, so that
-- work in flight never loses its session: cancel those runs, or let them finish, first.
-- Operators delete their own sessions (another's is not found); admins and the service role any.
create type public.session_deleted as (session_id uuid, runs_detached integer, spec_docs_deleted integer);

create function pulser_ops.delete_session(session_id uuid) returns public.session_deleted
language plpgsql volatile security definer set search_path = '' as $$
declare
  k text := pulser_ops.caller_kind();
  s public.sessions;
  unfinished bigint;
  res public.session_deleted;
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not delete sessions', k using errcode = '42501';
  end if;
  -- Locked first: an enqueue into the session waits (its foreign key check) and then fails.
  select * into s from public.sessions x
   where x.id = delete_session.session_id and (k <> 'operator' or x.owner_id = auth.uid())
   for update;
  if not found then
    raise exception 'session % not found', delete_session.session_id using errcode = 'PO404';
  end if;
  select count(*) into unfinished from public.runs r
   where r.session_id = s.id and r.status in ('queued', 'running');
  if unfinished > 0 then
    raise exception 'session % has % unfinished run(s); cancel them or let them finish first',
      s.id, unfinished
      using errcode = 'PO409', detail = jsonb_build_object('unfinished_runs', unfinished)::text;
  end if;
  res.session_id := s.id;
  select count(*) into res.runs_detached from public.runs r where r.session_id = s.id;
  select count(*) into res.spec_docs_deleted from public.spec_docs d where d.session_id = s.id;
  -- The foreign keys do the rest: runs.session_id set null, spec_docs deleted.
  delete from public.sessions x where x.id = s.id;
  return res;
end
$$;

create function public.delete_session(session_id uuid) returns public.session_deleted
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_session(delete_session.session_id)
$$;
comment on function public.delete_session(uuid) is
  'Delete a session with no unfinished runs: its runs stay, detached; its spec docs go.';

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
                               'run_template_versions', 'session_messages', 'alerts')),
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
