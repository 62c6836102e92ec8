-- The run state machine: transitions, terminal guards, fencing, idempotency, lanes, retries,
-- release and the sweeper. Runs as the service role (a superuser connection, as a worker would).
begin;
select * from no_plan();

select public.upsert_template('{"name": "t-sm", "default_lane": "B", "max_attempts": 2,
  "retry_backoff_seconds": 10, "retry_backoff_max_seconds": 40, "retry_jitter": 0,
  "non_retryable_errors": ["ConfigError"],
  "params_schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                    "tag": {"type": "string", "default": "x"}}, "required": ["n"],
                    "additionalProperties": false}}'::jsonb);
-- Park every lane but B so claims below only see this test's runs.
update public.lanes set paused = (id <> 'B');

-- Enqueue ------------------------------------------------------------------------------------
create temp table r1 as select * from public.enqueue_run('t-sm', '{"n": 1}');
select is((select status from r1), 'queued', 'enqueue: a new run is queued');
select is((select lane from r1), 'B', 'enqueue: lane defaults from the template');
select is((select params from r1), '{"n": 1, "tag": "x"}'::jsonb, 'enqueue: schema defaults fill params');
select is((select attempt from r1), 0, 'enqueue: attempt starts at 0');
select is((select max_attempts from r1), 2, 'enqueue: max_attempts from the template');
select throws_ok($$select public.enqueue_run('t-sm', '{"n": "one"}')$$, 'PO422',
  'invalid params for template t-sm: params.n: expected integer, got string',
  'enqueue: params are checked against the schema, naming the field');
select throws_ok($$select public.enqueue_run('t-sm', '{}')$$, 'PO422',
  'invalid params for template t-sm: params.n: is required', 'enqueue: required params');
select throws_ok($$select public.enqueue_run('t-sm', '{"n": 1, "x": 2}')$$, 'PO422',
  'invalid params for template t-sm: params.x: is not allowed (the schema has no such property)',
  'enqueue: additionalProperties false');
select throws_ok($$select public.enqueue_run('nope')$$, 'PO404', 'unknown template nope',
  'enqueue: unknown template');
select throws_ok($$select public.enqueue_run('t-sm', '{"n": 1}', lane => 'E')$$, 'PO400', null,
  'enqueue: unknown lane');
select throws_ok($$select public.enqueue_run('t-sm', '{"n": 1}', priority => 101)$$, 'PO400', null,
  'enqueue: priority out of range');

-- Idempotent enqueue
create temp table k1 as select * from public.enqueue_run('t-sm', '{"n": 2}', idempotency_key => 'key-1');
select is((select id from public.enqueue_run('t-sm', '{"n": 2}', idempotency_key => 'key-1')),
  (select id from k1), 'enqueue: the same idempotency key returns the same run');
select is((select count(*)::int from public.runs where idempotency_key = 'key-1'), 1,
  'enqueue: never a second run for a key');
select throws_ok($$select public.enqueue_run('t-sm', '{"n": 3}', idempotency_key => 'key-1')$$,
  'PO409', null, 'enqueue: the same key with other params is a conflict');
