-- The batched hot path: complete_runs fences each run on its own and shares complete_run's retry
-- rules; claims hand out each run once; every writer numbers a run's events 1, 2, 3, ...
begin;
select * from no_plan();

select public.upsert_template('{"name": "t-batch", "default_lane": "C", "max_attempts": 2,
  "retry_backoff_seconds": 10, "retry_backoff_max_seconds": 40, "retry_jitter": 0,
  "non_retryable_errors": ["ConfigError"]}'::jsonb);
update public.lanes set paused = (id <> 'C');

select public.enqueue_runs((select jsonb_agg(jsonb_build_object('template', 't-batch', 'priority', g))
                            from generate_series(1, 6) g));
create temp table c1 as select * from public.claim_runs('wb', '{C}', 5);
select is((select count(*)::int from c1), 5, 'claim: a batch of five');
select is((select array_agg(priority order by priority desc) from c1), array[6, 5, 4, 3, 2],
  'claim: highest priority first');
select is((select count(*)::int from public.claim_runs('wb2', '{C}', 5)), 1,
  'claim: a second claimer gets only what is left');
create temp table p as select id, priority from c1;

create temp table res as
select * from public.complete_runs('wb', (select jsonb_agg(x) from (
  select jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'succeeded', 'result', '{"ok": 1}'::jsonb) x
    from p where priority = 6
  union all
  select jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'failed', 'error', 'boom') from p where priority = 5
  union all
  select jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'failed', 'error', 'bad config',
                            'error_class', 'ConfigError') from p where priority = 4
  union all
  select jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'failed', 'retryable', false) from p where priority = 3
  union all
  select jsonb_build_object('run_id', id, 'attempt', 2, 'status', 'succeeded') from p where priority = 2
  union all
  select jsonb_build_object('run_id', '00000000-0000-0000-0000-00000000dead', 'attempt', 1, 'status', 'succeeded')
) s));

select results_eq($$select r.ok, r.status, r.retry_at is not null from res r join p on p.id = r.run_id
                    order by p.priority desc$$,
  $$values (true, 'succeeded', false), (true, 'queued', true), (true, 'failed', false),
           (true, 'failed', false), (false, 'running', false)$$,
  'complete_runs: succeeded, retried, final by error class, final by retryable = false, fenced');
select results_eq($$select status, worker_id, error, error_class, result from public.runs join p using (id)
                    order by p.priority desc$$,
  $$values ('succeeded', 'wb', null::text, null::text, '{"ok": 1}'::jsonb),
           ('queued', null, 'boom', null, null),
           ('failed', 'wb', 'bad config', 'ConfigError', null),
           ('failed', 'wb', null, null, null),
           ('running', 'wb', null, null, null)$$,
  'complete_runs: the rows say the same');
select is((select available_at - updated_at from public.runs join p using (id) where p.priority = 5),
  interval '10 seconds', 'complete_runs: the first retry waits the template''s backoff');
select is((select detail from res where run_id = '00000000-0000-0000-0000-00000000dead'),
  'run 00000000-0000-0000-0000-00000000dead not found', 'complete_runs: an unknown run is named');
select is((select detail from res r join p on p.id = r.run_id where p.priority = 2),
  'lease lost: it is running (worker wb, attempt 1)', 'complete_runs: a stale attempt is fenced');
select results_eq($$select e.kind, e.level, e.message from public.run_events e join p on p.id = e.run_id
                    where e.kind <> 'claimed' order by p.priority desc, e.seq$$,
  $$values ('succeeded', 'info', 'succeeded on attempt 1'),
           ('retry_scheduled', 'warn', 'attempt 1 of 2 failed; retry in 10.0s: boom'),
           ('failed', 'error', 'failed on attempt 1 of 2 (not retryable): bad config'),
           ('failed', 'error', 'failed on attempt 1 of 2 (not retryable): no error message')$$,
  'complete_runs: one event per completed run, worded as complete_run words them');
select is((select count(*)::int from public.run_events e join p on p.id = e.run_id),
  9, 'complete_runs: no event for the fenced run');

-- The same completion again: ok, no second event.
select is((select ok from public.complete_runs('wb', (select jsonb_build_array(jsonb_build_object(
  'run_id', id, 'attempt', 1, 'status', 'succeeded')) from p where priority = 6))), true,
  'complete_runs: a repeated completion is ok');
