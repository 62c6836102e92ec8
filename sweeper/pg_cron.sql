-- pulser-ops sweeper inside the database, with pg_cron: the backstop that needs no runner.
--
-- On Supabase: enable the pg_cron extension (Dashboard > Database > Extensions, or the line
-- below), then run this file once in the SQL editor. It needs pg_cron >= 1.5 for second
-- schedules (Supabase Postgres >= 15.1.1.61); on older pg_cron use '* * * * *' (every minute).
-- The job runs as the role that scheduled it (postgres), which the control plane treats as
-- the service role. Re-running this file replaces the job (cron.schedule upserts by name).

create extension if not exists pg_cron with schema pg_catalog;

select cron.schedule(
  'pulser-ops-sweep',
  '30 seconds',
  $$select count(*) from public.sweep_expired_runs(1000)$$
);

-- pg_cron never cleans cron.job_run_details: keep a week of it.
select cron.schedule(
  'pulser-ops-sweep-history-cleanup',
  '17 3 * * *',
  $$delete from cron.job_run_details where end_time < now() - interval '7 days'$$
);

-- To stop: select cron.unschedule('pulser-ops-sweep');
-- To see recent sweeps: select status, return_message, start_time from cron.job_run_details
--   where jobid = (select jobid from cron.job where jobname = 'pulser-ops-sweep')
--   order by start_time desc limit 20;
