-- list_held_runs: the runs running under a worker id, and only those, for the service role only
-- (a worker whose claim reply was lost finds the runs the database gave it).
begin;
select * from no_plan();

select public.upsert_template('{"name": "t-held", "default_lane": "D", "max_attempts": 3}'::jsonb);
update public.lanes set paused = (id <> 'D');
select public.enqueue_runs((select jsonb_agg(jsonb_build_object('template', 't-held', 'priority', g))
                            from generate_series(1, 5) g));

create temp table mine as select * from public.claim_runs('w-held', '{D}', 3, 60);
create temp table theirs as select * from public.claim_runs('w-other', '{D}', 1, 60);

select set_eq($$select id from public.list_held_runs('w-held')$$, $$select id from mine$$,
  'held: every run running under the worker id');
select is((select count(*)::int from public.list_held_runs('w-nobody')), 0,
  'held: nothing for a worker that holds nothing');
select results_eq($$select attempt, status, worker_id from public.list_held_runs('w-other')$$,
  $$values (1, 'running'::text, 'w-other'::text)$$, 'held: the rows as claimed (attempt, status, worker)');

-- A run that ends, or is given back, is no longer held.
select public.complete_run((select id from mine order by priority desc limit 1), 'w-held', 1, 'succeeded');
select public.release_run((select id from mine order by priority asc limit 1), 'w-held', 1, 'stopping');
select results_eq($$select id from public.list_held_runs('w-held')$$,
  $$select id from mine order by priority desc offset 1 limit 1$$,
  'held: completed and released runs are gone, the one still running stays');

select throws_ok($$select * from public.list_held_runs('')$$, 'PO400', null, 'held: an empty worker id is refused');
select throws_ok($$select * from public.list_held_runs(repeat('x', 201))$$, 'PO400', null,
  'held: a worker id longer than 200 characters is refused');

select ok(has_function_privilege('service_role', 'public.list_held_runs(text)', 'execute'),
  'service_role may list a worker''s runs');
select ok(not has_function_privilege('authenticated', 'public.list_held_runs(text)', 'execute'),
  'authenticated may not');
select ok(not has_function_privilege('anon', 'public.list_held_runs(text)', 'execute'), 'anon may not');
select ok(not has_function_privilege('public', 'public.list_held_runs(text)', 'execute'), 'PUBLIC may not');

-- Even with the grant, only the service role gets an answer (require_service).
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "a0000000-0000-0000-0000-00000000000a", "role": "authenticated"}', true);
select throws_ok($$select * from public.list_held_runs('w-held')$$, '42501', null,
  'an operator cannot call it');
reset role;

select * from finish();
rollback;