select is((select count(distinct id)::int from public.enqueue_runs(
  '[{"template": "t-sm", "params": {"n": 5}, "idempotency_key": "key-2"},
    {"template": "t-sm", "params": {"n": 5}, "idempotency_key": "key-2"}]')), 1,
  'enqueue_runs: a key repeated inside one batch gives one run');
select throws_ok($$select public.enqueue_runs('[{"template": "t-sm", "params": {"n": 1}}, {"template": "t-sm", "params": {"n": 0}}]')$$,
  'PO422', null, 'enqueue_runs: one bad item rejects the batch');
select is((select count(*)::int from public.runs where params ->> 'n' = '0'), 0,
  'enqueue_runs: ...and nothing of it is written');
delete from public.runs where template = 't-sm' and id not in (select id from r1);

-- Claim ----------------------------------------------------------------------------------------
create temp table c1 as select * from public.claim_runs('w1', '{B}', 5, 30);
select is((select count(*)::int from c1), 1, 'claim: claims the queued run');
select is((select status from c1), 'running', 'claim: running');
select is((select attempt from c1), 1, 'claim: bumps attempt');
select is((select worker_id from c1), 'w1', 'claim: records the worker');
select ok((select lease_expires_at between now() + interval '29 s' and now() + interval '31 s' from c1),
  'claim: sets the lease');
select is((select kind from public.run_events where run_id = (select id from r1) order by seq limit 1),
  'claimed', 'claim: records the claim event in the same statement');
select is((select count(*)::int from public.claim_runs('w2', '{B}', 5, 30)), 0,
  'claim: a running run is not claimed again');

-- Heartbeat fencing
select is((select cancel_requested from public.heartbeat_run((select id from r1), 'w1', 1)), false,
  'heartbeat: the lease holder extends the lease');
select throws_ok(format($$select public.heartbeat_run(%L, 'w2', 1)$$, (select id from r1)),
  'PO410', null, 'heartbeat: another worker gets lease lost');
select throws_ok(format($$select public.heartbeat_run(%L, 'w1', 7)$$, (select id from r1)),
  'PO410', null, 'heartbeat: a stale attempt gets lease lost');
select throws_ok($$select public.heartbeat_run(gen_random_uuid(), 'w1', 1)$$, 'PO404', null,
  'heartbeat: unknown run');
select results_eq(format($$select ok from public.heartbeat_runs('w1', '[{"run_id": "%s", "attempt": 1}, {"run_id": "%s", "attempt": 1}]')$$,
  (select id from r1), gen_random_uuid()), $$values (true), (false)$$,
  'heartbeat_runs: the batch form reports each run');

-- Cancel a running run: requested, learnt at the next heartbeat
select is((select status from public.cancel_run((select id from r1), 'enough')), 'running',
  'cancel: a running run keeps running until its worker stops');
select is((select cancel_requested from public.heartbeat_run((select id from r1), 'w1', 1)), true,
  'cancel: the worker learns of it at its next heartbeat');
select throws_ok(format($$select public.complete_run(%L, 'w2', 1, 'cancelled')$$, (select id from r1)),
  'PO410', null, 'complete: fenced against other workers');
select is((select status from public.complete_run((select id from r1), 'w1', 1, 'cancelled')),
  'cancelled', 'complete: the worker confirms the cancellation');
select isnt((select finished_at from public.runs where id = (select id from r1)), null,
  'terminal runs have finished_at');
select throws_ok(format($$select public.cancel_run(%L)$$, (select id from r1)), 'PO411', null,
  'cancel: a terminal run gets already terminal');
select throws_ok(format($$update public.runs set status = 'queued' where id = %L$$, (select id from r1)),
  'PO411', null, 'terminal states never change, even by direct update');
select throws_ok(format($$select public.heartbeat_run(%L, 'w1', 1)$$, (select id from r1)),
  'PO410', null, 'heartbeat after the end: lease lost');

-- Cancel a queued run: at once
create temp table q2 as select * from public.enqueue_run('t-sm', '{"n": 2}');
select is((select status from public.cancel_run((select id from q2))), 'cancelled',
  'cancel: a queued run is cancelled at once');
select throws_ok(format($$update public.runs set status = 'running' where id = %L$$, (select id from q2)),
  'PO411', null, 'cancelled is terminal');
create temp table q3 as select * from public.enqueue_run('t-sm', '{"n": 22}');
select throws_ok(format($$update public.runs set status = 'succeeded', finished_at = now() where id = %L$$, (select id from q3)),
  'PO400', null, 'a queued run cannot jump to succeeded, even by direct update');
select throws_ok(format($$update public.runs set status = 'failed', finished_at = now() where id = %L$$, (select id from q3)),
  'PO400', null, 'a queued run cannot jump to failed, even by direct update');
update public.runs set cancel_reason = 'checked' where id = (select id from q3);
select is((select version from public.runs where id = (select id from q3)), (select version + 1 from q3),
  'an update that does not bump version gets it bumped');
select is((select status from public.cancel_run((select id from q3))), 'cancelled', 'q3 is out of the way');

-- Complete: success, idempotent repeat, retry with backoff, non-retryable, attempts exhausted
create temp table s1 as select * from public.enqueue_run('t-sm', '{"n": 3}');
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select is((select status from public.complete_run((select id from s1), 'w1', 1, 'succeeded', '{"ok": true}')),
  'succeeded', 'complete: succeeded');
select is((select status from public.complete_run((select id from s1), 'w1', 1, 'succeeded', '{"ok": true}')),
  'succeeded', 'complete: the same completion again is idempotent');
select throws_ok(format($$select public.complete_run(%L, 'w1', 1, 'failed')$$, (select id from s1)),
  'PO410', null, 'complete: a different completion of a finished run is refused');
select throws_ok(format($$select public.complete_run(%L, 'w1', 1, 'bogus')$$, (select id from s1)),
  'PO400', null, 'complete: unknown status');

create temp table f1 as select * from public.enqueue_run('t-sm', '{"n": 4}');
select 1 from public.claim_runs('w1', '{B}', 1, 30);
create temp table f1a as select * from public.complete_run((select id from f1), 'w1', 1, 'failed', error => 'boom');
select is((select status from f1a), 'queued', 'retry: a failure with attempts left goes back to queued');
select ok((select available_at between now() + interval '9.9 s' and now() + interval '10.1 s' from f1a),
  'retry: first backoff is the template base (10 s, no jitter)');
select is((select count(*)::int from public.claim_runs('w1', '{B}', 1, 30)), 0,
  'retry: not claimable before its backoff');
update public.runs set available_at = now() - interval '1 s' where id = (select id from f1);
select is((select attempt from public.claim_runs('w1', '{B}', 1, 30)), 2, 'retry: second attempt');
select is((select status from public.complete_run((select id from f1), 'w1', 2, 'failed', error => 'boom again')),
  'failed', 'retry: the last attempt fails for good');
select is((select error from public.runs where id = (select id from f1)), 'boom again', 'failed runs keep the error');

create temp table n1 as select * from public.enqueue_run('t-sm', '{"n": 5}');
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select is((select status from public.complete_run((select id from n1), 'w1', 1, 'failed',
  error => 'bad config', error_class => 'ConfigError')), 'failed',
  'retry: a non-retryable error class fails at once');
create temp table n2 as select * from public.enqueue_run('t-sm', '{"n": 6}');
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select is((select status from public.complete_run((select id from n2), 'w1', 1, 'failed',
  error => 'nope', retryable => false)), 'failed', 'retry: retryable => false fails at once');

-- Backoff grows exponentially up to the cap
create temp table b1 as select * from public.enqueue_run('t-sm', '{"n": 7}', max_attempts => 5);
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select ok((select available_at - now() between interval '9.9 s' and interval '10.1 s'
           from public.complete_run((select id from b1), 'w1', 1, 'failed')), 'backoff 1: 10 s');
update public.runs set available_at = now() where id = (select id from b1);
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select ok((select available_at - now() between interval '19.9 s' and interval '20.1 s'
           from public.complete_run((select id from b1), 'w1', 2, 'failed')), 'backoff 2: 20 s');
update public.runs set available_at = now() where id = (select id from b1);
select 1 from public.claim_runs('w1', '{B}', 1, 30);
update public.runs set available_at = now() where id = (select id from b1);
select ok((select available_at - now() between interval '39.9 s' and interval '40.1 s'
           from public.complete_run((select id from b1), 'w1', 3, 'failed')), 'backoff 3: capped at 40 s');
update public.runs set status = 'cancelled', finished_at = now() where id = (select id from b1);

-- Release: back to the queue without using up an attempt
create temp table rl as select * from public.enqueue_run('t-sm', '{"n": 8}');
select 1 from public.claim_runs('w1', '{B}', 1, 30);
select throws_ok(format($$select public.release_run(%L, 'w2', 1)$$, (select id from rl)), 'PO410', null,
  'release: fenced');
select results_eq(format($$select status, attempt from public.release_run(%L, 'w1', 1, 'shutting down')$$, (select id from rl)),
  $$values ('queued'::text, 0)$$, 'release: queued again, attempt given back');
select is((select attempt from public.claim_runs('w2', '{B}', 1, 30)), 1, 'release: the next claim is attempt 1 again');
update public.runs set status = 'cancelled', finished_at = now(), lease_expires_at = null where id = (select id from rl);

-- Priority then age
create temp table p_low as select * from public.enqueue_run('t-sm', '{"n": 1}', priority => -5);
create temp table p_old as select * from public.enqueue_run('t-sm', '{"n": 1}');
create temp table p_high as select * from public.enqueue_run('t-sm', '{"n": 1}', priority => 50);
update public.runs set created_at = created_at - interval '1 minute' where id = (select id from p_old);
create temp table p_new as select * from public.enqueue_run('t-sm', '{"n": 1}');
select results_eq($$select id from public.claim_runs('w1', '{B}', 4, 30)$$,
  $$select id from p_high union all select id from p_old union all select id from p_new union all select id from p_low$$,
  'claim: priority first, then age');
update public.runs set status = 'cancelled', finished_at = now(), lease_expires_at = null
 where template = 't-sm' and status = 'running';

-- run_after
create temp table later as select * from public.enqueue_run('t-sm', '{"n": 1}', run_after => now() + interval '1 hour');
select is((select count(*)::int from public.claim_runs('w1', '{B}', 5, 30)), 0, 'run_after: not before its time');
update public.runs set status = 'cancelled', finished_at = now() where id = (select id from later);

-- Lanes: paused and concurrency ---------------------------------------------------------------
select public.set_lane('B', paused => true);
create temp table lp as select * from public.enqueue_runs('[{"template": "t-sm", "params": {"n": 1}},
  {"template": "t-sm", "params": {"n": 1}}, {"template": "t-sm", "params": {"n": 1}}]');
select is((select count(*)::int from public.claim_runs('w1', '{B}', 5, 30)), 0, 'lanes: a paused lane gives nothing');
select public.set_lane('B', paused => false, max_running => 2);
select is((select count(*)::int from public.claim_runs('w1', '{B}', 5, 30)), 2, 'lanes: max_running caps a claim');
select is((select count(*)::int from public.claim_runs('w2', '{B}', 5, 30)), 0, 'lanes: ...and the next claimer');
select throws_ok($$select public.set_lane('B', max_running => 0)$$, 'PO400', null, 'lanes: max_running must be positive');
select throws_ok($$select public.set_lane('Z', paused => true)$$, 'PO404', null, 'lanes: unknown lane');
select public.set_lane('B', clear_max_running => true);
select is((select count(*)::int from public.claim_runs('w2', '{B}', 5, 30)), 1, 'lanes: cleared cap');

-- Sweeper --------------------------------------------------------------------------------------
-- lp's runs: two on attempt 1 of w1, one on attempt 1 of w2. Expire w1's and give one max 1.
update public.runs set lease_expires_at = now() - interval '1 s'
 where id in (select id from lp) and worker_id = 'w1';
update public.runs set max_attempts = 1
 where id = (select id from public.runs where id in (select id from lp) and worker_id = 'w1' order by id limit 1);
create temp table sw as select * from public.sweep_expired_runs(100);
select is((select count(*)::int from sw), 2, 'sweep: takes the expired runs only');
select is((select count(*)::int from sw where action = 'failed'), 1, 'sweep: fails a run on its last attempt');
select is((select count(*)::int from sw where action = 'requeued'), 1, 'sweep: requeues a run with attempts left');
select is((select status from public.runs where id = (select run_id from sw where action = 'failed')),
  'failed', 'sweep: failed is terminal');
select is((select error_class from public.runs where id = (select run_id from sw where action = 'failed')),
  'lease_expired', 'sweep: failed with a clear error class');
select is((select sweep_count from public.runs where id = (select run_id from sw where action = 'requeued')),
  1, 'sweep: counts sweeps');
select is((select kind from public.run_events where run_id = (select run_id from sw where action = 'requeued')
           order by seq desc limit 1), 'swept', 'sweep: writes an event');
select throws_ok(format($$select public.heartbeat_run(%L, 'w1', 1)$$, (select run_id from sw where action = 'requeued')),
  'PO410', null, 'sweep: the old worker can no longer heartbeat');
select throws_ok(format($$select public.complete_run(%L, 'w1', 1, 'succeeded')$$, (select run_id from sw where action = 'requeued')),
  'PO410', null, 'sweep: ...nor complete');
select is((select count(*)::int from public.sweep_expired_runs(100)), 0, 'sweep: nothing left; a live lease is not swept');
-- A lease that expires in the future is not touched; one that just expired is.
update public.runs set lease_expires_at = now() + interval '1 ms' where id in (select id from lp) and status = 'running';
select is((select count(*)::int from public.sweep_expired_runs(100)), 0, 'sweep: just under the lease: kept');
update public.runs set lease_expires_at = now() - interval '1 ms' where id in (select id from lp) and status = 'running';
select is((select count(*)::int from public.sweep_expired_runs(100)), 1, 'sweep: just over the lease: swept');

-- A cancel requested before the worker died ends cancelled, not requeued
create temp table cx as select * from public.enqueue_run('t-sm', '{"n": 1}');
update public.runs set status = 'cancelled', finished_at = now() where status = 'queued' and template = 't-sm' and id <> (select id from cx);
select 1 from public.claim_runs('w9', '{B}', 1, 30);
select public.cancel_run((select id from cx));
update public.runs set lease_expires_at = now() - interval '1 s' where id = (select id from cx);
select is((select action from public.sweep_expired_runs(100)), 'cancelled', 'sweep: a run with a cancel request ends cancelled');

-- Events: per-run monotonic seq ---------------------------------------------------------------
select results_eq(format($$select seq from public.append_run_events('[{"run_id": "%1$s", "kind": "log", "message": "a"}, {"run_id": "%1$s", "kind": "log", "message": "b"}]') order by seq$$, (select id from cx)),
  format($$select s::bigint from generate_series((select max(seq) from public.run_events where run_id = %L and kind <> 'log') + 1, (select max(seq) from public.run_events where run_id = %L and kind <> 'log') + 2) s$$, (select id from cx), (select id from cx)),
  'events: seq continues per run, gap-free');
select throws_ok($$select public.append_run_events('[{"run_id": "00000000-0000-0000-0000-000000000001", "kind": "log"}]')$$,
  'PO404', null, 'events: unknown run');
select throws_ok(format($$select public.append_run_events('[{"run_id": "%s", "kind": "Bad Kind"}]')$$, (select id from cx)),
  'PO400', null, 'events: bad kind');

-- Artifacts ------------------------------------------------------------------------------------
select is((select size_bytes from public.put_artifact((select id from cx), 'logs/out.txt', inline_text => 'abc')),
  3::bigint, 'artifact: inline text');
select throws_ok(format($$select public.put_artifact(%L, '../etc/passwd', inline_text => 'x')$$, (select id from cx)),
  'PO400', null, 'artifact: path traversal refused');
select throws_ok(format($$select public.put_artifact(%L, '/abs', inline_text => 'x')$$, (select id from cx)),
  'PO400', null, 'artifact: absolute path refused');
select throws_ok(format($$select public.put_artifact(%L, 'big.txt', inline_text => repeat('x', 65537))$$, (select id from cx)),
  'PO400', null, 'artifact: inline text over 64 KiB refused');
select throws_ok(format($$select public.put_artifact(%L, 'f.bin', storage_path => 'other/f.bin')$$, (select id from cx)),
  'PO400', null, 'artifact: storage path must be <run id>/<name>');
select is((select storage_bucket from public.put_artifact((select id from cx), 'f.bin',
  storage_path => (select id from cx)::text || '/f.bin', size_bytes => 10)), 'run-artifacts',
  'artifact: a file in Storage');

-- Targeted deletion ---------------------------------------------------------------------------
create temp table del as select * from public.enqueue_run('t-sm', '{"n": 1}');
select throws_ok(format($$select * from public.delete_runs(array[%L::uuid])$$, (select id from del)), 'PO409', null,
  'delete_runs: an unfinished run is refused');
select public.cancel_run((select id from del));
select public.append_run_events(jsonb_build_array(jsonb_build_object('run_id', (select id from del), 'kind', 'note')));
select is((select count(*)::int from public.delete_runs(array[(select id from del)])), 1, 'delete_runs: deletes a finished run');
select is((select count(*)::int from public.run_events where run_id = (select id from del)), 0, 'delete_runs: its events go with it');

-- Templates --------------------------------------------------------------------------------------
select throws_ok($$select public.upsert_template('{"name": "bad", "params_schema": {"type": "object", "requried": ["x"]}}')$$,
  'PO400', 'template.params_schema: unsupported keyword "requried"', 'template: schema typos are caught');
select throws_ok($$select public.upsert_template('{"name": "bad", "steps": [{"kind": "teleport"}]}')$$,
  'PO400', null, 'template: unknown step kind');
select throws_ok($$select public.upsert_template('{"name": "Bad Name"}')$$, 'PO400', null, 'template: bad name');

select * from finish();
rollback;
