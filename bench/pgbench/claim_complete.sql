-- One run through the control plane: claim it, complete it (two autocommit transactions).
select id, attempt from public.claim_runs(worker_id => 'pgbench-' || :client_id::text, lanes => '{A}', max_runs => 1) \gset
select 1 from public.complete_run(run_id => :id::uuid, worker_id => 'pgbench-' || :client_id::text, attempt => :attempt::int, status => 'succeeded');
