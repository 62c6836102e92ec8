-- Seed for the splitter corpus: data statements only.
insert into public."we;ird" (id, note) values (2, 'seed;ed');
update public."we;ird" set "x""y" = 'z' where id = 1;
