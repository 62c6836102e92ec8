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
  }
]$json$::jsonb) as t;
