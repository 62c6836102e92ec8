-- Schedules: the cron arithmetic (fields, names, steps, the day-of-month / day-of-week rule,
-- time zones and their clock changes, expressions that cannot be read or never match), and how
-- enqueue_due_schedules fires: once per due time, catching up once after an outage, keeping an
-- error on the schedule instead of stopping.
begin;
select * from no_plan();

create function pg_temp.next(cron text, tz text, after text) returns text
language sql as $$
  select to_char(pulser_ops.cron_next(cron, tz, after::timestamptz) at time zone tz,
                 'YYYY-MM-DD Dy HH24:MI')
$$;

-- ---------------------------------------------------------------------------------------------
-- Fields
-- ---------------------------------------------------------------------------------------------

select is(pg_temp.next('*/15 * * * *', 'UTC', '2026-12-01 10:07:30Z'), '2026-12-01 Tue 10:15', 'a step of minutes');
select is(pg_temp.next('*/15 * * * *', 'UTC', '2026-12-01 10:15:00Z'), '2026-12-01 Tue 10:30', 'strictly after: a due time is not due again');
select is(pg_temp.next('5/15 * * * *', 'UTC', '2026-12-01 10:36:00Z'), '2026-12-01 Tue 10:50', 'a/n runs from a to the end');
select is(pg_temp.next('10-40/10 3 * * *', 'UTC', '2026-12-01 03:41:00Z'), '2026-12-02 Wed 03:10', 'a range with a step, then the next day');
select is(pg_temp.next('0 9,17 * * *', 'UTC', '2026-12-01 09:00:00Z'), '2026-12-01 Tue 17:00', 'a list of hours');
select is(pg_temp.next('0 0 1 jan *', 'UTC', '2026-12-01 00:00:00Z'), '2027-01-01 Fri 00:00', 'month names, across a year');
select is(pg_temp.next('0 8 * * mon-fri', 'UTC', '2026-12-04 08:00:00Z'), '2026-12-07 Mon 08:00', 'day names: Friday to Monday');
select is(pg_temp.next('0 0 * * 7', 'UTC', '2026-12-01 00:00:00Z'), '2026-12-06 Sun 00:00', '7 is Sunday, as 0 is');
select is(pg_temp.next('0 0 13 * 5', 'UTC', '2026-12-01 00:00:00Z'), '2026-12-04 Fri 00:00', 'day of month and day of week: either one (Vixie)');
select is(pg_temp.next('0 0 13 * 5', 'UTC', '2026-12-11 00:00:00Z'), '2026-12-13 Sun 00:00', '... the 13th, a Sunday, is due too');
select is(pg_temp.next('0 0 */10 * *', 'UTC', '2026-12-02 00:00:00Z'), '2026-12-11 Fri 00:00', 'a day-of-month step alone ignores the weekday');
select is(pg_temp.next('0 12 29 2 *', 'UTC', '2026-12-01 00:00:00Z'), '2028-02-29 Tue 12:00', 'the 29th of February: the next leap year');
select is(pg_temp.next('@weekly', 'UTC', '2026-12-01 00:00:00Z'), '2026-12-06 Sun 00:00', '@weekly');
select is(pg_temp.next('@hourly', 'UTC', '2026-12-01 10:00:00Z'), '2026-12-01 Tue 11:00', '@hourly');
select is(pg_temp.next('  @Monthly ', 'UTC', '2026-12-01 00:00:00Z'), '2027-01-01 Fri 00:00', 'an alias in any case, with spaces');
select is(pg_temp.next(E'0 9 * * *\n', 'UTC', '2026-12-01 00:00:00Z'), '2026-12-01 Tue 09:00', 'a trailing newline (a pasted line)');
select is(pg_temp.next(E'0\t9  *\t* *', 'UTC', '2026-12-01 00:00:00Z'), '2026-12-01 Tue 09:00', 'tabs and runs of spaces between fields');

-- ---------------------------------------------------------------------------------------------
-- Time zones: the wall clock there, through its clock changes
-- ---------------------------------------------------------------------------------------------

select is(to_char(pulser_ops.cron_next('0 9 * * *', 'Europe/Paris', '2026-12-01 00:00Z') at time zone 'UTC', 'HH24:MI'),
  '08:00', '09:00 in Paris in winter is 08:00 UTC');
select is(to_char(pulser_ops.cron_next('0 9 * * *', 'Europe/Paris', '2027-06-01 00:00Z') at time zone 'UTC', 'HH24:MI'),
  '07:00', '... and 07:00 UTC in summer');
-- 2027-03-28 02:30 does not exist in Paris (02:00 -> 03:00): that day it runs once, when the
-- clock has changed, and the next day at 02:30 again.
select is(pulser_ops.cron_next('30 2 * * *', 'Europe/Paris', '2027-03-27 02:30+01'),
  '2027-03-28 03:30+02'::timestamptz, 'a wall time the clock skips runs when the change lands');
select is(pg_temp.next('30 2 * * *', 'Europe/Paris', '2027-03-28 03:30+02'), '2027-03-29 Mon 02:30',
  '... once');
-- 2026-10-25 02:30 happens twice in Paris (03:00 -> 02:00): it runs once.
select is(pg_temp.next('30 2 * * *', 'Europe/Paris',
                       (pulser_ops.cron_next('30 2 * * *', 'Europe/Paris', '2026-10-24 12:00Z'))::text),
  '2026-10-26 Mon 02:30', 'a wall time the clock repeats runs once');

