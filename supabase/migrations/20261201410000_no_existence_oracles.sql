-- pulser-ops: no existence oracles (issue 20, security 1 and 3).
--
-- For another operator's run or session, cancel_run, append_run_events, rerun_run and
-- enqueue_run(session_id => ...) answered "permission denied", and "not found" for an id that
-- does not exist, so an operator could probe which ids exist. They now answer both alike, as
-- not found (PO404), the way a read under RLS does; another's run is not even locked.
-- spec_docs: the policy's check now also requires that a doc an operator writes (insert or
-- update) is in no session or one of theirs. It runs before the foreign key's check, so
-- another's session and one that does not exist are refused alike (42501).
-- enqueue_runs also inserts with a column list in the batch's order (runs.seq, next migration).

create or replace function pulser_ops.lock_run_for(run_id uuid, action text) returns public.runs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
  k text := pulser_ops.caller_kind();
begin
  if k not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: % callers may not % runs', k, action using errcode = '42501';
  end if;
  -- Another's run is never locked either: waiting on its lock would tell that it exists.
  select * into r from public.runs x
   where x.id = lock_run_for.run_id and (k in ('service', 'admin') or x.owner_id = auth.uid())
   for no key update;
  if found then
    return r;
  end if;
  raise exception 'run % not found', lock_run_for.run_id using errcode = 'PO404';
end
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
    rows := rows || r;
    out_ids := out_ids || r.id;
  end loop;

  -- One statement for the whole batch: one change notification, one wake-up. In the batch's
  -- order, so that seq (the claim's tiebreak within a created_at) keeps it.
  insert into public.runs (id, template, lane, status, priority, attempt, max_attempts,
                           lease_seconds, params, session_id, owner_id, idempotency_key,
                           available_at, sweep_count, version, created_at, updated_at)
  select q.id, q.template, q.lane, q.status, q.priority, q.attempt, q.max_attempts,
         q.lease_seconds, q.params, q.session_id, q.owner_id, q.idempotency_key,
         q.available_at, q.sweep_count, q.version, q.created_at, q.updated_at
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

create or replace function pulser_ops.append_run_events(events jsonb) returns setof public.run_events
language plpgsql volatile security definer set search_path = ''
  set plan_cache_mode = force_generic_plan as $$
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
  -- Another operator's run is answered like one that does not exist (no probing which ids do).
  if found then
    raise exception 'events[%]: run % not found', bad.n, bad.run_id using errcode = 'PO404';
  end if;

  -- The runs are locked in id order (as complete_runs and heartbeat_runs lock them: no
  -- deadlocks), in a statement of their own: see "Event seqs".
  perform 1 from public.runs r
   where r.id = any(array(select b.run_id from pulser_ops.event_batch(append_run_events.events) b))
   order by r.id for no key update;

  return query
  with b as (
    select * from pulser_ops.event_batch(append_run_events.events)
  ),
  last as (
    select p.run_id, (select coalesce(max(e.seq), 0) from public.run_events e
                      where e.run_id = p.run_id) as seq
    from (select distinct b.run_id from b) p
  )
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  select b.run_id,
         l.seq + row_number() over (partition by b.run_id order by b.n),
         b.kind, b.level, b.message, b.data, b.attempt, b.worker_id
  from b join last l on l.run_id = b.run_id
  order by b.n
  returning *;
end
$$;

alter policy "operators manage their spec docs" on public.spec_docs to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()))
  with check ((owner_id = (select auth.uid())
               and (session_id is null
                    or exists (select 1 from public.sessions s
                               where s.id = spec_docs.session_id
                                 and s.owner_id = (select auth.uid()))))
              or (select pulser_ops.is_admin()));
