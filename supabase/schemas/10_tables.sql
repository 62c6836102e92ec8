-- pulser-ops: the tables.
--
-- supabase/schemas/ is the control plane as it is now, each object once, in its latest
-- definition; its files run in file-name order (after src/pulser_ops/db/bootstrap.sql on plain
-- PostgreSQL). A change edits the file here AND adds a migration: see supabase/README.md.
--
-- Layout:
--   public      tables, security-invoker views, and the API functions (all security invoker).
--   pulser_ops  private (never exposed through the Data API): SECURITY DEFINER implementations
--               of the few operator-facing writes, and the helpers the API functions share.
-- Every function has a fixed search_path (''), so every name below is schema-qualified.
-- Errors use stable SQLSTATEs (see docs/SQL_API.md):
--   PO400 invalid input · PO422 invalid params · PO404 not found · PO409 conflict
--   PO410 lease lost    · PO411 already terminal · 42501 permission denied
--
-- Files: 10 tables · 15 who is calling · 20 the state machine of a run · 30 events, steps and
-- artifacts · 40 templates, lanes, sessions, workers, retention · 50 readers and views ·
-- 60 change notifications, Realtime and Storage · 90 row level security and grants (last, so
-- that its rules see every object).

create schema if not exists pulser_ops;
comment on schema pulser_ops is 'pulser-ops internals: not exposed through the Data API.';
revoke all on schema pulser_ops from public;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table public.lanes (
  id          text primary key check (id in ('A', 'B', 'C', 'D')),
  paused      boolean not null default false,
  max_running integer check (max_running is null or max_running > 0),
  description text not null default '',
  updated_at  timestamptz not null default now()
);
insert into public.lanes (id, description) values
  ('A', 'lane A'), ('B', 'lane B'), ('C', 'lane C'), ('D', 'lane D');

create table public.sessions (
  id         uuid primary key default gen_random_uuid(),
  owner_id   uuid,
  title      text not null default '' check (char_length(title) <= 200),
  metadata   jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now()
);
create index sessions_owner_idx on public.sessions (owner_id, created_at);

create table public.run_templates (
  name                      text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  description               text not null default '' check (char_length(description) <= 2000),
  params_schema             jsonb not null default '{"type": "object"}'
                              check (jsonb_typeof(params_schema) = 'object'),
  steps                     jsonb not null default '[]' check (jsonb_typeof(steps) = 'array'),
  default_lane              text not null default 'A' check (default_lane in ('A', 'B', 'C', 'D')),
  max_attempts              integer not null default 3 check (max_attempts between 1 and 100),
  retry_backoff_seconds     numeric not null default 5 check (retry_backoff_seconds >= 0),
  retry_backoff_max_seconds numeric not null default 600,
  retry_jitter              numeric not null default 0.2 check (retry_jitter between 0 and 1),
  non_retryable_errors      text[] not null default '{}',
  lease_seconds             integer not null default 60 check (lease_seconds between 5 and 86400),
  timeout_seconds           integer check (timeout_seconds is null or timeout_seconds > 0),
  created_at                timestamptz not null default now(),
  updated_at                timestamptz not null default now(),
  constraint run_templates_backoff_cap check (retry_backoff_max_seconds >= retry_backoff_seconds),
  -- Set by the run_templates_version trigger: 1, then one more for each change of the definition.
  version                   integer not null default 1 check (version >= 1)
);

-- Every definition a template has had, recorded by triggers on run_templates (see "Template
-- versions" in 40_templates_lanes_workers.sql). A run executes the version it was enqueued
-- with (runs.template_version), whatever the template becomes later.
create table public.run_template_versions (
  template   text not null references public.run_templates (name)
               on update cascade on delete cascade,
  version    integer not null check (version >= 1),
  -- the template's settable fields (everything but name, version and timestamps)
  definition jsonb not null check (jsonb_typeof(definition) = 'object'),
  created_at timestamptz not null default now(),
  primary key (template, version)
);

-- Each template's params schema, compiled once per version: when the template is written (the
-- run_templates_compile trigger, 40_templates_lanes_workers.sql). enqueue_runs fills a run's params
-- with the top-level defaults and checks them against the rules, flat rows it evaluates for a
-- whole batch in one statement, instead of walking the schema for every run. A schema the rules
-- cannot state (items or additionalProperties given as a schema, a keyword with an odd value) is
-- marked walk: its runs are checked by pulser_ops.schema_violation, as they were before.
create table pulser_ops.template_params (
  template text primary key references public.run_templates (name) on update cascade on delete cascade,
  defaults jsonb not null default '{}',
  walk     boolean not null default false
);
-- One rule: where it applies (a path of property names from params; a rule applies when the
-- value is there), what it checks (kind: type enum const minimum maximum exclusiveMinimum
-- exclusiveMaximum minLength maxLength pattern minItems maxItems required closed) and against what.
create table pulser_ops.template_params_rules (
  template text not null
           references pulser_ops.template_params (template) on update cascade on delete cascade,
  idx      integer not null,
  path     text[] not null,
  kind     text not null,
  types    text[],
  num      numeric,
  txt      text,
  val      jsonb,
  names    text[],
  primary key (template, idx)
);

