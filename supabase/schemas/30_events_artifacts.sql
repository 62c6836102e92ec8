-- pulser-ops: a run's events, steps and artifacts.
--
-- Event seqs
-- ----------
-- Every run's events are numbered 1, 2, 3, ... in commit order, so a reader that asks for
-- "after_seq = last" never misses one. There is no counter: every writer of a run's events holds
-- the run's row lock (FOR NO KEY UPDATE, or the update it just made) and takes the next seq as
-- max(seq) + 1 from run_events' primary key, in a *later statement* than the one that took the
-- lock: under READ COMMITTED each statement sees everything committed before it started, and
-- every earlier writer committed before the lock was granted. The writers: claim_runs (pick and
-- lock, then update), complete_runs (lock, then complete), sweep_expired_runs (pick and lock,
-- then sweep), append_run_events (lock, then insert), and add_event's callers (cancel_run,
-- release_run: they update the run first). Locks on several runs are always taken in id order
-- (complete_runs, append_run_events, heartbeat_runs), so two batches of one worker cannot
-- deadlock. (A counter row per run did this until 20261124050000: an upsert per event, more
-- than the event row itself.)
--
-- The foreign key from run_events to runs keeps events from outliving or preceding their run,
-- and PostgREST needs it to embed a run's events (select=*,run_events(*)).

-- ---------------------------------------------------------------------------
-- Single events (cancel_run, release_run)
-- ---------------------------------------------------------------------------

create function pulser_ops.add_event(
  run_id uuid, kind text, level text, message text, data jsonb default null,
  attempt integer default null, worker_id text default null
) returns void
language plpgsql volatile set search_path = '' as $$
-- The caller holds the run's row lock, taken by an earlier statement (it just updated or locked
-- the run): see "Event seqs".
begin
  insert into public.run_events (run_id, seq, kind, level, message, data, attempt, worker_id)
  select add_event.run_id, coalesce(max(e.seq), 0) + 1, add_event.kind, add_event.level,
         add_event.message, add_event.data, add_event.attempt, add_event.worker_id
  from public.run_events e where e.run_id = add_event.run_id;
end
$$;

-- ---------------------------------------------------------------------------
-- Append: a batch of events, for several runs
-- ---------------------------------------------------------------------------

-- The events of a request as rows, numbered by position. plpgsql, not sql: a SQL function with
-- SET search_path is never inlined and is planned on every call, and append_run_events calls
-- this three times; in plpgsql its plans are cached per session. Rows 10: a batch is a handful
-- of events, and with the default estimate of 1,000 rows for a set-returning function, the
-- generic plan of append_run_events' ownership check hash-joined all of runs.
create function pulser_ops.event_batch(events jsonb)
returns table (n bigint, run_id uuid, kind text, level text, message text, data jsonb,
               attempt integer, worker_id text)
language plpgsql immutable rows 10 set search_path = '' as $$
#variable_conflict use_column
begin
  return query
  select e.o - 1, x.run_id, x.kind, coalesce(x.level, 'info'), coalesce(x.message, ''), x.data,
         x.attempt, x.worker_id
  from jsonb_array_elements(event_batch.events) with ordinality as e(v, o),
       jsonb_to_record(e.v) as x(run_id uuid, kind text, level text, message text, data jsonb,
                                 attempt integer, worker_id text);
end
$$;

