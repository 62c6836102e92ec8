-- claim_runs' big CTE is re-planned on every call (custom plans for its parameters): pin the
-- generic plan. Candidate change for the migration, applied here to a scratch database only.
alter function public.claim_runs(text, text[], integer, integer)
  set plan_cache_mode = force_generic_plan