create table public.runs (
  id                  uuid primary key default gen_random_uuid(),
  template            text not null references public.run_templates (name) on update cascade,
  lane                text not null check (lane in ('A', 'B', 'C', 'D')),
  status              text not null default 'queued'
                        check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  priority            integer not null default 0 check (priority between -100 and 100),
  attempt             integer not null default 0,
  max_attempts        integer not null check (max_attempts between 1 and 100),
  lease_seconds       integer not null check (lease_seconds between 5 and 86400),
  params              jsonb not null default '{}' check (jsonb_typeof(params) = 'object'),
  session_id          uuid references public.sessions (id) on delete set null,
  owner_id            uuid,
  idempotency_key     text check (char_length(idempotency_key) between 1 and 200),
  available_at        timestamptz not null default now(),
  worker_id           text,
  claimed_at          timestamptz,
  heartbeat_at        timestamptz,
  lease_expires_at    timestamptz,
  cancel_requested_at timestamptz,
  cancel_reason       text,
  result              jsonb,
  error               text,
  error_class         text,
  sweep_count         integer not null default 0 check (sweep_count >= 0),
  version             integer not null default 1,
  created_at          timestamptz not null default now(),
  updated_at          timestamptz not null default now(),
  finished_at         timestamptz,
  -- Enqueue order: the claim's tiebreak among runs of one priority and created_at (a batch of
  -- create_many shares its created_at, a transaction's now()). Last: columns are appended.
  seq                 bigint generated always as identity,
  -- the template version enqueue stamped (run_template_versions); null only on runs that
  -- finished before versions existed
  template_version    integer,
  constraint runs_attempt_range check (attempt between 0 and max_attempts),
  constraint runs_finished_iff_terminal
    check ((status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null)),
  constraint runs_running_holds_lease
    check (status <> 'running'
           or (worker_id is not null and lease_expires_at is not null
               and claimed_at is not null and attempt >= 1)),
  constraint runs_lease_only_while_running check (status = 'running' or lease_expires_at is null),
  constraint runs_queued_has_no_worker check (status <> 'queued' or worker_id is null),
  constraint runs_succeeded_was_claimed check (status <> 'succeeded' or attempt >= 1)
) with (fillfactor = 85);
comment on table public.runs is
  'A run of a template. queued -> running -> succeeded|failed|cancelled; running -> queued by retry, sweep or release.';

-- The claim path: queued runs of a lane in priority-then-age order, enqueue order (seq) breaking
-- ties, so one batch is claimed first-in first-out and a swept run keeps its place (partial:
-- finished runs cost nothing).
create index runs_claim_idx on public.runs (lane, priority desc, created_at, seq) where status = 'queued';
-- Running runs: lane concurrency counts and the sweeper. Leases are not indexed so heartbeats stay HOT.
create index runs_running_idx on public.runs (lane) where status = 'running';
create index runs_finished_idx on public.runs (finished_at) where finished_at is not null;
create index runs_created_idx on public.runs (created_at desc, id desc);
create index runs_template_idx on public.runs (template, created_at desc);
create index runs_session_idx on public.runs (session_id) where session_id is not null;
create index runs_owner_idx on public.runs (owner_id, created_at desc) where owner_id is not null;
create unique index runs_idempotency_idx
  on public.runs ((coalesce(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)), idempotency_key)
  where idempotency_key is not null;

