-- pulser-ops: enqueue, set-based, with params schemas compiled once per template version
-- (issue 18, item 2).
--
-- enqueue_runs read a batch in a plpgsql loop: per run, ten typed field reads (plpgsql calls),
-- its params schema walked by a recursive plpgsql function, the batch built by appending to an
-- array. It now reads the whole batch in one statement and inserts it in one more. A template's
-- params schema is compiled when the template is written (trigger run_templates_compile): its
-- top-level defaults and flat rules, which the batch is checked against set-based
-- (pulser_ops.params_break_rules); schema_violation, unchanged, still words the error of the
-- one run that is refused, and checks the runs of a schema the rules cannot state. The checks,
-- their order and their messages are those of the loop; two differences, both for input the
-- SDK cannot send: a priority or max_attempts too large for an integer is refused with the
-- range message (it was "integer out of range"), and an item without a template is "unknown
-- template (missing)" (it failed on a not-null constraint).

-- Each template's params schema, compiled once per version: when the template is written (the
-- run_templates_compile trigger, 40_templates_lanes_workers.sql). enqueue_runs fills a run's params
-- with the top-level defaults and checks them against the rules, flat rows it evaluates for a
-- whole batch in one statement, instead of walking the schema for every run. A schema the rules
-- cannot state (items or additionalProperties given as a schema, a keyword with an odd value) is
-- marked walk: its runs are checked by pulser_ops.schema_violation, as they were before.
create table pulser_ops.template_params (
  template text primary key references public.run_templates (name) on update cascade on delete cascade,
  defaults jsonb not null default '{}',
  walk     boolean not null default false
);
-- One rule: where it applies (a path of property names from params; a rule applies when the
-- value is there), what it checks (kind: type enum const minimum maximum exclusiveMinimum
-- exclusiveMaximum minLength maxLength pattern minItems maxItems required closed) and against what.
create table pulser_ops.template_params_rules (
  template text not null
           references pulser_ops.template_params (template) on update cascade on delete cascade,
  idx      integer not null,
  path     text[] not null,
  kind     text not null,
  types    text[],
  num      numeric,
  txt      text,
  val      jsonb,
  names    text[],
  primary key (template, idx)
);

-- One item of a batch as enqueue_runs reads it: what to insert, or why it is refused.
create type pulser_ops.enqueue_item as (
  n integer, id uuid, template text, lane text, priority integer, max_attempts integer,
  lease_seconds integer, params jsonb, session_id uuid, owner_id uuid, idempotency_key text,
  available_at timestamptz,
  -- The run this item is answered with instead: an earlier one with its idempotency key.
  reuse uuid,
  -- Its first problem, numbered in the order enqueue_runs checks (pulser_ops.enqueue_refuse
  -- words it): reading the batch compiles no message.
  refused smallint
);

create function pulser_ops.try_timestamptz(value text) returns timestamptz
language plpgsql stable set search_path = '' as $$
begin
  return value::timestamptz;
exception when datetime_field_overflow or invalid_datetime_format then
  return null;
end
$$;

create function pulser_ops.try_uuid(value text) returns uuid
language plpgsql immutable set search_path = '' as $$
begin
  return value::uuid;
exception when invalid_text_representation then
  return null;
end
$$;

