-- pulser-ops: recurring runs. A schedule names a template, its params and a cron expression in
-- a time zone; the sweeper's pass (enqueue_due_schedules, also from pg_cron) enqueues each due
-- run once, keyed by the schedule and its due time. Admins write schedules, every signed-in
-- operator reads them, and the board and CLI preview an expression before it is saved.
-- The table is in 10_tables.sql; grants and RLS in 90_security.sql.

-- ---------------------------------------------------------------------------
-- Cron: five fields (minute hour day-of-month month day-of-week), as Vixie cron reads them
-- ---------------------------------------------------------------------------

-- The values one field allows, sorted: "*", "5", "1-5", "*/15", "10-40/10", "5/15" (5 to the
-- end, every 15), lists of those ("1,15,30"), and names where the field has them (jan..dec,
-- sun..sat). A day of week may be 7, which is Sunday as 0 is. Anything else is PO400, naming
-- the field and the part it cannot read.
create function pulser_ops.cron_field(field text, lo integer, hi integer, names text[], what text)
returns integer[]
language plpgsql immutable set search_path = '' as $$
declare
  part text;
  m text[];
  a integer;
  b integer;
  step integer;
  vals integer[] := '{}';
begin
  if cron_field.field is null or cron_field.field = '' then
    raise exception 'cron: the % field is empty', cron_field.what using errcode = 'PO400';
  end if;
  foreach part in array pg_catalog.string_to_array(lower(cron_field.field), ',') loop
    m := pg_catalog.regexp_match(part, '^(\*|[0-9]{1,2}|[a-z]{3})(?:-([0-9]{1,2}|[a-z]{3}))?(?:/([0-9]{1,2}))?$');
    if m is null then
      raise exception 'cron: the % field cannot be read at "%"', cron_field.what, part
        using errcode = 'PO400',
              hint = 'A field is *, a number, a range a-b, a step */n or a-b/n, or a list of those.';
    end if;
    -- a name: its place in names (jan = 1, sun = 0)
    a := case when m[1] = '*' then cron_field.lo
              when m[1] ~ '^[0-9]' then m[1]::integer
              else pg_catalog.array_position(cron_field.names, m[1]) - 1 + cron_field.lo end;
    b := case when m[2] is not null
                then case when m[2] ~ '^[0-9]' then m[2]::integer
                          else pg_catalog.array_position(cron_field.names, m[2]) - 1 + cron_field.lo end
              when m[1] = '*' or m[3] is not null then cron_field.hi
              else a end;
    step := coalesce(m[3]::integer, 1);
    if a is null or b is null then
      raise exception 'cron: the % field has an unknown name in "%"', cron_field.what, part
        using errcode = 'PO400';
    end if;
    if m[1] = '*' and m[2] is not null then
      raise exception 'cron: the % field cannot be read at "%"', cron_field.what, part
        using errcode = 'PO400';
    end if;
    if a < cron_field.lo or b > cron_field.hi or a > b or step < 1 then
      raise exception 'cron: the % field allows % to % (got "%")', cron_field.what, cron_field.lo,
        cron_field.hi, part using errcode = 'PO400';
    end if;
    vals := vals || array(select pg_catalog.generate_series(a, b, step));
  end loop;
  return array(select distinct v from unnest(vals) v order by v);
end
$$;