create table public.run_steps (
  run_id      uuid not null references public.runs (id) on delete cascade,
  attempt     integer not null check (attempt >= 1),
  idx         integer not null check (idx >= 0),
  name        text not null check (char_length(name) between 1 and 200),
  kind        text not null check (kind in ('shell', 'http', 'python', 'mcp', 'docker')),
  status      text not null check (status in ('running', 'succeeded', 'failed', 'cancelled', 'skipped')),
  started_at  timestamptz not null default now(),
  finished_at timestamptz,
  exit_code   integer,
  error       text,
  output      jsonb,
  primary key (run_id, attempt, idx),
  constraint run_steps_finished_iff_done check ((status = 'running') = (finished_at is null))
);

-- A run's events are numbered 1, 2, 3, ... in commit order: see "Event seqs" in
-- 30_events_artifacts.sql.
create table public.run_events (
  run_id    uuid not null references public.runs (id) on delete cascade,
  seq       bigint not null check (seq > 0),
  at        timestamptz not null default now(),
  kind      text not null check (kind ~ '^[a-z][a-z0-9_.]{0,63}$'),
  level     text not null default 'info' check (level in ('debug', 'info', 'warn', 'error')),
  message   text not null default '' check (octet_length(message) <= 16384),
  data      jsonb,
  attempt   integer,
  worker_id text,
  primary key (run_id, seq)
);

create table public.artifacts (
  id             uuid primary key default gen_random_uuid(),
  run_id         uuid not null references public.runs (id) on delete cascade,
  attempt        integer,
  name           text not null,
  kind           text not null default 'text' check (kind ~ '^[a-z][a-z0-9_-]{0,31}$'),
  content_type   text not null default 'text/plain; charset=utf-8',
  size_bytes     bigint not null default 0 check (size_bytes >= 0),
  inline_text    text check (octet_length(inline_text) <= 65536),
  storage_bucket text,
  storage_path   text,
  sha256         text check (sha256 is null or sha256 ~ '^[0-9a-f]{64}$'),
  metadata       jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object'),
  created_at     timestamptz not null default now(),
  -- New names are held to 255 bytes by put_artifact (pulser_ops.artifact_name_problem); this
  -- check is the looser rule of rows written before 2026-12, kept so that they stay valid.
  constraint artifacts_name_is_relative_path check (
    char_length(name) between 1 and 255
    and name !~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])'),
  constraint artifacts_inline_xor_storage
    check ((inline_text is null) <> (storage_path is null)),
  -- The file sits in its run's folder (the Storage policy reads the run id from it): at
  -- '<run id>/<attempt, 0 for none>/' || pulser_ops.storage_key(name), which put_artifact
  -- checks. (Until 2026-12 it was '<run id>/<name>', as rows written then still say.)
  constraint artifacts_storage_path_in_run_folder
    check (storage_path is null
           or (storage_bucket is not null and split_part(storage_path, '/', 1) = run_id::text
               and storage_path <> run_id::text || '/'))
);
-- Each attempt keeps its own artifacts: a retry that saves "report.md" again does not replace
-- the earlier attempt's (the control room diffs them).
create unique index artifacts_run_attempt_name_key
  on public.artifacts (run_id, (coalesce(attempt, 0)), name);
-- No two artifacts share a file.
create unique index artifacts_storage_path_key
  on public.artifacts (storage_path) where storage_path is not null;

create table public.spec_docs (
  id         uuid primary key default gen_random_uuid(),
  session_id uuid references public.sessions (id) on delete cascade,
  owner_id   uuid,
  kind       text not null default 'note' check (kind ~ '^[a-z][a-z0-9_-]{0,31}$'),
  title      text not null default '' check (char_length(title) <= 200),
  content    text not null default '' check (octet_length(content) <= 1048576),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  run_id     uuid references public.runs (id) on delete cascade,
  path       text,
  constraint spec_docs_path_is_relative check (
    path is null or (char_length(path) between 1 and 255
                     and path !~ '(^/|\\|//|(^|/)\.\.?(/|$)|/$|[[:cntrl:]])')),
  constraint spec_docs_run_has_path check ((run_id is null) = (path is null)),
  -- nulls are distinct: documents made outside a run are not constrained
  constraint spec_docs_run_path_key unique (run_id, path)
);
comment on column public.spec_docs.run_id is 'The run that generated this document (generate_spec_kit), if any.';
comment on column public.spec_docs.path is 'The document''s path in its kit (spec/<name>/prd.md, specs/001-<name>/spec.md, ...).';
create index spec_docs_session_idx on public.spec_docs (session_id);
create index spec_docs_owner_idx on public.spec_docs (owner_id);

