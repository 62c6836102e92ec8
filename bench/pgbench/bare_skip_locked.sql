-- The floor of any SKIP LOCKED queue: take one row, mark it done (two autocommit transactions).
update bare_jobs b set status = 'running', taken_at = now()
  where b.id = (select id from bare_jobs where status = 'queued' order by id limit 1 for update skip locked)
  returning b.id \gset
update bare_jobs set status = 'done', done_at = now() where id = :id;
