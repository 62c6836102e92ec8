-- Who sees and does what: anon, two operators, an admin, and the service role.
-- Operators act on the runs of their own sessions; admins (app_metadata.ops_role = admin) on all;
-- only the service role claims, heartbeats, completes and sweeps. Everything else is 42501.
begin;
select * from no_plan();

select public.upsert_template('{"name": "t-rls", "default_lane": "C"}'::jsonb);
update public.lanes set paused = (id <> 'C');

create temp table ids as select
  'a0000000-0000-0000-0000-00000000000a'::uuid as alice,
  'b0000000-0000-0000-0000-00000000000b'::uuid as bob,
  'c0000000-0000-0000-0000-00000000000c'::uuid as admin;
grant select on ids to public;
create temp table ghost as select 'dddddddd-0000-4000-8000-00000000000d'::uuid as id;
grant select on ghost to public;

-- Sessions and runs for alice and bob, made as themselves.
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "a0000000-0000-0000-0000-00000000000a", "role": "authenticated"}', true);
create temp table alice_session as select * from public.create_session('alice''s session');
create temp table alice_run as select * from public.enqueue_run('t-rls', session_id => (select id from alice_session));
create temp table alice_loose as select * from public.enqueue_run('t-rls');
reset role;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "b0000000-0000-0000-0000-00000000000b", "role": "authenticated"}', true);
create temp table bob_session as select * from public.create_session('bob''s session');
create temp table bob_run as select * from public.enqueue_run('t-rls', session_id => (select id from bob_session));
reset role;
grant select on alice_session, alice_run, alice_loose, bob_session, bob_run to public;
create temp table svc_run as select * from public.enqueue_run('t-rls');
grant select on svc_run to public;
select is((select owner_id from alice_run), (select alice from ids), 'an operator owns the runs they enqueue');
select is((select owner_id from alice_session), (select alice from ids), 'an operator owns the sessions they create');
select is((select owner_id from svc_run), null, 'service-enqueued runs without a session have no owner');
select public.put_artifact((select id from bob_run), 'report.txt', inline_text => 'bob only');
insert into storage.objects (bucket_id, name) values
  ('run-artifacts', (select id from bob_run)::text || '/file.bin'),
  ('run-artifacts', (select id from alice_run)::text || '/file.bin');

-- anon: nothing -------------------------------------------------------------------------------
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select throws_ok('select * from public.runs', '42501', null, 'anon: cannot read runs');
select throws_ok('select * from public.run_templates', '42501', null, 'anon: cannot read templates');
select throws_ok('select * from public.lane_stats', '42501', null, 'anon: cannot read views');
select throws_ok($$select public.enqueue_run('t-rls')$$, '42501', null, 'anon: cannot enqueue');
select throws_ok($$select public.control_plane_info()$$, '42501', null, 'anon: cannot read control_plane_info');
select throws_ok($$select * from public.list_runs()$$, '42501', null, 'anon: cannot list');
select throws_ok(format($$select public.cancel_run(%L)$$, (select id from alice_run)), '42501', null, 'anon: cannot cancel');
select throws_ok($$select * from public.claim_runs('w', '{C}', 1, 30)$$, '42501', null, 'anon: cannot claim');
select is((select count(*)::int from storage.objects where bucket_id = 'run-artifacts'), 0, 'anon: sees no artifact files');
reset role;

-- alice, an operator -------------------------------------------------------------------------
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "a0000000-0000-0000-0000-00000000000a", "role": "authenticated"}', true);
select set_eq('select id from public.runs', 'select id from alice_run union select id from alice_loose',
  'alice: sees exactly her runs');
select set_eq('select id from public.list_runs()', 'select id from alice_run union select id from alice_loose',
  'alice: list_runs shows exactly her runs');
select set_eq('select id from public.sessions', 'select id from alice_session', 'alice: sees only her sessions');
select throws_ok(format($$select public.get_run(%L)$$, (select id from bob_run)), 'PO404', null,
  'alice: bob''s run does not exist for her');
select is((select count(*)::int from public.artifacts), 0, 'alice: cannot see bob''s artifacts');
select is((select count(*)::int from public.run_events where run_id = (select id from bob_run)), 0,
  'alice: cannot see bob''s events');
select set_eq($$select name from storage.objects where bucket_id = 'run-artifacts'$$,
  $$select (select id from alice_run)::text || '/file.bin'$$, 'alice: storage objects of her runs only');
-- Another's run or session is answered exactly like an id that does not exist (no probing).
select throws_ok(format($$select public.cancel_run(%L)$$, (select id from bob_run)), 'PO404',
  format('run %s not found', (select id from bob_run)), 'alice: bob''s run is not found when she cancels it');