select is((select count(*)::int from public.run_events e join p on p.id = e.run_id where p.priority = 6),
  2, 'complete_runs: and writes nothing more');

-- complete_run is the same code for one run.
select throws_ok($$select public.complete_run((select id from p where priority = 2), 'wb', 2, 'succeeded')$$,
  'PO410', null, 'complete_run: a stale attempt is refused');
select throws_ok($$select public.complete_run('00000000-0000-0000-0000-00000000dead', 'wb', 1, 'succeeded')$$,
  'PO404', 'run 00000000-0000-0000-0000-00000000dead not found', 'complete_run: unknown run');
select throws_ok($$select public.complete_run((select id from p where priority = 2), 'wb', 1, 'done')$$,
  'PO400', 'status: must be succeeded, failed or cancelled (got done)', 'complete_run: bad status');

-- Bad batches change nothing.
select throws_ok($$select public.complete_runs('wb', '{"run_id": 1}')$$, 'PO400',
  'runs: expected an array of {"run_id", "attempt", "status", ...}', 'complete_runs: not an array');
select throws_ok($$select public.complete_runs('wb', (select jsonb_build_array(
  jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'succeeded'),
  jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'failed')) from p where priority = 2))$$,
  'PO400', 'runs: run ' || (select id from p where priority = 2) || ' appears more than once',
  'complete_runs: a run twice in one batch');
select throws_ok($$select public.complete_runs('wb', (select jsonb_build_array(
  jsonb_build_object('run_id', id, 'attempt', 1, 'status', 'succeeded'), '"x"'::jsonb) from p where priority = 2))$$,
  'PO400', 'runs[1]: expected an object', 'complete_runs: the bad item is named by position');
select throws_ok($$select public.complete_runs('', '[]')$$, 'PO400',
  'worker_id: must be 1 to 200 characters', 'complete_runs: worker id');
select throws_ok($$select public.complete_runs('wb', (select jsonb_agg(jsonb_build_object(
  'run_id', gen_random_uuid(), 'attempt', 1, 'status', 'succeeded')) from generate_series(1, 1001)))$$,
  'PO400', 'runs: at most 1000 per call (got 1001)', 'complete_runs: batch size');
select is((select status from public.runs join p using (id) where p.priority = 2), 'running',
  'complete_runs: after all those, the run is untouched');

-- Step rows may come with a completion: written with it, and only if it is recorded.
select public.enqueue_runs('[{"template": "t-batch"}, {"template": "t-batch"}]');
create temp table c2 as select * from public.claim_runs('ws', '{C}', 2);
select is((select count(*)::int from c2), 2, 'steps: two more runs claimed');
create temp table res2 as
select * from public.complete_runs('ws', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', case when rn = 1 then 1 else 9 end, 'status', 'succeeded',
  'steps', '[{"idx": 0, "name": "only", "kind": "python", "status": "succeeded", "exit_code": 0}]'::jsonb))
  from (select id, row_number() over (order by id) rn from c2) z));
select is((select count(*)::int from res2 where ok), 1, 'steps: one completion recorded, one fenced');
select results_eq($$select s.run_id, s.attempt, s.idx, s.status, s.exit_code, s.finished_at is not null
                    from public.run_steps s join c2 on c2.id = s.run_id$$,
  $$select run_id, 1, 0, 'succeeded', 0, true from res2 where ok$$,
  'steps: the completed run has its step row, the fenced one none');
select throws_ok($$select public.complete_runs('ws', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', 1, 'status', 'succeeded', 'steps', '[{"idx": 0, "name": "x", "kind": "bash", "status": "succeeded"}]'::jsonb)) from c2))$$,
  'PO400', null, 'steps: a bad step row fails the batch');

-- A step row may carry its start time; a malformed one fails the whole call.
select throws_ok($$select public.complete_runs('ws', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', 1, 'status', 'succeeded', 'steps',
  '[{"idx": 0, "name": "x", "kind": "python", "status": "succeeded", "started_at": "soon"}]'::jsonb)) from c2))$$,
  '22007', null, 'steps: a malformed started_at fails the batch');

-- A completion may carry the run's last events: written before its terminal event, only when
-- the completion is recorded now (not for a fenced one, not again for a repeated one).
select public.enqueue_runs('[{"template": "t-batch"}, {"template": "t-batch"}]');
create temp table c3 as select * from public.claim_runs('wv', '{C}', 2);
select is((select count(*)::int from c3), 2, 'carried events: two more runs claimed');
create temp table res3 as
select * from public.complete_runs('wv', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', case when rn = 1 then 1 else 9 end, 'status', 'succeeded',
  'events', '[{"kind": "step", "message": "started"}, {"kind": "log", "level": "warn", "message": "hot", "data": {"t": 1}}]'::jsonb))
  from (select id, row_number() over (order by id) rn from c3) z));
