-- pulser-ops sweeper inside the database, with pg_cron: the backstop that needs no runner. It
-- sweeps expired runs every 30 seconds and fires due schedules every minute.
--
-- On Supabase: enable the pg_cron extension (Dashboard > Database > Extensions, or the line
-- below), then run this file once in the SQL editor. It needs pg_cron >= 1.5 for second
-- schedules (Supabase Postgres >= 15.1.1.61); on older pg_cron use '* * * * *' (every minute).
-- The job runs as the role that scheduled it (postgres), which the control plane treats as
-- the service role. Re-running this file replaces the jobs (cron.schedule upserts by name).

create extension if not exists pg_cron with schema pg_catalog;

select cron.schedule(
  'pulser-ops-sweep',
  '30 seconds',
  $$select count(*) from public.sweep_expired_runs(1000)$$
);

-- Recurring runs: enqueue the run of every schedule that is due (up to 100 a minute; each due
-- time once, even beside a sweeper that fires them too). On the minute, as schedules name
-- minutes. A run that cannot be enqueued is kept on its schedule (last_error, shown by
-- `pulser-ops schedules ls`), not failed in the job.
select cron.schedule(
  'pulser-ops-schedules',
  '* * * * *',
  $$select count(*) from public.enqueue_due_schedules(100)$$
);

-- pg_cron never cleans cron.job_run_details: keep a week of it.
select cron.schedule(
  'pulser-ops-sweep-history-cleanup',
  '17 3 * * *',
  $$delete from cron.job_run_details where end_time < now() - interval '7 days'$$
);

-- To stop: select cron.unschedule('pulser-ops-sweep'); select cron.unschedule('pulser-ops-schedules');
-- To see recent sweeps: select status, return_message, start_time from cron.job_run_details
--   where jobid = (select jobid from cron.job where jobname = 'pulser-ops-sweep')
--   order by start_time desc limit 20;
