-- Starter templates for pulser-ops. Applied by `supabase db reset` (local stack),
-- `supabase db push --include-seed`, `pulser-ops db push --include-seed`, and the embedded demo.
-- Safe to run more than once: templates are upserted by name.
--
-- Shell steps never paste params into a shell string: params reach the command as environment
-- variables (PULSER_PARAM_<NAME>) or as whole argv elements ("{{ params.name }}").

select public.upsert_template(t) from jsonb_array_elements($json$[
  {
    "name": "hello",
    "description": "Print a greeting: the smallest shell run.",
    "default_lane": "A",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100, "default": "world"}}},
    "steps": [{"kind": "shell", "name": "greet", "command": ["echo", "hello,", "{{ params.name }}"]}],
    "max_attempts": 1
  },
  {
    "name": "build-report",
    "description": "A multi-step shell run that writes a small report (lane B).",
    "default_lane": "B",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {"items": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5}}},
    "steps": [
      {"kind": "shell", "name": "collect", "command": "for i in $(seq 1 \"$PULSER_PARAM_ITEMS\"); do echo \"item $i\"; done"},
      {"kind": "shell", "name": "summarise", "command": "echo \"collected $PULSER_PARAM_ITEMS items\""}
    ],
    "max_attempts": 2
  },
  {
    "name": "http-check",
    "description": "Call an HTTP endpoint and keep its response as an artifact.",
    "default_lane": "C",
    "params_schema": {"type": "object", "required": ["url"], "additionalProperties": false,
      "properties": {"url": {"type": "string", "pattern": "^https?://"},
                     "expect": {"type": "integer", "minimum": 100, "maximum": 599, "default": 200}}},
    "steps": [{"kind": "http", "name": "call", "method": "GET", "url": "{{ params.url }}",
               "expected_status": 200}],
    "max_attempts": 3, "retry_backoff_seconds": 1, "retry_backoff_max_seconds": 10
  },
  {
    "name": "flaky",
    "description": "Fails on its first attempts, then succeeds: shows retry with backoff.",
    "default_lane": "B",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {"succeed_on_attempt": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2}}},
    "steps": [{"kind": "shell", "name": "maybe-fail",
               "command": "echo \"attempt $PULSER_ATTEMPT\"; test \"$PULSER_ATTEMPT\" -ge \"$PULSER_PARAM_SUCCEED_ON_ATTEMPT\""}],
    "max_attempts": 3, "retry_backoff_seconds": 1, "retry_backoff_max_seconds": 5, "retry_jitter": 0.1
  },
  {
    "name": "always-fails",
    "description": "Fails every attempt: shows a run that exhausts its attempts.",
    "default_lane": "D",
    "params_schema": {"type": "object", "additionalProperties": false, "properties": {}},
    "steps": [{"kind": "shell", "name": "fail", "command": "echo 'this step always fails' >&2; exit 3"}],
    "max_attempts": 2, "retry_backoff_seconds": 1, "retry_backoff_max_seconds": 2
  },
  {
    "name": "long-task",
    "description": "A long shell step that prints progress: cancel it to see cancellation.",
    "default_lane": "D",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {"seconds": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 600}}},
    "steps": [{"kind": "shell", "name": "work",
               "command": "i=0; while [ $i -lt \"$PULSER_PARAM_SECONDS\" ]; do echo \"tick $i\"; i=$((i+1)); sleep 1; done"}],
    "max_attempts": 1, "lease_seconds": 30
  },
  {
    "name": "slow-step",
    "description": "A few seconds of work on a short lease: kill its worker and the sweeper requeues it.",
    "default_lane": "C",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {"seconds": {"type": "integer", "minimum": 1, "maximum": 3600, "default": 6}}},
    "steps": [{"kind": "shell", "name": "work",
               "command": "i=0; while [ $i -lt \"$PULSER_PARAM_SECONDS\" ]; do echo \"working $i\"; i=$((i+1)); sleep 1; done; echo done > result.txt"}],
    "max_attempts": 3, "lease_seconds": 5, "retry_backoff_seconds": 1
  },
  {
    "name": "noop",
    "description": "Does nothing (a registered Python handler): used by benchmarks.",
    "default_lane": "A",
    "params_schema": {"type": "object"},
    "steps": [{"kind": "python", "name": "noop", "handler": "noop"}],
    "max_attempts": 3
  },
  {
    "name": "generate_spec_kit",
    "description": "Generate a spec kit (constitution, PRD/spec, plan, tasks) from GitHub Spec Kit's templates: one markdown artifact per document, spec-kit.zip, and a spec_docs row per document. Unfilled slots are listed TODO markers. See docs/SPEC_KIT.md.",
    "default_lane": "B",
    "params_schema": {"type": "object", "required": ["name", "description"], "additionalProperties": false,
      "properties": {
        "name": {"type": "string", "maxLength": 64, "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*([.][A-Za-z0-9_-]+)*$",
                 "description": "Kit name, one path segment: spec/<name>/ or specs/001-<name>/"},
        "title": {"type": "string", "maxLength": 200},
        "description": {"type": "string", "minLength": 1, "maxLength": 20000},
        "features": {"type": "array", "maxItems": 50, "items": {"type": ["string", "object"]},
                     "description": "User stories: titles, or objects with title, description, priority, why, independent_test, acceptance, requirements, success_criteria"},
        "principles": {"type": "array", "maxItems": 20, "items": {"type": ["string", "object"]},
                       "description": "'Name: description' strings, or objects with name and description"},
        "technical_context": {"type": "object"},
        "layout": {"type": "string", "enum": ["plan", "speckit"], "default": "plan"},
        "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
      }},
    "steps": [{"kind": "python", "name": "generate", "handler": "speckit.generate"}],
    "max_attempts": 1,
    "non_retryable_errors": ["invalid_input", "not_found", "permission_denied"]
  },
  {
    "name": "validate_spec_kit",
    "description": "Validate a spec kit against GitHub Spec Kit's format (files, sections, placeholders, user stories, FR-/SC- ids, tasks, coverage): spec-kit-report.json (versioned schema) and spec-kit-report.md. Fails on errors, succeeds with warnings. See docs/SPEC_KIT.md.",
    "default_lane": "B",
    "params_schema": {"type": "object", "additionalProperties": false,
      "properties": {
        "path": {"type": "string", "minLength": 1, "maxLength": 1024,
                 "description": "A kit folder or zip under the worker's PULSER_OPS_SPEC_ROOT; with run_id or git_ref, a folder inside that source"},
        "run_id": {"type": "string", "pattern": "^[0-9a-fA-F-]{36}$", "description": "A run whose zip artifact to validate"},
        "artifact": {"type": "string", "minLength": 1, "maxLength": 255, "default": "spec-kit.zip"},
        "git_ref": {"type": "string", "minLength": 1, "maxLength": 200, "description": "A branch, tag or commit"},
        "git_repo": {"type": "string", "minLength": 1, "maxLength": 1024,
                     "description": "https:// URL, or a repository under PULSER_OPS_SPEC_ROOT (default: the root itself)"}
      }},
    "steps": [{"kind": "python", "name": "validate", "handler": "speckit.validate"}],
    "max_attempts": 1,
    "non_retryable_errors": ["invalid_input", "not_found", "permission_denied", "spec_kit_invalid"]
  }
]$json$::jsonb) as t;