select is((select count(*)::int from res3 where ok), 1, 'carried events: one completion recorded, one fenced');
select results_eq($$select e.seq, e.kind, e.level, e.message, e.data, e.attempt, e.worker_id
                    from public.run_events e where e.run_id = (select run_id from res3 where ok) and e.seq > 1
                    order by e.seq$$,
  $$values (2::bigint, 'step', 'info', 'started', null::jsonb, 1, 'wv'),
           (3, 'log', 'warn', 'hot', '{"t": 1}', 1, 'wv'),
           (4, 'succeeded', 'info', 'succeeded on attempt 1', '{"error_class": null}', 1, 'wv')$$,
  'carried events: written in order, right before the terminal event, as the completion''s attempt and worker');
select is((select count(*)::int from public.run_events e where e.run_id = (select run_id from res3 where not ok)),
  1, 'carried events: none written for a fenced completion (only its claim event is there)');
select is((select ok from public.complete_runs('wv', (select jsonb_agg(jsonb_build_object(
  'run_id', run_id, 'attempt', 1, 'status', 'succeeded', 'events', '[{"kind": "log", "message": "again"}]'::jsonb))
  from res3 where ok))), true, 'carried events: a repeated completion is still ok');
select is((select count(*)::int from public.run_events e where e.run_id = (select run_id from res3 where ok)),
  4, 'carried events: a repeated completion writes them no second time');
select throws_ok($$select public.complete_runs('wv', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', 1, 'status', 'succeeded', 'events', '[{"kind": "ok"}, {"kind": "Bad"}]'::jsonb)) from c3))$$,
  'PO400', 'runs[0].events: event 1: kind ''Bad'' must match [a-z][a-z0-9_.]*',
  'carried events: a bad kind fails the batch, named by completion and position');
select throws_ok($$select public.complete_runs('wv', (select jsonb_agg(jsonb_build_object(
  'run_id', id, 'attempt', 1, 'status', 'succeeded', 'events', '{"kind": "log"}'::jsonb)) from c3))$$,
  'PO400', 'runs[0].events: expected an array of events', 'carried events: must be an array');
select throws_ok($$select public.complete_runs('wv', jsonb_build_array(jsonb_build_object(
  'run_id', gen_random_uuid(), 'attempt', 1, 'status', 'succeeded',
  'events', (select jsonb_agg(jsonb_build_object('kind', 'log')) from generate_series(1, 5001)))))$$,
  'PO400', 'runs: at most 5000 events per call (got 5001)', 'carried events: at most 5000 per call');

-- Event seqs come from the events under the run's row lock (no counter table since the
-- event-seq migration): claim, append, sweep, cancel and complete all continue one sequence.
select is((select count(*)::int from public.append_run_events((select jsonb_agg(jsonb_build_object(
  'run_id', id, 'kind', 'log', 'message', 'line ' || g)) from p, generate_series(1, 2) g))), 10,
  'seqs: two log events appended to each run');
update public.runs set lease_expires_at = now() - interval '1 minute'
 where id in (select id from p) and status = 'running';
select ok((select count(*) > 0 from public.sweep_expired_runs()), 'seqs: something was swept');
select ok((select count(*) > 0 from (select public.cancel_run(id, 'seq test') from public.runs
            where id in (select id from p) and status = 'queued') c), 'seqs: requeued runs cancelled');
select is((select count(*)::int from (
  select e.seq, row_number() over (partition by e.run_id order by e.seq) as n
  from public.run_events e join p on p.id = e.run_id) z where z.seq <> z.n), 0,
  'seqs: every run''s events are numbered 1..n, whoever wrote them');
select results_eq($$select e.kind from public.run_events e
                    where e.run_id = (select id from p where priority = 6) order by e.seq$$,
  $$values ('claimed'), ('succeeded'), ('log'), ('log')$$,
  'seqs: a run''s timeline in the order it happened');
delete from public.runs where id in (select id from p);
select is((select count(*)::int from public.run_events e join p on p.id = e.run_id), 0,
  'events: deleted with their runs');

select * from finish();
rollback;
