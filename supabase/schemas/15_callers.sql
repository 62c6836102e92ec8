-- pulser-ops: who is calling, and what they may touch.
--
-- Every API function starts here: the caller's kind decides what it may do (workers and the
-- sweeper are 'service'; people are 'operator' or 'admin'), and lock_run_for is the one check
-- of "is this run yours" for the writes operators may make.

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
    -- A token that names no user would own nothing and match every row owned by nobody (the
    -- service role's): refused here, so every operator call and policy refuses it.
    if coalesce(auth.jwt() ->> 'sub', '')
       !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
      raise exception 'permission denied: the access token names no user (its JWT has no user id in "sub")'
        using errcode = '42501',
              hint = 'Operators call with a signed-in user''s access token; workers use the service role key.';
    end if;
    return case when coalesce(auth.jwt() -> 'app_metadata' ->> 'ops_role', '') = 'admin'
                then 'admin' else 'operator' end;
  elsif r = 'anon' then
    return 'anon';
  -- A superuser has every role (pg_has_role says so without a catalog scan of its own), so
  -- one call covers direct connections as a superuser or as a member of service_role.
  elsif pg_catalog.pg_has_role(coalesce(r, session_user), 'service_role', 'USAGE') then
    return 'service';
  end if;
  return 'none';
end
$$;

-- The first step of every API function an operator may call (the writers check their own
-- wording): refuses anon and a token that names no user. A reader that skipped it would answer
-- such a caller with an empty result, never with another's rows, but answer it all the same.
create function pulser_ops.check_caller() returns void
language plpgsql stable set search_path = '' as $$
begin
  if pulser_ops.caller_kind() not in ('service', 'admin', 'operator') then
    raise exception 'permission denied: sign in to read the control plane' using errcode = '42501';
  end if;
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

-- The run as a caller may act on it, or not found (PO404): another operator's run is answered
-- exactly like one that does not exist, as RLS answers a read, so that no caller can probe
-- which ids exist. Locks the row (no key update) so the caller's decision holds until commit.
create function pulser_ops.lock_run_for(run_id uuid, action text) returns public.runs
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