-- ---------------------------------------------------------------------------------------------
-- What cannot be read or never matches: PO400, naming the problem
-- ---------------------------------------------------------------------------------------------

select throws_ok($$select pulser_ops.cron_next('* * *', 'UTC', now())$$, 'PO400',
  'cron: expected 5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly; got "* * *"',
  'three fields');
select throws_ok($$select pulser_ops.cron_next('61 * * * *', 'UTC', now())$$, 'PO400',
  'cron: the minute field allows 0 to 59 (got "61")', 'a minute out of range');
select throws_ok($$select pulser_ops.cron_next('*/0 * * * *', 'UTC', now())$$, 'PO400',
  'cron: the minute field allows 0 to 59 (got "*/0")', 'a step of 0');
select throws_ok($$select pulser_ops.cron_next('0 0 * foo *', 'UTC', now())$$, 'PO400',
  'cron: the month field has an unknown name in "foo"', 'an unknown month');
select throws_ok($$select pulser_ops.cron_next('0 0 * * 1;drop', 'UTC', now())$$, 'PO400',
  'cron: the day-of-week field cannot be read at "1;drop"', 'junk');
select throws_ok($$select pulser_ops.cron_next(repeat('* ', 200), 'UTC', now())$$, 'PO400',
  'cron: required, at most 200 characters', 'too long to be a cron expression (the error does not repeat it)');
select throws_ok($$select pulser_ops.cron_next('0 0 30 2 *', 'UTC', now())$$, 'PO400',
  'cron: "0 0 30 2 *" names no time that exists', 'the 30th of February');
select throws_ok($$select pulser_ops.cron_next('@daily', 'Mars/Olympus', now())$$, 'PO400',
  'timezone: unknown time zone "Mars/Olympus"', 'an unknown time zone');
select is((select count(*)::int from public.preview_schedule('*/5 * * * *', 'UTC', 12)), 12, 'a preview of 12 times');
select ok((select bool_and(t.due_at > now()) and count(distinct t.due_at) = 3 from public.preview_schedule('@hourly', 'UTC', 3) t),
  'previewed times are in the future and distinct');

-- ---------------------------------------------------------------------------------------------
-- Firing
-- ---------------------------------------------------------------------------------------------

select public.upsert_template('{"name": "t-sched", "default_lane": "C", "max_attempts": 1,
  "params_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}'::jsonb);
select public.upsert_schedule('{"name": "every-minute", "template": "t-sched", "cron": "* * * * *",
  "params": {"n": 1}, "priority": 5}'::jsonb);
select ok((select next_run_at > now() and next_run_at <= now() + interval '1 minute' from public.run_schedules
           where name = 'every-minute'), 'a new schedule is due at its next time from now');
select is((select count(*)::int from public.enqueue_due_schedules()), 0, 'nothing is due yet');

-- due three times over (no sweeper ran for three minutes): it fires once, for the oldest time
update public.run_schedules set next_run_at = date_trunc('minute', now()) - interval '3 minutes'
 where name = 'every-minute';
create temp table fired as select * from public.enqueue_due_schedules();
select is((select count(*)::int from fired), 1, 'one run for a schedule that was due three times');
select is((select error from fired), null, 'without an error');
select is((select concat_ws(' ', template, lane, priority, params ->> 'n', idempotency_key)
            from public.runs r join fired f on f.run_id = r.id),
  't-sched C 5 1 schedule:every-minute:' || to_char((select due_at from fired) at time zone 'UTC',
                                                     'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  'the run has the schedule''s template, lane, priority, params and a key of its due time');
select ok((select next_run_at > now() and last_run_at = (select due_at from fired)
                  and last_run_id = (select run_id from fired) from public.run_schedules
           where name = 'every-minute'), 'the schedule counts from now, and remembers its last run');
select is((select count(*)::int from public.enqueue_due_schedules()), 0, 'and is not due again');

-- the same due time again (a lost reply, retried): the same run, not a second one
update public.run_schedules set next_run_at = (select due_at from fired) where name = 'every-minute';
select is((select run_id from public.enqueue_due_schedules()), (select run_id from fired),
  'a due time fires one run, however often it is called');

-- a template change that its params no longer fit: the error is kept, the schedule moves on
select public.upsert_template('{"name": "t-sched", "default_lane": "C", "max_attempts": 1,
  "params_schema": {"type": "object", "properties": {"n": {"type": "string"}}}}'::jsonb);
update public.run_schedules set next_run_at = now() - interval '1 minute' where name = 'every-minute';
select matches((select error from public.enqueue_due_schedules()), '^invalid params for template t-sched',
  'a run that cannot be enqueued is an error on the schedule');
select ok((select last_error like 'invalid params%' and next_run_at > now() from public.run_schedules
           where name = 'every-minute'), '... which is kept, and the schedule moves on');

-- paused: not fired; resumed: from now, the missed times are not made up
select public.set_schedule_enabled('every-minute', false);
update public.run_schedules set next_run_at = now() - interval '1 hour' where name = 'every-minute';
select is((select count(*)::int from public.enqueue_due_schedules()), 0, 'a paused schedule does not fire');
select public.set_schedule_enabled('every-minute', true);
select ok((select next_run_at > now() from public.run_schedules where name = 'every-minute'),
  'resumed, it counts from now');

delete from public.runs where template = 't-sched';
select throws_ok($$select public.delete_template('t-sched')$$, 'PO409',
  'template t-sched has schedules (every-minute); delete them first', 'a template with schedules is kept');

select * from finish();
rollback;
