-- A batch through the control plane: claim up to 100 runs, complete them all in one call
-- (two autocommit transactions; with -M prepared the batch travels as a parameter).
select coalesce(jsonb_agg(jsonb_build_object('run_id', id, 'attempt', attempt, 'status', 'succeeded')), '[]') as batch
  from public.claim_runs(worker_id => 'pgbench-' || :client_id::text, lanes => '{A}', max_runs => 100) \gset
select count(*) from public.complete_runs(worker_id => 'pgbench-' || :client_id::text, runs => :batch::jsonb);
