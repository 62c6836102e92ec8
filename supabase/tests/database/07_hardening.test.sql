-- Issue 20's hardening of the state machine: the claim order within one batch and after a
-- sweep, a resent failure that scheduled a retry, deleting a session, and artifact names (in
-- bytes) with the Storage keys of their files.
begin;
select * from no_plan();

select public.upsert_template('{"name": "t-hard", "default_lane": "A", "max_attempts": 3,
  "retry_backoff_seconds": 0, "retry_backoff_max_seconds": 0, "retry_jitter": 0}'::jsonb);
update public.lanes set paused = (id <> 'A');

-- ---------------------------------------------------------------------------------------------
-- Claim order: first in, first out within one batch, and a swept run keeps its place
-- ---------------------------------------------------------------------------------------------

-- One create_many of 600 runs: they share created_at. 300 of them are claimed one by one and
-- the running ones heartbeat until the table page of the first run is full, so that the first
-- run, swept back to queued, is stored after the rest of its batch: in storage order (the
-- order of equal keys in the index before runs.seq), it would now be claimed last.
create temp table batch as
select r.*, row_number() over () as pos
from public.enqueue_runs((select jsonb_agg(jsonb_build_object('template', 't-hard', 'params',
                                                              jsonb_build_object('n', g)) order by g)
                          from generate_series(1, 600) g)) r;
select is((select count(distinct created_at)::int from batch), 1, 'one batch shares its created_at');
select is((select array_agg((params ->> 'n')::int order by seq) from public.runs where template = 't-hard'),
  (select array_agg(g) from generate_series(1, 600) g), 'seq follows the order of the batch');

create temp table claimed_order (k serial, n int);
do $$
begin
  for i in 1 .. 300 loop
    insert into claimed_order (n)
      select (params ->> 'n')::int from public.claim_runs('w-fifo', '{A}', 1, 60);
  end loop;
end
$$;
select is((select array_agg(n order by k) from claimed_order), (select array_agg(g) from generate_series(1, 300) g),
  'claims take one batch first in, first out');

do $$
begin
  for i in 1 .. 15 loop
    update public.runs set heartbeat_at = clock_timestamp()
     where template = 't-hard' and status = 'running' and params ->> 'n' <> '1';
  end loop;
end
$$;
update public.runs set lease_expires_at = now() - interval '1 second'
 where template = 't-hard' and params ->> 'n' = '1';
select is((select count(*)::int from public.sweep_expired_runs()), 1, 'the first run of the batch is swept back');
select cmp_ok((select ctid from public.runs where template = 't-hard' and params ->> 'n' = '1'), '>',
  (select max(ctid) from public.runs where template = 't-hard' and status = 'queued' and params ->> 'n' <> '1'),
  'the swept run is now stored after the rest of its batch (so storage order would put it last)');
select is((select (params ->> 'n')::int from public.claim_runs('w-fifo', '{A}', 1, 60)), 1,
  'the swept run is claimed next: it went back to its place, at the front');
select is((select array_agg((params ->> 'n')::int order by priority desc, created_at, seq)
             from public.claim_runs('w-fifo', '{A}', 5, 60)), array[301, 302, 303, 304, 305],
  'then the batch goes on where it was');
select is((select array_agg((r.params ->> 'n')::int) from public.claim_runs('w-fifo', '{A}', 5, 60) r),
  array[306, 307, 308, 309, 310], 'a claim of several returns them in claim order');

-- ---------------------------------------------------------------------------------------------
-- A failure that scheduled a retry, sent again (its reply was lost)
-- ---------------------------------------------------------------------------------------------

update public.lanes set paused = (id <> 'B');
create temp table rr as select * from public.enqueue_run('t-hard', lane => 'B');
select is((select id from public.claim_runs('w-r', '{B}', 1, 60)), (select id from rr), 'claimed for the retry case');
create temp table first_reply as
select * from public.complete_runs('w-r', jsonb_build_array(jsonb_build_object(
  'run_id', (select id from rr), 'attempt', 1, 'status', 'failed', 'error', 'boom',
  'events', jsonb_build_array(jsonb_build_object('kind', 'log', 'message', 'last line')))));
select results_eq($$select ok, status from first_reply$$, $$values (true, 'queued'::text)$$,
  'the failure schedules a retry');
create temp table events_then as select count(*) as n from public.run_events where run_id = (select id from rr);

create temp table resent as
select * from public.complete_runs('w-r', jsonb_build_array(jsonb_build_object(
  'run_id', (select id from rr), 'attempt', 1, 'status', 'failed', 'error', 'boom',
  'events', jsonb_build_array(jsonb_build_object('kind', 'log', 'message', 'last line')))));
