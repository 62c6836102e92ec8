-- Sessions as conversations (issue 15: the control room's Chat tab).
--
-- session_messages holds what an operator typed into a session and what the room answered, in
-- order; RLS shows an operator only their own sessions' messages (an admin every one). Writes go
-- through add_session_messages (checked: your own session, runs you may see). The runs a
-- session started are runs.session_id: list_session_runs returns them as live cards (last event,
-- artifacts); list_session_summaries is the Chat tab's list of sessions.

create table public.session_messages (
  id         bigint generated always as identity primary key,
  session_id uuid not null references public.sessions (id) on delete cascade,
  at         timestamptz not null default now(),
  author_id  uuid,
  author     text not null default '' check (char_length(author) <= 200),
  kind       text not null check (kind in ('command', 'reply', 'error', 'note')),
  body       text not null default '' check (octet_length(body) <= 16384),
  -- the run a message is about (the run a `run` command started): the room shows its live card
  run_id     uuid references public.runs (id) on delete set null,
  data       jsonb check (data is null or jsonb_typeof(data) = 'object')
);
create index session_messages_session_idx on public.session_messages (session_id, id);
create index session_messages_run_idx on public.session_messages (run_id) where run_id is not null;

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

create or replace function pulser_ops.control_plane_info() returns jsonb
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

alter table public.session_messages enable row level security;
-- The sessions policy applies inside: an operator's own sessions, an admin's every one.
create policy "operators read their sessions' messages" on public.session_messages for select
  to authenticated using (exists (select 1 from public.sessions s where s.id = session_id));
revoke all on public.session_messages from public, anon, authenticated, service_role;
grant select on public.session_messages to authenticated;
grant select, insert, update, delete on public.session_messages to service_role;

revoke all on function pulser_ops.add_session_messages(uuid, jsonb),
  public.add_session_messages(uuid, jsonb), public.list_session_messages(uuid, bigint, integer),
  public.list_session_summaries(integer), public.list_session_runs(uuid, integer)
  from public, anon, authenticated, service_role;
grant execute on function pulser_ops.add_session_messages(uuid, jsonb),
  public.add_session_messages(uuid, jsonb), public.list_session_messages(uuid, bigint, integer),
  public.list_session_summaries(integer), public.list_session_runs(uuid, integer)
  to authenticated, service_role;
