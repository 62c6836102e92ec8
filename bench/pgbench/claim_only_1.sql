-- Claim one run per call (no completion): the per-call cost of claim_runs.
select count(*) from public.claim_runs(worker_id => 'pgbench-' || :client_id::text, lanes => '{A}', max_runs => 1);