-- The first time after `after` that `cron` names, in `timezone` (the wall clock there: "0 9 * *
-- 1-5" is 09:00 on weekdays in that zone, summer or winter). When both the day of month and the
-- day of week are restricted (neither starts with "*"), a day matching either is due, else a day
-- matching both (Vixie cron's rule: "*/10" in the day of month is every tenth day, any weekday).
-- A wall time that a clock change skips runs when the change lands; one it repeats runs once.
-- @hourly @daily (@midnight) @weekly @monthly @yearly (@annually) name their usual five fields.
create function pulser_ops.cron_next(cron text, timezone text, after timestamptz)
returns timestamptz
language plpgsql stable set search_path = '' as $$
declare
  expr text := pulser_ops.cron_expand(cron_next.cron);
  f text[];
  mins integer[];
  hours integer[];
  doms integer[];
  months integer[];
  dows integer[];
  any_dom boolean;
  any_dow boolean;
  t timestamp;
  r timestamptz;
  n integer;
  tries integer := 0;
begin
  if cron_next.cron is null or char_length(cron_next.cron) > 200 then
    raise exception 'cron: required, at most 200 characters' using errcode = 'PO400';
  end if;
  perform pulser_ops.check_timezone(cron_next.timezone);
  if cron_next.after is null then
    raise exception 'cron: no start time' using errcode = 'PO400';
  end if;
  f := pg_catalog.regexp_split_to_array(expr, '\s+');
  if cardinality(f) <> 5 then
    raise exception 'cron: expected 5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly; got "%"', cron_next.cron
      using errcode = 'PO400';
  end if;
  mins := pulser_ops.cron_field(f[1], 0, 59, null, 'minute');
  hours := pulser_ops.cron_field(f[2], 0, 23, null, 'hour');
  doms := pulser_ops.cron_field(f[3], 1, 31, null, 'day-of-month');
  months := pulser_ops.cron_field(f[4], 1, 12,
    '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}', 'month');
  dows := array(select distinct case when d = 7 then 0 else d end from unnest(
    pulser_ops.cron_field(f[5], 0, 7, '{sun,mon,tue,wed,thu,fri,sat}', 'day-of-week')) d);
  any_dom := f[3] like '*%';
  any_dow := f[5] like '*%';

  t := pg_catalog.date_trunc('minute', cron_next.after at time zone cron_next.timezone)
       + interval '1 minute';
  loop
    tries := tries + 1;
    if tries > 20000 then  -- e.g. "0 0 30 2 *": February has no 30th
      raise exception 'cron: "%" names no time that exists', cron_next.cron using errcode = 'PO400';
    end if;
    if not extract(month from t)::integer = any(months) then
      t := pg_catalog.date_trunc('month', t) + interval '1 month';
      continue;
    end if;
    if not (case when any_dom or any_dow
                 then extract(day from t)::integer = any(doms)
                      and extract(dow from t)::integer = any(dows)
                 else extract(day from t)::integer = any(doms)
                      or extract(dow from t)::integer = any(dows) end) then
      t := pg_catalog.date_trunc('day', t) + interval '1 day';
      continue;
    end if;
    if not extract(hour from t)::integer = any(hours) then
      select min(h) into n from unnest(hours) h where h > extract(hour from t);
      t := case when n is null then pg_catalog.date_trunc('day', t) + interval '1 day'
                else pg_catalog.date_trunc('day', t) + pg_catalog.make_interval(hours => n) end;
      continue;
    end if;
    if not extract(minute from t)::integer = any(mins) then
      select min(x) into n from unnest(mins) x where x > extract(minute from t);
      t := case when n is null then pg_catalog.date_trunc('hour', t) + interval '1 hour'
                else pg_catalog.date_trunc('hour', t) + pg_catalog.make_interval(mins => n) end;
      continue;
    end if;
    r := t at time zone cron_next.timezone;
    if r > cron_next.after then
      return r;
    end if;
    t := t + interval '1 minute';  -- a repeated wall time (the clock went back): already due
  end loop;
end
$$;

-- The five fields an @alias stands for; anything else as it is, without surrounding whitespace.
create function pulser_ops.cron_expand(cron text) returns text
language sql immutable set search_path = '' as $$
  select case lower(btrim(cron_expand.cron, E' \t\r\n'))
    when '@hourly' then '0 * * * *'
    when '@daily' then '0 0 * * *'
    when '@midnight' then '0 0 * * *'
    when '@weekly' then '0 0 * * 0'
    when '@monthly' then '0 0 1 * *'
    when '@yearly' then '0 0 1 1 *'
    when '@annually' then '0 0 1 1 *'
    else btrim(cron_expand.cron, E' \t\r\n') end
$$;

-- A time zone PostgreSQL knows ("Europe/Paris", "UTC"), else PO400.
create function pulser_ops.check_timezone(timezone text) returns void
language plpgsql stable set search_path = '' as $$
begin
  perform now() at time zone check_timezone.timezone;
  if check_timezone.timezone is null then
    raise exception 'timezone: required' using errcode = 'PO400';
  end if;
exception when invalid_parameter_value then
  raise exception 'timezone: unknown time zone "%"', check_timezone.timezone
    using errcode = 'PO400', hint = 'Use an IANA name such as Europe/Paris, America/New_York or UTC.';
end
$$;

-- The next `count` times a cron expression names after now, each also as the zone's wall clock:
-- what the CLI and the board show before a schedule is saved ("is this what I meant?"). Pure:
-- it reads no table.
create function public.preview_schedule(cron text, timezone text default 'UTC', count integer default 5)
returns table (due_at timestamptz, local_time text)
language plpgsql stable set search_path = '' as $$
declare
  t timestamptz := now();
begin
  if preview_schedule.count is null or preview_schedule.count not between 1 and 100 then
    raise exception 'count: must be between 1 and 100' using errcode = 'PO400';
  end if;
  for i in 1 .. preview_schedule.count loop
    t := pulser_ops.cron_next(preview_schedule.cron, preview_schedule.timezone, t);
    due_at := t;
    -- the wall clock of the zone, as whoever wrote the expression reads it
    local_time := to_char(t at time zone preview_schedule.timezone, 'Dy YYYY-MM-DD HH24:MI');
    return next;
  end loop;
end
$$;

-- ---------------------------------------------------------------------------
-- Schedules: admins write them, every signed-in operator reads them
-- ---------------------------------------------------------------------------

-- Create or replace a schedule: {"name", "template", "cron", "timezone"?, "params"?, "lane"?,
-- "priority"?, "enabled"?, "description"?}. Everything is checked before anything is written:
-- the cron expression and time zone, the template (PO404), the params against its schema
-- (PO422, as enqueue would refuse them). next_run_at is computed from now when the schedule is
-- new, its timing changed, or it is enabled again: a schedule never fires for times that passed
-- while it did not exist or was paused.
create function pulser_ops.upsert_schedule(schedule jsonb) returns public.run_schedules
language plpgsql volatile security definer set search_path = '' as $$
declare
  s jsonb := upsert_schedule.schedule;
  k text;
  tpl public.run_templates;
  tz text;
  params jsonb;
  msg text;
  old public.run_schedules;
  r public.run_schedules;
begin
  perform pulser_ops.require_admin('change schedules');
  if jsonb_typeof(s) is distinct from 'object' then
    raise exception 'schedule: expected an object' using errcode = 'PO400';
  end if;
  select x into k from jsonb_object_keys(s) x
   where x not in ('name', 'template', 'cron', 'timezone', 'params', 'lane', 'priority',
                   'enabled', 'description')
   order by x limit 1;
  if k is not null then
    raise exception 'schedule.%: unknown field', k using errcode = 'PO400';
  end if;
  if jsonb_typeof(s -> 'name') is distinct from 'string'
     or (s ->> 'name') !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
    raise exception 'schedule.name: required, lowercase letters, digits and _ . - (at most 63), got %',
      coalesce(s ->> 'name', 'nothing') using errcode = 'PO400';
  end if;
  if jsonb_typeof(s -> 'template') is distinct from 'string' then
    raise exception 'schedule.template: required' using errcode = 'PO400';
  end if;
  if jsonb_typeof(s -> 'cron') is distinct from 'string' or char_length(s ->> 'cron') > 200 then
    raise exception 'schedule.cron: required, a string of at most 200 characters' using errcode = 'PO400';
  end if;
  if s ? 'timezone' and jsonb_typeof(s -> 'timezone') is distinct from 'string' then
    raise exception 'schedule.timezone: expected a string' using errcode = 'PO400';
  end if;
  tz := coalesce(s ->> 'timezone', 'UTC');
  if char_length(tz) > 64 then
    raise exception 'schedule.timezone: at most 64 characters' using errcode = 'PO400';
  end if;
  perform pulser_ops.cron_next(s ->> 'cron', tz, now());  -- PO400 for a bad expression or zone
  if s ? 'params' and jsonb_typeof(s -> 'params') is distinct from 'object' then
    raise exception 'schedule.params: expected an object' using errcode = 'PO400';
  end if;
  if s ? 'lane' and jsonb_typeof(s -> 'lane') <> 'null'
     and coalesce(s ->> 'lane', '') not in ('A', 'B', 'C', 'D') then
    raise exception 'schedule.lane: must be one of A, B, C, D (got %)', s -> 'lane'
      using errcode = 'PO400';
  end if;
  if s ? 'priority' and (jsonb_typeof(s -> 'priority') is distinct from 'number'
                         or (s ->> 'priority')::numeric not between -100 and 100
                         or (s ->> 'priority')::numeric <> trunc((s ->> 'priority')::numeric)) then
    raise exception 'schedule.priority: a whole number between -100 and 100 (got %)', s -> 'priority'
      using errcode = 'PO400';
  end if;
  if s ? 'enabled' and jsonb_typeof(s -> 'enabled') is distinct from 'boolean' then
    raise exception 'schedule.enabled: expected true or false' using errcode = 'PO400';
  end if;
  if s ? 'description' and (jsonb_typeof(s -> 'description') is distinct from 'string'
                            or char_length(s ->> 'description') > 2000) then
    raise exception 'schedule.description: a string of at most 2000 characters' using errcode = 'PO400';
  end if;
  select * into tpl from public.run_templates t where t.name = s ->> 'template';
  if not found then
    raise exception 'unknown template %', s ->> 'template'
      using errcode = 'PO404', detail = 'schedule.template';
  end if;
  params := coalesce(s -> 'params', '{}');
  msg := pulser_ops.schema_violation(tpl.params_schema,
    pulser_ops.params_with_defaults(tpl.params_schema, params), 'params');
  if msg is not null then
    raise exception 'invalid params for template %: %', tpl.name, msg
      using errcode = 'PO422', detail = split_part(msg, ':', 1);
  end if;

  select * into old from public.run_schedules x where x.name = s ->> 'name' for update;
  insert into public.run_schedules as x (name, template, cron, timezone, params, lane, priority,
                                         enabled, description, next_run_at)
  values (s ->> 'name', tpl.name, btrim(s ->> 'cron', E' \t\r\n'), tz, params, s ->> 'lane',
          coalesce((s ->> 'priority')::integer, 0), coalesce((s ->> 'enabled')::boolean, true),
          coalesce(s ->> 'description', ''), pulser_ops.cron_next(s ->> 'cron', tz, now()))
  on conflict (name) do update
    set template = excluded.template, cron = excluded.cron, timezone = excluded.timezone,
        params = excluded.params, lane = excluded.lane, priority = excluded.priority,
        enabled = excluded.enabled, description = excluded.description,
        next_run_at = case when x.cron = excluded.cron and x.timezone = excluded.timezone
                                and (x.enabled or not excluded.enabled)
                           then x.next_run_at else excluded.next_run_at end,
        updated_at = now()
  returning x.* into r;
  return r;
end
$$;

create function public.upsert_schedule(schedule jsonb) returns public.run_schedules
language sql volatile set search_path = '' as $$
  select * from pulser_ops.upsert_schedule(upsert_schedule.schedule)
$$;

-- Create or update several schedules in one transaction: all of them, or none (pulser-ops
-- schedules apply FILE). The first error is prefixed "schedules[i] (name):".
create function public.upsert_schedules(schedules jsonb) returns setof public.run_schedules
language plpgsql volatile set search_path = '' as $$
declare
  item jsonb;
  n bigint;
  msg text;
  code text;
  hint text;
begin
  if not pulser_ops.is_admin() then
    raise exception 'permission denied: only an admin or the service role may change schedules'
      using errcode = '42501', hint = 'Admins carry app_metadata.ops_role = ''admin'' in their JWT.';
  end if;
  if jsonb_typeof(upsert_schedules.schedules) is distinct from 'array'
     or jsonb_array_length(upsert_schedules.schedules) not between 1 and 200 then
    raise exception 'schedules: expected an array of 1 to 200 schedule objects' using errcode = 'PO400';
  end if;
  if (select count(distinct e ->> 'name') <> count(*)
      from jsonb_array_elements(upsert_schedules.schedules) e) then
    raise exception 'schedules: a name appears more than once' using errcode = 'PO400';
  end if;
  for item, n in
    select e, i from jsonb_array_elements(upsert_schedules.schedules) with ordinality as a(e, i)
  loop
    begin
      return next pulser_ops.upsert_schedule(item);
    exception when others then
      get stacked diagnostics msg = message_text, code = returned_sqlstate, hint = pg_exception_hint;
      raise exception 'schedules[%] (%): %', n - 1, coalesce(item ->> 'name', 'no name'), msg
        using errcode = code, hint = coalesce(hint, '');
    end;
  end loop;
end
$$;

-- Pause (false) or resume (true) a schedule. Resuming counts from now: the times it missed
-- while paused are not made up.
create function pulser_ops.set_schedule_enabled(name text, enabled boolean)
returns public.run_schedules
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.run_schedules;
begin
  perform pulser_ops.require_admin('pause or resume schedules');
  if set_schedule_enabled.enabled is null then
    raise exception 'enabled: expected true or false' using errcode = 'PO400';
  end if;
  update public.run_schedules x
     set enabled = set_schedule_enabled.enabled,
         next_run_at = case when set_schedule_enabled.enabled and not x.enabled
                            then pulser_ops.cron_next(x.cron, x.timezone, now())
                            else x.next_run_at end,
         updated_at = now()
   where x.name = set_schedule_enabled.name
  returning x.* into r;
  if not found then
    raise exception 'schedule % not found', set_schedule_enabled.name using errcode = 'PO404';
  end if;
  return r;
end
$$;

create function public.set_schedule_enabled(name text, enabled boolean)
returns public.run_schedules
language sql volatile set search_path = '' as $$
  select * from pulser_ops.set_schedule_enabled(set_schedule_enabled.name, set_schedule_enabled.enabled)
$$;

create function pulser_ops.delete_schedule(name text) returns public.run_schedules
language plpgsql volatile security definer set search_path = '' as $$
declare
  r public.run_schedules;
begin
  perform pulser_ops.require_admin('delete schedules');
  delete from public.run_schedules x where x.name = delete_schedule.name returning x.* into r;
  if not found then
    raise exception 'schedule % not found', delete_schedule.name using errcode = 'PO404';
  end if;
  return r;
end
$$;

create function public.delete_schedule(name text) returns public.run_schedules
language sql volatile set search_path = '' as $$
  select * from pulser_ops.delete_schedule(delete_schedule.name)
$$;

-- Every schedule, by name (RLS: every signed-in operator reads them, like templates).
create function public.list_schedules() returns setof public.run_schedules
language plpgsql stable set search_path = '' as $$
begin
  perform pulser_ops.check_caller();
  return query select s.* from public.run_schedules s order by s.name;
end
$$;

-- One schedule by name (NotFound, PO404, when there is none): what the editor and
-- `pulser-ops schedules rm` read, instead of every schedule.
create function public.get_schedule(name text) returns public.run_schedules
language plpgsql stable set search_path = '' as $$
declare
  r public.run_schedules;
begin
  perform pulser_ops.check_caller();
  select * into r from public.run_schedules s where s.name = get_schedule.name;
  if not found then
    raise exception 'schedule % not found', get_schedule.name using errcode = 'PO404';
  end if;
  return r;
end
$$;

-- ---------------------------------------------------------------------------
-- Firing: the sweeper's pass enqueues what is due
-- ---------------------------------------------------------------------------

-- Enqueue the run of every enabled schedule that is due, at most max_runs schedules a call,
-- the longest overdue first, each locked with SKIP LOCKED so that two sweepers never fire one
-- twice. The run's idempotency key is "schedule:<name>:<due time>", so a retried call (a lost
-- reply) finds the same run instead of making a second one. A schedule that was due several
-- times while no sweeper ran fires once, for the oldest time, then counts from now: nothing
-- piles up after an outage. A run that cannot be enqueued (the template's schema changed and
-- the params no longer fit; its lane is still as set) is not retried: the error is kept on the
-- schedule (last_error) and returned, and the schedule moves on to its next time.
create function public.enqueue_due_schedules(max_runs integer default 100)
returns table (schedule text, due_at timestamptz, run_id uuid, error text)
language plpgsql volatile set search_path = '' as $$
declare
  s public.run_schedules;
  rid uuid;
  err text;
begin
  perform pulser_ops.require_service('enqueue the runs of schedules');
  if enqueue_due_schedules.max_runs is null or enqueue_due_schedules.max_runs not between 1 and 1000 then
    raise exception 'max_runs: must be between 1 and 1000' using errcode = 'PO400';
  end if;
  for s in select * from public.run_schedules x
           where x.enabled and x.next_run_at <= now()
           order by x.next_run_at
           limit enqueue_due_schedules.max_runs
           for update skip locked loop
    begin
      select e.id into rid from pulser_ops.enqueue_runs(jsonb_build_array(jsonb_strip_nulls(
        jsonb_build_object('template', s.template, 'params', s.params, 'lane', s.lane,
                           'priority', s.priority, 'idempotency_key',
                           'schedule:' || s.name || ':'
                           || to_char(s.next_run_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))))) e;
      err := null;
    exception when others then
      rid := null;
      err := left(sqlerrm, 2000);
    end;
    update public.run_schedules x
       set next_run_at = pulser_ops.cron_next(x.cron, x.timezone, greatest(now(), x.next_run_at)),
           last_run_at = s.next_run_at, last_run_id = coalesce(rid, x.last_run_id),
           last_error = err, updated_at = now()
     where x.name = s.name;
    schedule := s.name;
    due_at := s.next_run_at;
    run_id := rid;
    error := err;
    return next;
  end loop;
end
$$;