-- A session as a conversation (the control room's Chat tab): what an operator typed and what
-- the room answered, in order. The runs the session started are runs.session_id; the room shows
-- their live cards and their ends between these messages.
create table public.session_messages (
  id         bigint generated always as identity primary key,
  session_id uuid not null references public.sessions (id) on delete cascade,
  at         timestamptz not null default now(),
  author_id  uuid,
  author     text not null default '' check (char_length(author) <= 200),
  kind       text not null check (kind in ('command', 'reply', 'error', 'note')),
  body       text not null default '' check (octet_length(body) <= 16384),
  -- the run a message is about (the run a `run` command started): the room shows its live card
  run_id     uuid references public.runs (id) on delete set null,
  data       jsonb check (data is null or jsonb_typeof(data) = 'object')
);
create index session_messages_session_idx on public.session_messages (session_id, id);
create index session_messages_run_idx on public.session_messages (run_id) where run_id is not null;

create table public.workers (
  id           text primary key check (char_length(id) between 1 and 200),
  host         text not null default '',
  pid          integer,
  lanes        text[] not null default '{A,B,C,D}'
                 check (lanes <@ array['A', 'B', 'C', 'D']::text[]),
  version      text not null default '',
  concurrency  integer not null default 1 check (concurrency between 1 and 10000),
  status       text not null default 'active' check (status in ('active', 'draining', 'stopped')),
  started_at   timestamptz not null default now(),
  last_seen_at timestamptz not null default now(),
  metadata     jsonb not null default '{}' check (jsonb_typeof(metadata) = 'object')
);

-- Alert incidents (57_monitoring.sql, evaluate_alerts): one row per incident of a rule about one
-- subject (a lane, a worker, a template), firing until the condition clears, then resolved. At
-- most one firing incident per rule and subject: that is what makes a notification once per
-- incident, whoever evaluates and however often.
create table public.alerts (
  id            uuid primary key default gen_random_uuid(),
  rule          text not null check (rule ~ '^[a-z][a-z0-9_]{0,62}$'),
  subject       text not null default '' check (char_length(subject) <= 200),
  severity      text not null default 'warning' check (severity in ('info', 'warning', 'critical')),
  status        text not null default 'firing' check (status in ('firing', 'resolved')),
  summary       text not null default '' check (char_length(summary) <= 2000),
  details       jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  run_ids       uuid[] not null default '{}' check (cardinality(run_ids) <= 200),
  started_at    timestamptz not null default now(),
  last_seen_at  timestamptz not null default now(),
  notified_at   timestamptz,
  notifications integer not null default 0 check (notifications >= 0),
  resolved_at   timestamptz,
  constraint alerts_resolved_iff_resolved_at check ((status = 'resolved') = (resolved_at is not null))
);
create unique index alerts_open_idx on public.alerts (rule, subject) where status = 'firing';
create index alerts_started_idx on public.alerts (started_at desc);

-- Recurring runs (45_schedules.sql): a cron expression in a time zone, and the run to enqueue
-- when it is due. The sweeper's pass (enqueue_due_schedules) enqueues due runs, one per due
-- time, and moves next_run_at on; a schedule changes only through its functions.
create table public.run_schedules (
  name        text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  template    text not null references public.run_templates (name),
  cron        text not null check (char_length(cron) between 1 and 200),
  timezone    text not null default 'UTC' check (char_length(timezone) between 1 and 64),
  params      jsonb not null default '{}' check (jsonb_typeof(params) = 'object'),
  lane        text check (lane in ('A', 'B', 'C', 'D')),
  priority    integer not null default 0 check (priority between -100 and 100),
  enabled     boolean not null default true,
  description text not null default '' check (char_length(description) <= 2000),
  next_run_at timestamptz not null,
  last_run_at timestamptz,
  -- the last run it enqueued (no foreign key: pruning runs must not touch schedules)
  last_run_id uuid,
  last_error  text check (char_length(last_error) <= 2000),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create index run_schedules_due_idx on public.run_schedules (next_run_at) where enabled;
create index run_schedules_template_idx on public.run_schedules (template);