select results_eq($$select ok, status, retry_at, detail from resent$$,
  $$select ok, status, retry_at, null::text from first_reply$$,
  'the same completion sent again is answered as the first was: ok, queued, the same retry_at');
select is((select count(*) from public.run_events where run_id = (select id from rr)), (select n from events_then),
  'and writes nothing again (not its events, not another retry)');
select is((select status from public.complete_run((select id from rr), 'w-r', 1, 'failed', error => 'boom')), 'queued',
  'complete_run sent again is recorded too (no "lease lost")');

-- The next attempt has claimed it: the resend of attempt 1 is still recognised as recorded.
select is((select attempt from public.claim_runs('w-next', '{B}', 1, 60)), 2, 'another worker claims attempt 2');
select results_eq($$select ok, status from public.complete_runs('w-r', jsonb_build_array(jsonb_build_object(
    'run_id', (select id from rr), 'attempt', 1, 'status', 'failed', 'error', 'boom')))$$,
  $$values (true, 'queued'::text)$$, 'a resend after the next claim is still answered ok');
select results_eq($$select ok, status from public.complete_runs('w-other', jsonb_build_array(jsonb_build_object(
    'run_id', (select id from rr), 'attempt', 1, 'status', 'failed', 'error', 'boom')))$$,
  $$values (false, 'running'::text)$$, 'the same completion from another worker is not recorded (lease lost)');
select results_eq($$select ok from public.complete_runs('w-r', jsonb_build_array(jsonb_build_object(
    'run_id', (select id from rr), 'attempt', 1, 'status', 'succeeded')))$$,
  $$values (false)$$, 'nor a different completion of the same attempt');
select throws_ok(format($$select public.complete_run(%L, 'w-r', 1, 'succeeded')$$, (select id from rr)), 'PO410', null,
  'complete_run of a different outcome is refused as lease lost');
select is((select count(*)::int from public.run_events where run_id = (select id from rr) and kind = 'retry_scheduled'), 1,
  'one retry was scheduled, however often the failure was sent');

-- ---------------------------------------------------------------------------------------------
-- Deleting a session
-- ---------------------------------------------------------------------------------------------

update public.lanes set paused = (id <> 'C');
create temp table sess as select * from public.create_session('to delete');
create temp table sess_runs as
select * from public.enqueue_runs((select jsonb_agg(jsonb_build_object('template', 't-hard', 'lane', 'C',
                                                                       'session_id', (select id from sess)))
                                   from generate_series(1, 3)));
insert into public.spec_docs (session_id, title) values ((select id from sess), 'its doc');
select throws_ok(format($$select public.delete_session(%L)$$, (select id from sess)), 'PO409',
  format('session %s has 3 unfinished run(s); cancel them or let them finish first', (select id from sess)),
  'a session with queued runs is not deleted');
select public.claim_runs('w-s', '{C}', 1, 60);
select public.cancel_run(id) from public.runs where session_id = (select id from sess) and status = 'queued';
select throws_ok(format($$select public.delete_session(%L)$$, (select id from sess)), 'PO409', null,
  'nor one with a running run');
select public.complete_run(id, 'w-s', 1, 'succeeded') from public.runs where session_id = (select id from sess) and status = 'running';
create temp table before_delete as select id, version, status, finished_at from public.runs where session_id = (select id from sess);
select results_eq(format($$select session_id, runs_detached, spec_docs_deleted from public.delete_session(%L)$$, (select id from sess)),
  $$values ((select id from sess), 3, 1)$$, 'a session whose runs all finished is deleted');
select is((select count(*)::int from public.sessions where id = (select id from sess)), 0, 'the session is gone');
select is((select count(*)::int from public.spec_docs where title = 'its doc'), 0, 'its spec docs went with it');
select results_eq($$select r.id, r.session_id, r.status, r.finished_at from public.runs r join before_delete b using (id) order by id$$,
  $$select id, null::uuid, status, finished_at from before_delete order by id$$,
  'its runs stay, finished as they were, with no session');
select throws_ok(format($$select public.delete_session(%L)$$, (select id from sess)), 'PO404', null,
  'deleting it again: not found');

-- The run guard lets a finished run lose its session and nothing else.
create temp table sess2 as select * from public.create_session('direct');
create temp table fin as select * from public.enqueue_run('t-hard', lane => 'C', session_id => (select id from sess2));
select public.cancel_run((select id from fin));
select throws_ok(format($$update public.runs set session_id = null, priority = 9 where id = %L$$, (select id from fin)),
  'PO411', null, 'a finished run cannot change along with losing its session');
select throws_ok(format($$update public.runs set session_id = %L where id = %L$$, (select id from sess), (select id from fin)),
  'PO411', null, 'nor move to another session');
select lives_ok(format($$delete from public.sessions where id = %L$$, (select id from sess2)),
  'the service role may delete a session with finished runs directly too');
