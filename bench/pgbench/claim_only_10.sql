-- Claim ten runs per call (no completion): what batching amortises of claim_runs' per-call cost.
select count(*) from public.claim_runs(worker_id => 'pgbench-' || :client_id::text, lanes => '{A}', max_runs => 10);
