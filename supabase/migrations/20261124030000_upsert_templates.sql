-- pulser-ops: several templates in one transaction.
--
-- `pulser-ops templates apply` of a file with several templates used to upsert them one call at a
-- time, so a template that only the control plane could refuse (say, a params_schema of type
-- array) left the ones before it applied. upsert_templates applies a list in one statement: all
-- of them, or (with the first error, named by its position) none.

create function public.upsert_templates(templates jsonb) returns setof public.run_templates
language plpgsql volatile set search_path = '' as $$
declare
  item jsonb;
  n bigint;
  msg text;
  code text;
  hint text;
begin
  if jsonb_typeof(upsert_templates.templates) is distinct from 'array'
     or jsonb_array_length(upsert_templates.templates) = 0 then
    raise exception 'templates: expected a non-empty array of template objects' using errcode = 'PO400';
  end if;
  if jsonb_array_length(upsert_templates.templates) > 200 then
    raise exception 'templates: at most 200 per call (got %)', jsonb_array_length(upsert_templates.templates)
      using errcode = 'PO400';
  end if;
  if (select count(distinct e ->> 'name') <> count(*)
      from jsonb_array_elements(upsert_templates.templates) e) then
    raise exception 'templates: a name appears more than once' using errcode = 'PO400';
  end if;
  for item, n in
    select e, i from jsonb_array_elements(upsert_templates.templates) with ordinality as a(e, i)
  loop
    begin
      return next pulser_ops.upsert_template(item);
    exception when others then
      get stacked diagnostics msg = message_text, code = returned_sqlstate, hint = pg_exception_hint;
      raise exception 'templates[%] (%): %', n - 1, coalesce(item ->> 'name', 'no name'), msg
        using errcode = code, hint = coalesce(hint, '');
    end;
  end loop;
end
$$;
comment on function public.upsert_templates(jsonb) is
  'Create or update several templates in one transaction: all of them, or none.';

revoke all on function public.upsert_templates(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.upsert_templates(jsonb) to authenticated, service_role;