select throws_ok(format($$select public.cancel_run(%L)$$, (select id from ghost)), 'PO404',
  format('run %s not found', (select id from ghost)), '... as a run that does not exist');
select throws_ok(format($$select public.append_run_events('[{"run_id": "%s", "kind": "note"}]')$$, (select id from bob_run)),
  'PO404', format('events[0]: run %s not found', (select id from bob_run)), 'alice: bob''s run is not found when she writes events on it');
select throws_ok(format($$select public.append_run_events('[{"run_id": "%s", "kind": "note"}]')$$, (select id from ghost)),
  'PO404', format('events[0]: run %s not found', (select id from ghost)), '... as a run that does not exist');
select throws_ok(format($$select public.enqueue_run('t-rls', session_id => %L)$$, (select id from bob_session)),
  'PO404', format('runs[0].session_id: session %s not found', (select id from bob_session)), 'alice: bob''s session is not found when she enqueues into it');
select throws_ok(format($$select public.enqueue_run('t-rls', session_id => %L)$$, (select id from ghost)),
  'PO404', format('runs[0].session_id: session %s not found', (select id from ghost)), '... as a session that does not exist');
select throws_ok(format($$select public.rerun_run(%L)$$, (select id from bob_run)), 'PO404',
  format('run %s not found', (select id from bob_run)), 'alice: bob''s run is not found when she re-runs it');
select throws_ok(format($$select public.rerun_run(%L)$$, (select id from ghost)), 'PO404',
  format('run %s not found', (select id from ghost)), '... as a run that does not exist');
select throws_ok(format($$select public.delete_session(%L)$$, (select id from bob_session)), 'PO404',
  format('session %s not found', (select id from bob_session)), 'alice: bob''s session is not found when she deletes it');
select throws_ok(format($$select public.delete_session(%L)$$, (select id from ghost)), 'PO404',
  format('session %s not found', (select id from ghost)), '... as a session that does not exist');
select is((select row(matched, affected, capped, touched)::text from public.bulk_cancel_runs(array[(select id from bob_run)])),
  (select row(matched, affected, capped, touched)::text from public.bulk_cancel_runs(array[(select id from ghost)])),
  'alice: a bulk cancel of bob''s run answers as for an id that does not exist');
select is((select matched from public.bulk_rerun_runs(array[(select id from bob_run)])), 0::bigint,
  'alice: a bulk re-run of bob''s run matches nothing');
-- spec docs: hers, and only in her sessions; bob's session and a made-up one are refused alike
select lives_ok(format($$insert into public.spec_docs (session_id, owner_id, title) values (%L, %L, 'in mine')$$,
  (select id from alice_session), (select alice from ids)), 'alice: writes a spec doc into her own session');
select throws_ok(format($$insert into public.spec_docs (session_id, owner_id, content) values (%L, %L, 'x')$$,
  (select id from bob_session), (select alice from ids)), '42501',
  'new row violates row-level security policy for table "spec_docs"', 'alice: cannot write a spec doc into bob''s session');
select throws_ok(format($$insert into public.spec_docs (session_id, owner_id, content) values (%L, %L, 'x')$$,
  (select id from ghost), (select alice from ids)), '42501',
  'new row violates row-level security policy for table "spec_docs"', '... refused like a session that does not exist');
select throws_ok(format($$update public.spec_docs set session_id = %L where title = 'in mine'$$, (select id from bob_session)),
  '42501', 'new row violates row-level security policy for table "spec_docs"', 'alice: cannot move her spec doc into bob''s session');
select throws_ok(format($$update public.spec_docs set session_id = %L where title = 'in mine'$$, (select id from ghost)),
  '42501', 'new row violates row-level security policy for table "spec_docs"', '... refused like a session that does not exist');
select throws_ok(format($$update public.runs set priority = 5 where id = %L$$, (select id from alice_run)),
  '42501', null, 'alice: cannot update runs directly, even her own');
select throws_ok($$insert into public.runs (template, lane, max_attempts, lease_seconds) values ('t-rls', 'C', 1, 30)$$,
  '42501', null, 'alice: cannot insert runs directly');
