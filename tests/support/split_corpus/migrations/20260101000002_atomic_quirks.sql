-- "atomic" inside a word must not open a BEGIN ATOMIC body (the CLI checks for whitespace).
select 1 as xatomic;
select 2 as "END";
CREATE FUNCTION public.split_atomic_upper() RETURNS int LANGUAGE sql
BEGIN	ATOMIC
  SELECT 1;
  SELECT 2;
END;
select 3;
