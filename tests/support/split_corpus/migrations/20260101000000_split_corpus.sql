-- Statements that exercise every state of the CLI's splitter; pushed by both tools.
create table public."we;ird" (id int primary key, note text default 'a;b', "x""y" text);

/* block ; comment /* nested ; */ still ; comment */ insert into public."we;ird" (id) values (1);;
;
create function public.split_atomic(a int) returns int language sql
begin atomic
  select a + 1;
end;
create function public.split_plpgsql() returns text language plpgsql as $body$
declare
  v text := 'x;y';  -- inline ; comment
begin
  v := v || $$;$$;
  return v;
end;
$body$;
create function public.split_tag_unicode() returns text language sql as $é1$ select 'ü;' $é1$;
comment on table public."we;ird" is 'it''s; héllo ✓';
select 5 - 3, (1 + (2 * (3))), ';' as semi, $x1$;$x1$ as dollar_tag;
select 1 -- trailing comment ; with semicolon
;
do $$ begin perform 1; end $$;