-- Checks every event and that the caller may write to each run (operators: their own runs;
-- another's is not found), then locks the runs in id order and numbers the events (see "Event seqs"). The ownership
-- check is custom-planned on every call without force_generic_plan (the caller kind and
-- auth.uid() are parameters); its generic plan is the same index lookup.
create function pulser_ops.append_run_events(events jsonb) returns setof public.run_events
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

create function public.append_run_events(events jsonb) returns setof public.run_events
language sql volatile set search_path = '' as $$
  select * from pulser_ops.append_run_events(append_run_events.events)
$$;

-- ---------------------------------------------------------------------------
-- Steps and artifacts
-- ---------------------------------------------------------------------------

-- One step row of a run's attempt, upserted by (run, attempt, idx): "running" when the step
-- starts, its outcome when it ends. Fenced like every worker call.
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

-- Artifact names and the keys of their files
-- --------------------------------------------
-- A name is a safe relative path of at most 255 bytes (UTF-8). Its file lives in the
-- run-artifacts bucket at '<run id>/' || storage_key(name). Supabase Storage takes only keys of
-- ^[A-Za-z0-9_/!.*'() &$=@;:+,?-]*$ (storage src/storage/limits.ts, VALID_OBJECT_KEY), while a
-- name may hold any other character (ünï.txt, b[1].txt, 50%.txt): the key writes each of those,
-- and '*' (the escape), as '*' and the hex of each of its UTF-8 bytes ('ü' -> '*C3*BC'), and
-- keeps the rest. So the key is valid on Storage and on a local disk alike, distinct names
-- never share one, and a name of safe characters is its own key. Each '/' segment of the key
-- is at most 255 bytes (a file name on a local disk). The artifacts row keeps the name.
-- pulser_ops.files in the SDK states the same two rules in Python.

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

-- What is wrong with an artifact name, or null.
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

-- An artifact of a run's attempt: small text inline, anything else in the private run-artifacts
-- bucket at '<run id>/<attempt, 0 for none>/' || storage_key(name) (the worker uploads it
-- through the Storage API first). Putting the same name in the same attempt replaces it; each
-- attempt keeps its own. ('<run id>/' || storage_key(name), the layout before artifacts were
-- kept per attempt, is still accepted from older SDKs.)
create function public.put_artifact(
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

-- The worker holding the run's lease saves its documents; a retried attempt replaces them.
create function public.put_spec_docs(run_id uuid, worker_id text, attempt integer, docs jsonb)
returns setof public.spec_docs
language plpgsql volatile set search_path = '' as $$
declare
  r public.runs;
  d jsonb;
  i integer := 0;
begin
  perform pulser_ops.require_service('save spec docs');
  if jsonb_typeof(put_spec_docs.docs) is distinct from 'array' then
    raise exception 'docs: expected a JSON array' using errcode = 'PO400';
  end if;
  if jsonb_array_length(put_spec_docs.docs) > 100 then
    raise exception 'docs: at most 100 documents per call (got %)',
      jsonb_array_length(put_spec_docs.docs) using errcode = 'PO400';
  end if;
  for d in select * from jsonb_array_elements(put_spec_docs.docs) loop
    if jsonb_typeof(d) <> 'object' or jsonb_typeof(d -> 'path') <> 'string'
       or jsonb_typeof(d -> 'content') <> 'string' then
      raise exception 'docs[%]: expected {"path": text, "kind": text, "title": text, "content": text}', i
        using errcode = 'PO400';
    end if;
    if (d ->> 'path') ~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])' or char_length(d ->> 'path') not between 1 and 255 then
      raise exception 'docs[%].path: % is not a safe relative path', i, quote_literal(d ->> 'path')
        using errcode = 'PO400';
    end if;
    if coalesce(d ->> 'kind', 'note') !~ '^[a-z][a-z0-9_-]{0,31}$' then
      raise exception 'docs[%].kind: % must match ^[a-z][a-z0-9_-]{0,31}$', i, quote_literal(d ->> 'kind')
        using errcode = 'PO400';
    end if;
    if char_length(coalesce(d ->> 'title', '')) > 200 then
      raise exception 'docs[%].title: at most 200 characters', i using errcode = 'PO400';
    end if;
    if octet_length(d ->> 'content') > 1048576 then
      raise exception 'docs[%].content: % bytes; the limit is 1048576', i, octet_length(d ->> 'content')
        using errcode = 'PO400';
    end if;
    i := i + 1;
  end loop;
  select * into r from public.runs x
   where x.id = put_spec_docs.run_id and x.status = 'running'
     and x.worker_id = put_spec_docs.worker_id and x.attempt = put_spec_docs.attempt
   for share;
  if not found then
    perform pulser_ops.raise_fenced(put_spec_docs.run_id, put_spec_docs.worker_id,
                                    put_spec_docs.attempt, 'save spec docs of');
  end if;
  return query
  insert into public.spec_docs as s (session_id, owner_id, kind, title, content, run_id, path)
  select r.session_id, r.owner_id, coalesce(e ->> 'kind', 'note'), coalesce(e ->> 'title', ''),
         e ->> 'content', r.id, e ->> 'path'
    from jsonb_array_elements(put_spec_docs.docs) as e
  on conflict on constraint spec_docs_run_path_key do update
    set kind = excluded.kind, title = excluded.title, content = excluded.content, updated_at = now()
  returning s.*;
end
$$;
comment on function public.put_spec_docs(uuid, text, integer, jsonb) is
  'Save the documents a run generated (generate_spec_kit): fenced by the lease, one row per (run, path), session and owner from the run.';