select throws_ok($$delete from public.run_events$$, '42501', null, 'alice: cannot delete events');
select throws_ok($$select * from public.claim_runs('w', '{C}', 1, 30)$$, '42501', null, 'alice: cannot claim');
select throws_ok(format($$select public.heartbeat_run(%L, 'w', 1)$$, (select id from alice_run)), '42501', null, 'alice: cannot heartbeat');
select throws_ok(format($$select public.complete_run(%L, 'w', 1, 'succeeded')$$, (select id from alice_run)), '42501', null, 'alice: cannot complete');
select throws_ok($$select * from public.sweep_expired_runs()$$, '42501', null, 'alice: cannot sweep');
select throws_ok(format($$select public.put_artifact(%L, 'x.txt', inline_text => 'x')$$, (select id from alice_run)), '42501', null, 'alice: cannot write artifacts');
select throws_ok($$select public.upsert_template('{"name": "mine"}')$$, '42501', null, 'alice: cannot change templates');
select throws_ok($$select public.set_lane('C', paused => true)$$, '42501', null, 'alice: cannot pause lanes');
select throws_ok($$select * from public.prune_runs(0)$$, '42501', null, 'alice: cannot prune');
select throws_ok(format($$select * from public.delete_runs(array[%L::uuid])$$, (select id from alice_loose)), '42501', null, 'alice: cannot delete runs');
select is((select info ->> 'caller' from public.control_plane_info()), 'operator', 'alice: control_plane_info knows she is an operator');
select throws_ok($$select * from pulser_ops.complete_runs('w', '[]')$$, '42501', null, 'alice: cannot call internals');
select lives_ok($$insert into public.spec_docs (owner_id, title) values ('a0000000-0000-0000-0000-00000000000a', 'plan')$$,
  'alice: writes her own spec docs');
select throws_ok($$insert into public.spec_docs (owner_id, title) values ('b0000000-0000-0000-0000-00000000000b', 'forged')$$,
  '42501', null, 'alice: cannot write spec docs as bob');
select is((select count(*)::int from public.lanes), 4, 'alice: reads lanes');
select is((select count(*)::int from public.run_templates where name = 't-rls'), 1, 'alice: reads templates');
select is((select status from public.cancel_run((select id from alice_loose), 'mine to stop')), 'cancelled',
  'alice: cancels her own run');
select lives_ok(format($$select public.append_run_events('[{"run_id": "%s", "kind": "note", "message": "looked at it"}]')$$, (select id from alice_run)),
  'alice: writes a note on her own run');
reset role;

-- bob, another operator --------------------------------------------------------------------------
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "b0000000-0000-0000-0000-00000000000b", "role": "authenticated"}', true);
select set_eq('select id from public.runs', 'select id from bob_run', 'bob: sees exactly his run');
select is((select count(*)::int from public.artifacts), 1, 'bob: sees the artifacts of his run');
select is((select count(*)::int from public.spec_docs), 0, 'bob: does not see alice''s spec docs');
select throws_ok(format($$select public.cancel_run(%L)$$, (select id from alice_run)), 'PO404', null,
  'bob: alice''s run is not found when he cancels it');
select is((select count(*)::int from public.spec_docs where session_id = (select id from bob_session)), 0,
  'bob: nothing was written into his session');
reset role;

-- an admin ------------------------------------------------------------------------------------------
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "c0000000-0000-0000-0000-00000000000c", "role": "authenticated", "app_metadata": {"ops_role": "admin"}}', true);
select set_eq('select id from public.runs',
  'select id from alice_run union select id from alice_loose union select id from bob_run union select id from svc_run',
  'admin: sees all runs');
select is((select count(*)::int from storage.objects where bucket_id = 'run-artifacts'), 2, 'admin: sees all artifact files');
select is((select status from public.cancel_run((select id from bob_run), 'admin says stop')), 'cancelled',
  'admin: cancels anyone''s run');
select lives_ok($$select public.set_lane('D', max_running => 3)$$, 'admin: sets lane concurrency');
select lives_ok($$select public.upsert_template('{"name": "admin-made"}')$$, 'admin: changes templates');
select throws_ok($$select * from public.claim_runs('w', '{C}', 1, 30)$$, '42501', null, 'admin: still cannot claim (workers do)');
select throws_ok($$select * from public.sweep_expired_runs()$$, '42501', null, 'admin: cannot sweep');
-- a user who merely claims admin in user_metadata is not one
select set_config('request.jwt.claims', '{"sub": "a0000000-0000-0000-0000-00000000000a", "role": "authenticated", "user_metadata": {"ops_role": "admin"}}', true);
select throws_ok($$select public.set_lane('D', paused => true)$$, '42501', null, 'user_metadata cannot make an admin');
reset role;

-- the service role -------------------------------------------------------------------------------
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select is((select count(*)::int from public.runs where template = 't-rls'), 4, 'service role: sees all runs');
select is((select id from public.claim_runs('w-svc', '{C}', 1, 30)), (select id from alice_run), 'service role: claims (oldest first)');
select is((select cancel_requested from public.heartbeat_run((select id from alice_run), 'w-svc', 1)), false, 'service role: heartbeats');
select is((select status from public.complete_run((select id from alice_run), 'w-svc', 1, 'succeeded')), 'succeeded', 'service role: completes');
select lives_ok($$select * from public.sweep_expired_runs()$$, 'service role: sweeps');
reset role;

select * from finish();
rollback;