select is((select session_id from public.runs where id = (select id from fin)), null, 'its run is detached');

-- ---------------------------------------------------------------------------------------------
-- Artifact names, in bytes, and the Storage keys of their files
-- ---------------------------------------------------------------------------------------------

select is(pulser_ops.storage_key('logs/step-1 (final).txt'), 'logs/step-1 (final).txt', 'a name of safe characters is its own key');
select is(pulser_ops.storage_key('ünï.txt'), '*C3*BCn*C3*AF.txt', 'other characters become * and the hex of their UTF-8 bytes');
select is(pulser_ops.storage_key('b[1].txt'), 'b*5B1*5D.txt', 'brackets');
select is(pulser_ops.storage_key('50%.txt'), '50*25.txt', 'percent');
select is(pulser_ops.storage_key('h#x~y.txt'), 'h*23x*7Ey.txt', 'hash and tilde');
select is(pulser_ops.storage_key('a*b.txt'), 'a*2Ab.txt', 'the escape itself is escaped, so no two names share a key');
select is(pulser_ops.storage_key('🚀/x.bin'), '*F0*9F*9A*80/x.bin', 'folders stay folders');
select is((select array_agg(n) from unnest(array['ünï.txt', 'b[1].txt', '50%.txt', 'h#x.txt', 't~x.txt', 'a*b', '"q"', 'é/ü/ñ', 'tab`x^{|}<>']) n
            where pulser_ops.storage_key(n) !~ '^[A-Za-z0-9_/!.*''() &$=@;:+,?-]*$'),
  null, 'every key matches Supabase Storage''s VALID_OBJECT_KEY');

select is(pulser_ops.artifact_name_problem(repeat('n', 255)), null, '255 bytes is fine');
select is(pulser_ops.artifact_name_problem(repeat('é', 41) || '.txt'), null, '41 two-byte characters and an extension are fine ...');
select is(pulser_ops.artifact_name_problem(repeat('🚀', 100)), 'at most 255 bytes (this one is 400)',
  'a name of 100 emoji is 400 bytes: refused');
select matches(pulser_ops.artifact_name_problem(repeat('é', 100)), 'path segment is 600 bytes as a file key',
  '... but one whose key segment would be over 255 bytes is refused');
select is(pulser_ops.artifact_name_problem(repeat('é', 42) || '/' || repeat('é', 42)), null,
  'each segment counts on its own');
select matches(pulser_ops.artifact_name_problem(e'a\u0085b'), 'not a safe relative path', 'C1 control characters are refused');
select matches(pulser_ops.artifact_name_problem(e'a\tb'), 'not a safe relative path', 'C0 control characters are refused');

create temp table art_run as select * from public.enqueue_run('t-hard', lane => 'D');
select is((select storage_path from public.put_artifact((select id from art_run), 'ünï.txt',
            storage_path => (select id from art_run)::text || '/*C3*BCn*C3*AF.txt', size_bytes => 1)),
  (select id from art_run)::text || '/*C3*BCn*C3*AF.txt', 'a file artifact is stored under the key of its name (the layout of older SDKs)');
select is((select storage_path from public.put_artifact((select id from art_run), 'ünï.txt', attempt => 2,
            storage_path => (select id from art_run)::text || '/2/*C3*BCn*C3*AF.txt', size_bytes => 1)),
  (select id from art_run)::text || '/2/*C3*BCn*C3*AF.txt', 'or in its attempt''s folder, under the same key');
select is((select array_agg(distinct name) from public.artifacts where run_id = (select id from art_run)), array['ünï.txt'], 'the row keeps the name');
select throws_ok(format($$select public.put_artifact(%L, 'ünï.txt', storage_path => %L)$$, (select id from art_run),
                        (select id from art_run)::text || '/ünï.txt'),
  'PO400', format('storage_path must be %s/0/*C3*BCn*C3*AF.txt', (select id from art_run)), 'the name itself is not its key');
select throws_ok(format($$select public.put_artifact(%L, %L, inline_text => 'x')$$, (select id from art_run), repeat('🚀', 100)),
  'PO400', null, 'a 400-byte name is refused inline too');
select lives_ok(format($$insert into public.artifacts (run_id, name, storage_bucket, storage_path) values (%L, 'old ü.txt', 'run-artifacts', %L)$$,
                       (select id from art_run), (select id from art_run)::text || '/old ü.txt'),
  'a row written before keys were encoded (key = name) is still valid');
select throws_ok(format($$insert into public.artifacts (run_id, name, storage_bucket, storage_path) values (%L, 'x', 'run-artifacts', 'elsewhere/x')$$,
                        (select id from art_run)),
  '23514', null, 'but a file outside the run''s folder is not');

select * from finish();
rollback;