create function pulser_ops.params_break_rules(template text, params jsonb) returns boolean
language plpgsql stable set search_path = '' as $$
begin
  return exists (
    select 1 from pulser_ops.template_params_rules r
    cross join lateral (select params_break_rules.params #> r.path as v) x
    where r.template = params_break_rules.template and x.v is not null and case r.kind
      when 'type' then not (jsonb_typeof(x.v) = any(r.types)
                            or ('integer' = any(r.types) and jsonb_typeof(x.v) = 'number'
                                and (x.v #>> '{}')::numeric % 1 = 0))
      when 'enum' then not r.val @> jsonb_build_array(x.v)
      when 'const' then r.val <> x.v
      when 'minimum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric < r.num
      when 'maximum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric > r.num
      when 'exclusiveMinimum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric <= r.num
      when 'exclusiveMaximum' then jsonb_typeof(x.v) = 'number' and (x.v #>> '{}')::numeric >= r.num
      when 'minLength' then jsonb_typeof(x.v) = 'string' and char_length(x.v #>> '{}') < r.num
      when 'maxLength' then jsonb_typeof(x.v) = 'string' and char_length(x.v #>> '{}') > r.num
      when 'pattern' then jsonb_typeof(x.v) = 'string' and (x.v #>> '{}') !~ r.txt
      when 'minItems' then jsonb_typeof(x.v) = 'array' and jsonb_array_length(x.v) < r.num
      when 'maxItems' then jsonb_typeof(x.v) = 'array' and jsonb_array_length(x.v) > r.num
      when 'required' then jsonb_typeof(x.v) = 'object' and not x.v ? r.txt
      when 'closed' then jsonb_typeof(x.v) = 'object'
                         and exists (select 1 from jsonb_object_keys(x.v) as o(key)
                                     where o.key <> all(r.names))
      else true end
  );
end
$$;

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

create function pulser_ops.run_templates_compile() returns trigger
language plpgsql volatile security definer set search_path = '' as $$
declare
  rules jsonb := pulser_ops.schema_rules(new.params_schema, '{}');
begin
  insert into pulser_ops.template_params (template, defaults, walk)
  values (new.name,
          coalesce((select jsonb_object_agg(p.key, p.value -> 'default')
                    from jsonb_each(case when jsonb_typeof(new.params_schema -> 'properties') = 'object'
                                         then new.params_schema -> 'properties' else '{}' end) as p
                    where p.value ? 'default'), '{}'),
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

create function pulser_ops.enqueue_refuse(item jsonb, bad pulser_ops.enqueue_item)
returns void
language plpgsql stable set search_path = '' as $$
declare
  path text := format('runs[%s]', bad.n - 1);
  field text;
  want text;
  msg text;
begin
  field := case bad.refused when 3 then 'template' when 5 then 'params' when 7 then 'lane'
                            when 9 then 'priority' when 11 then 'max_attempts' when 13 then 'run_after'
                            when 15 then 'idempotency_key' when 17 then 'session_id' end;
  want := case bad.refused when 5 then 'object' when 9 then 'integer' when 11 then 'integer'
                           else 'string' end;
  if field is not null then
    raise exception '%.%: expected %, got %', path, field, want, jsonb_typeof(item -> field)
      using errcode = 'PO400';
  end if;
  case bad.refused
  when 1 then
    raise exception '%: expected an object', path using errcode = 'PO400';
  when 2 then
    raise exception '%.%: unknown field', path,
      (select f.key from jsonb_object_keys(item) with ordinality as f(key, m)
        where f.key not in ('template', 'params', 'lane', 'priority', 'run_after',
                            'idempotency_key', 'session_id', 'max_attempts')
        order by f.m limit 1)
      using errcode = 'PO400';
  when 4 then
    raise exception 'unknown template %', coalesce(item ->> 'template', '(missing)')
      using errcode = 'PO404', detail = path || '.template';
  when 6 then
    msg := pulser_ops.schema_violation(
      (select t.params_schema from public.run_templates t where t.name = bad.template),
      bad.params, 'params');
    raise exception 'invalid params for template %: %', bad.template, msg
      using errcode = 'PO422', detail = split_part(msg, ':', 1);
  when 8 then
    raise exception '%.lane: must be one of A, B, C, D (got %)', path, item ->> 'lane'
      using errcode = 'PO400';
  when 10 then
    raise exception '%.priority: must be between -100 and 100 (got %)', path,
      trunc((item ->> 'priority')::numeric) using errcode = 'PO400';
  when 12 then
    raise exception '%.max_attempts: must be between 1 and 100 (got %)', path,
      trunc((item ->> 'max_attempts')::numeric) using errcode = 'PO400';
  when 14 then
    raise exception '%.run_after: not a timestamp (%)', path, item ->> 'run_after'
      using errcode = 'PO400';
  when 16 then
    raise exception '%.idempotency_key: must be 1 to 200 characters', path using errcode = 'PO400';
  when 18 then
    raise exception '%.session_id: not a uuid (%)', path, item ->> 'session_id'
      using errcode = 'PO400';
  when 19 then
    raise exception '%.session_id: session % not found', path, (item ->> 'session_id')::uuid
      using errcode = 'PO404';
  when 20 then
    raise exception 'idempotency key % was already used for a different run (%)',
      bad.idempotency_key, bad.reuse using errcode = 'PO409', detail = bad.reuse::text;
  end case;
end
$$;

create trigger run_templates_compile after insert or update of params_schema on public.run_templates
  for each row execute function pulser_ops.run_templates_compile();

create or replace function pulser_ops.enqueue_runs(runs jsonb) returns setof public.runs
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan as $$
-- One plan for any batch: planning the statement that reads a batch costs more than reading a
-- small one, and its plan does not depend on the batch (every lookup is by key).
declare
  k text := pulser_ops.caller_kind();
  uid uuid := auth.uid();
  items pulser_ops.enqueue_item[];
  bad pulser_ops.enqueue_item;
  keyed boolean;
  out_ids uuid[];
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

  with fields as (
    -- Each field, absent when missing or JSON null.
    select a.n::integer as n, a.e, jsonb_typeof(a.e) = 'object' as is_object,
           nullif(a.e -> 'template', 'null') as j_template,
           nullif(a.e -> 'params', 'null') as j_params,
           nullif(a.e -> 'lane', 'null') as j_lane,
           nullif(a.e -> 'priority', 'null') as j_priority,
           nullif(a.e -> 'max_attempts', 'null') as j_max,
           nullif(a.e -> 'run_after', 'null') as j_after,
           nullif(a.e -> 'idempotency_key', 'null') as j_key,
           nullif(a.e -> 'session_id', 'null') as j_session
    from jsonb_array_elements(enqueue_runs.runs) with ordinality as a(e, n)
  ),
  typed as (
    -- Each field's value when it has its type (integers: whole JSON numbers).
    select f.*,
           case when jsonb_typeof(f.j_template) = 'string' then f.j_template #>> '{}' end as v_template,
           case when jsonb_typeof(f.j_lane) = 'string' then f.j_lane #>> '{}' end as v_lane_given,
           case when jsonb_typeof(f.j_priority) = 'number' then (f.j_priority #>> '{}')::numeric end
             as v_priority_given,
           case when jsonb_typeof(f.j_max) = 'number' then (f.j_max #>> '{}')::numeric end as v_max_given,
           case when jsonb_typeof(f.j_after) = 'string'
                then pulser_ops.try_timestamptz(f.j_after #>> '{}') end as v_after,
           case when jsonb_typeof(f.j_key) = 'string' then f.j_key #>> '{}' end as v_key,
           case when jsonb_typeof(f.j_session) = 'string'
                then pulser_ops.try_uuid(f.j_session #>> '{}') end as v_session
    from fields f
  ),
  looked_up as (
    select y.*, t.name as t_name, t.lease_seconds, t.params_schema, tp.walk,
           case when jsonb_typeof(y.j_params) = 'object' or y.j_params is null
                then coalesce(tp.defaults, '{}') || coalesce(y.j_params, '{}') end as v_params,
           coalesce(y.v_lane_given, t.default_lane) as v_lane,
           coalesce(y.v_priority_given, 0) as v_priority,
           coalesce(y.v_max_given, t.max_attempts) as v_max,
           s.id as s_id, s.owner_id as s_owner,
           case when y.v_session is not null then s.owner_id
                when k in ('operator', 'admin') then uid end as v_owner
    from typed y
    left join public.run_templates t on t.name = y.v_template
    left join pulser_ops.template_params tp on tp.template = t.name
    left join public.sessions s on s.id = y.v_session
  ),
  judged as (
    select z.*,
           case
             when not z.is_object then 1
             when exists (select 1 from jsonb_object_keys(z.e) as f(key)
                          where f.key not in ('template', 'params', 'lane', 'priority', 'run_after',
                                              'idempotency_key', 'session_id', 'max_attempts')) then 2
             when z.j_template is not null and z.v_template is null then 3
             when z.t_name is null then 4
             when z.v_params is null then 5
             -- The default schema ({"type": "object"}) says nothing the check above has not.
             when z.params_schema <> '{"type": "object"}'::jsonb
                  and case when z.walk is not false
                           then pulser_ops.schema_violation(z.params_schema, z.v_params, 'params')
                                is not null
                           else pulser_ops.params_break_rules(z.t_name, z.v_params) end then 6
             when z.j_lane is not null and z.v_lane_given is null then 7
             when z.v_lane not in ('A', 'B', 'C', 'D') then 8
             when z.j_priority is not null and (z.v_priority_given is null or z.v_priority_given % 1 <> 0)
             then 9
             when z.v_priority not between -100 and 100 then 10
             when z.j_max is not null and (z.v_max_given is null or z.v_max_given % 1 <> 0) then 11
             when z.v_max not between 1 and 100 then 12
             when z.j_after is not null and jsonb_typeof(z.j_after) <> 'string' then 13
             when z.j_after is not null and z.v_after is null then 14
             when z.j_key is not null and z.v_key is null then 15
             when char_length(z.v_key) not between 1 and 200 then 16
             when z.j_session is not null and jsonb_typeof(z.j_session) <> 'string' then 17
             when z.j_session is not null and z.v_session is null then 18
             -- another operator's session is answered like one that does not exist (no
             -- probing which ids do)
             when z.v_session is not null
                  and (z.s_id is null or k = 'operator' and z.s_owner is distinct from uid) then 19
           end as refused
    from looked_up z
  )
  select array_agg(row(
           a.n, gen_random_uuid(), a.t_name, a.v_lane,
           -- (not cast when refused: a number too big for an integer is refused by its range)
           case when a.refused is null then a.v_priority end,
           case when a.refused is null then a.v_max end, a.lease_seconds, a.v_params,
           a.v_session, a.v_owner, a.v_key, greatest(now(), coalesce(a.v_after, now())), null,
           a.refused
         )::pulser_ops.enqueue_item order by a.n),
         bool_or(a.v_key is not null)
    into items, keyed
  from judged a;

  if keyed then
    -- An idempotency key (per owner) already used, by a stored run or an earlier item, answers
    -- with that run; with another template or other params it is a conflict.
    with ordered as (
      select i.*, min(i.n) over (partition by i.idempotency_key, i.owner_id) as first_n
      from unnest(items) as i
    ),
    answered as (
      select i.*, coalesce(ex.id, f.id) as reuse_id,
             coalesce(ex.template, f.template) as reuse_template,
             coalesce(ex.params, f.params) as reuse_params
      from ordered as i
      left join lateral (
        select x.id, x.template, x.params from public.runs x
        where x.idempotency_key = i.idempotency_key
          and coalesce(x.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
            = coalesce(i.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
      ) ex on i.idempotency_key is not null and i.refused is null
      left join ordered f
        on f.n = i.first_n and i.first_n < i.n and i.idempotency_key is not null
           and i.refused is null and ex.id is null
    )
    select array_agg(row(
             a.n, a.id, a.template, a.lane, a.priority, a.max_attempts, a.lease_seconds, a.params,
             a.session_id, a.owner_id, a.idempotency_key, a.available_at, a.reuse_id,
             coalesce(a.refused, case when a.reuse_template <> a.template
                                        or a.reuse_params <> a.params then 20 end)
           )::pulser_ops.enqueue_item order by a.n)
      into items
    from answered a;
  end if;

  select i.* into bad from unnest(items) as i where i.refused is not null order by i.n limit 1;
  if bad.refused is not null then
    perform pulser_ops.enqueue_refuse(enqueue_runs.runs -> (bad.n - 1), bad);
  end if;

  -- One statement for the whole batch, in its order: one change notification, one wake-up.
  -- Without idempotency keys every item is a new run: the insert returns them (seq follows the
  -- batch's order), with no second look-up of the rows just written.
  if not keyed then
    return query
      with inserted as (
        insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                                 lease_seconds, params, session_id, owner_id, idempotency_key,
                                 available_at, sweep_count, version, created_at, updated_at)
        select i.id, i.template, i.lane, 'queued', i.priority, 0, i.max_attempts,
               i.lease_seconds, i.params, i.session_id, i.owner_id, null, i.available_at, 0, 1,
               now(), now()
        from unnest(items) as i
        order by i.n
        returning *
      )
      select x.* from inserted x order by x.seq;
    return;
  end if;
  insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                           lease_seconds, params, session_id, owner_id, idempotency_key,
                           available_at, sweep_count, version, created_at, updated_at)
  select i.id, i.template, i.lane, 'queued', i.priority, 0, i.max_attempts, i.lease_seconds,
         i.params, i.session_id, i.owner_id, i.idempotency_key, i.available_at, 0, 1, now(), now()
  from unnest(items) as i
  where i.reuse is null
  order by i.n
  on conflict ((coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
    where idempotency_key is not null do nothing;

  -- Each item's run: its own, the one it reuses, or (a concurrent enqueue with the same key won
  -- the race) the winner's.
  select array_agg(coalesce(own.id, win.id) order by i.n) into out_ids
  from unnest(items) as i
  left join public.runs own on own.id = coalesce(i.reuse, i.id)
  left join lateral (
    select y.id from public.runs y
    where own.id is null and y.idempotency_key = i.idempotency_key
      and coalesce(y.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
        = coalesce(i.owner_id, '00000000-0000-0000-0000-000000000000'::uuid)
  ) win on true;
  return query
    select x.* from unnest(out_ids) with ordinality as o(id, n)
    join public.runs x on x.id = o.id
    order by o.n;
end
$$;

revoke all on function pulser_ops.try_timestamptz(text), pulser_ops.try_uuid(text),
  pulser_ops.params_break_rules(text, jsonb), pulser_ops.schema_rules(jsonb, text[]),
  pulser_ops.run_templates_compile(), pulser_ops.enqueue_refuse(jsonb, pulser_ops.enqueue_item)
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.try_timestamptz(text), pulser_ops.try_uuid(text),
  pulser_ops.params_break_rules(text, jsonb), pulser_ops.schema_rules(jsonb, text[]),
  pulser_ops.run_templates_compile(), pulser_ops.enqueue_refuse(jsonb, pulser_ops.enqueue_item)
  to service_role;

revoke all on pulser_ops.template_params, pulser_ops.template_params_rules
  from public, anon, authenticated, service_role;
alter table pulser_ops.template_params enable row level security;
alter table pulser_ops.template_params_rules enable row level security;
-- The service role may read them (to see how a template's schema was compiled); only their
-- owner writes them.
grant select on pulser_ops.template_params, pulser_ops.template_params_rules to service_role;
create policy "service role reads compiled params" on pulser_ops.template_params
  for select to service_role using (true);
create policy "service role reads compiled params" on pulser_ops.template_params_rules
  for select to service_role using (true);

-- Compile the templates there are (the trigger compiles every later version).
update public.run_templates set params_schema = params_schema;

-- Its last caller was the loop above.
drop function pulser_ops.field(jsonb, text, text, text);
