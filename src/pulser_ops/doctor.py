"""``pulser-ops doctor``: is this deployment ready, and if not, what exactly to do.

Every check reads the deployment through the same SDK and transports users run, so a green
doctor means workers and operators will work. ``smoke`` pushes one real run through enqueue,
claim, heartbeat, artifact (a Storage file), events, a live change and completion, then deletes
what it made. Over Supabase it also tries what a hosted project limits (``doctor_platform``):
the row cap, the key, a change before Realtime is ready, one too big for Realtime, an artifact
name Storage may refuse, a deleted run reaching a subscriber.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from . import calls, resources
from .client import Client
from .db.migrate import parse_replaces
from .errors import PulserOpsError
from .models import LANES, Change, RunStatus

Status = Literal["ok", "warn", "fail"]

#: Every public function the SDK calls (kept in step with calls.py by a test).
REQUIRED_FUNCTIONS = frozenset(
    {
        "add_session_messages",
        "append_run_events",
        "board_snapshot",
        "bulk_cancel_runs",
        "bulk_rerun_runs",
        "bulk_run_now",
        "cancel_run",
        "claim_runs",
        "complete_run",
        "complete_runs",
        "control_plane_info",
        "count_runs",
        "create_session",
        "delete_runs",
        "delete_schedule",
        "delete_session",
        "delete_template",
        "deregister_worker",
        "enqueue_due_schedules",
        "enqueue_run",
        "enqueue_runs",
        "evaluate_alerts",
        "fleet_metrics",
        "get_artifact",
        "get_lane_stats",
        "get_run",
        "get_run_on_behalf_of",
        "get_schedule",
        "get_runs",
        "get_template",
        "get_template_version",
        "get_worker_health",
        "heartbeat_run",
        "heartbeat_runs",
        "list_alerts",
        "list_artifacts",
        "list_held_runs",
        "list_lanes",
        "list_last_run_events",
        "list_run_events",
        "list_run_steps",
        "list_run_timeline",
        "list_runs",
        "list_schedules",
        "list_session_messages",
        "list_session_runs",
        "list_session_summaries",
        "list_sessions",
        "list_spec_docs",
        "list_stuck_runs",
        "list_template_summaries",
        "list_template_versions",
        "list_templates",
        "list_workers",
        "performance_stats",
        "preview_schedule",
        "prune_runs",
        "put_artifact",
        "put_spec_docs",
        "record_run_step",
        "register_worker",
        "release_run",
        "rerun_run",
        "run_now",
        "runs_changed_since",
        "search_runs",
        "set_lane",
        "set_schedule_enabled",
        "sweep_expired_runs",
        "upsert_schedule",
        "upsert_schedules",
        "upsert_template",
        "upsert_templates",
        "validate_params",
        "validate_template",
    }
)
PUBLISHED = frozenset({"runs", "run_steps", "run_events", "artifacts", "workers"})
SMOKE_TEMPLATE = "pulser-ops-doctor"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def _shipped_versions() -> list[str]:
    return sorted(p.name.split("_", 1)[0] for p in resources.migrations_dir().glob("*.sql"))


def _replaced_versions() -> set[str]:
    """Versions a shipped squashed migration stands for (its ``-- replaces:`` line)."""
    return {
        v
        for p in resources.migrations_dir().glob("*.sql")
        for v in parse_replaces(p.read_text(encoding="utf-8"), p.name)
    }


def run_checks(client: Client) -> tuple[list[Check], dict[str, Any] | None]:
    out: list[Check] = [Check("configuration", "ok", client.description or "configured")]
    try:
        info = client.transport.execute(calls.control_plane_info())
    except PulserOpsError as e:
        if e.code == "not_found":
            out.append(
                Check(
                    "control plane",
                    "fail",
                    f"functions missing ({e})",
                    "apply the migrations: `supabase db push` or `pulser-ops db push --db-url URL`",
                )
            )
        elif e.code == "permission_denied":
            out.append(
                Check(
                    "keys",
                    "fail",
                    f"this key may not read the control plane ({e})",
                    "use the service role key (workers) or a signed-in user's JWT (operators)",
                )
            )
        else:
            out.append(
                Check(
                    "connection",
                    "fail",
                    f"{e.code}: {e}",
                    "check PULSER_OPS_DATABASE_URL, or SUPABASE_URL and its key",
                )
            )
        return out, None
    out.append(Check("connection", "ok", f"PostgreSQL {info.get('server_version', '?')}"))

    applied = set(info.get("migrations") or [])
    missing = [v for v in _shipped_versions() if v not in applied]
    if not applied:
        out.append(
            Check(
                "migrations",
                "warn",
                "no migration history (applied by hand?)",
                "apply with `supabase db push` or `pulser-ops db push` so upgrades are tracked",
            )
        )
    elif missing:
        squashed = sorted(applied & _replaced_versions())
        out.append(
            Check(
                "migrations",
                "fail",
                f"not applied: {', '.join(missing)}",
                "run `pulser-ops db push --db-url URL` (it records the squashed baseline in place"
                f" of {', '.join(squashed)}), or repair the history for `supabase db push` as"
                " supabase/README.md says (Squashed migrations)"
                if squashed
                else "run `supabase db push` (or `pulser-ops db push --db-url URL`)",
            )
        )
    else:
        out.append(Check("migrations", "ok", f"{len(applied)} applied, none missing"))

    absent = sorted(REQUIRED_FUNCTIONS - set(info.get("functions") or []))
    out.append(
        Check("functions", "fail", f"missing: {', '.join(absent)}", "run `supabase db push`")
        if absent
        else Check("functions", "ok", f"all {len(REQUIRED_FUNCTIONS)} present")
    )

    unpublished = sorted(PUBLISHED - set(info.get("published") or []))
    out.append(
        Check(
            "realtime publication",
            "fail",
            f"not published: {', '.join(unpublished)}",
            "re-run the migrations; they add the tables to supabase_realtime",
        )
        if unpublished
        else Check("realtime publication", "ok", "runs, run_steps, run_events, artifacts, workers")
    )

    no_rls = info.get("tables_without_rls") or []
    out.append(
        Check(
            "row level security",
            "fail",
            f"RLS off on: {', '.join(no_rls)}",
            "enable it again: `alter table public.<t> enable row level security`",
        )
        if no_rls
        else Check("row level security", "ok", "on for every table")
    )

    bucket = info.get("bucket")
    if not bucket:
        out.append(
            Check(
                "storage bucket",
                "fail",
                "bucket run-artifacts is missing",
                "run `supabase db push`",
            )
        )
    elif bucket.get("public"):
        out.append(
            Check(
                "storage bucket",
                "fail",
                "bucket run-artifacts is PUBLIC",
                "make it private: `update storage.buckets set public = false"
                " where id = 'run-artifacts'`",
            )
        )
    else:
        out.append(
            Check(
                "storage bucket",
                "ok",
                f"run-artifacts (private); files: {client.transport.files.describe()}",
            )
        )

    caller = info.get("caller")
    if caller == "service":
        out.append(Check("keys", "ok", "service role: may run workers and the sweeper"))
    elif caller in ("admin", "operator"):
        out.append(
            Check(
                "keys",
                "warn",
                f"signed in as an {caller}: fine for operating, not for workers",
                "workers and the sweeper need SUPABASE_SERVICE_ROLE_KEY (or a database URL)",
            )
        )
    else:
        out.append(Check("keys", "fail", f"caller is {caller}", "use the service role key"))
    from . import doctor_platform as platform

    out += [c for c in (platform.key_style(client), platform.access_token(client)) if c]
    try:
        lanes = client.lanes.list()
        paused = [lane.id for lane in lanes if lane.paused]
        out.append(
            Check(
                "lanes",
                "warn" if paused else "ok",
                f"paused: {', '.join(paused)}" if paused else "A-D open",
                "resume with `pulser-ops lanes resume L`" if paused else "",
            )
        )
    except PulserOpsError as e:
        out.append(Check("lanes", "fail", str(e)))
    return out, info


class _Seen:
    """The changes a smoke subscription delivered, searchable after the fact."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.items: list[Change] = []

    def until(self, want: Callable[[Change], bool], timeout: float) -> Change | None:
        found = next((c for c in self.items if want(c)), None)
        end = time.monotonic() + timeout
        while found is None and time.monotonic() < end:
            change = self.sub.next(timeout=max(0.1, end - time.monotonic()))
            if change is not None:
                self.items.append(change)
                found = change if want(change) else None
        return found


def smoke(
    client: Client, *, timeout: float = 20.0, say: Callable[[str], None] = lambda s: None
) -> list[Check]:
    """One real run end to end, then clean up. Never leaves another run claimed: a run it
    claims by mistake (someone else's, same lane and priority) is released at once."""
    from . import doctor_platform as platform

    out: list[Check] = []
    worker = f"doctor-{uuid.uuid4().hex[:8]}"
    lanes = [lane.id for lane in client.lanes.list() if not lane.paused]
    if not lanes:
        return [Check("smoke", "fail", "every lane is paused", "resume a lane first")]
    lane = lanes[0]
    client.templates.upsert(
        {
            "name": SMOKE_TEMPLATE,
            "description": "pulser-ops doctor --smoke",
            "default_lane": lane,
            "max_attempts": 1,
            "lease_seconds": 30,
            "steps": [{"kind": "python", "handler": "noop"}],
        }
    )
    run = client.runs.create(SMOKE_TEMPLATE, lane=lane, priority=100)
    created = [run.id]
    try:
        with client.subscribe(runs=[run.id]) as sub:
            seen = _Seen(sub)
            first = seen.until(lambda c: True, timeout)
            if first is None:
                out.append(
                    Check(
                        "realtime",
                        "fail",
                        "the subscription never came up",
                        "check Realtime is enabled and the key may read runs",
                    )
                )
                return out
            say("subscribed")
            mine = None
            foreign = []  # runs claimed by mistake: held until ours is found, then released
            try:
                for _ in range(50):
                    claimed = client.runs.claim(worker, lanes=[lane], limit=1)
                    if not claimed:
                        break
                    if claimed[0].id == run.id:
                        mine = claimed[0]
                        break
                    foreign.append(claimed[0])
            finally:
                for other in foreign:
                    client.runs.release(
                        other.id,
                        worker,
                        other.attempt,
                        reason="doctor --smoke claimed it by mistake",
                    )
            if mine is None:
                now = client.runs.get(run.id)
                out.append(
                    Check(
                        "claim", "warn", f"a live worker took the smoke run first ({now.worker_id})"
                    )
                )
                end = time.monotonic() + timeout
                while not now.is_terminal and time.monotonic() < end:
                    time.sleep(0.2)
                    now = client.runs.get(run.id)
                out.append(
                    Check(
                        "complete",
                        "ok" if now.status == RunStatus.SUCCEEDED else "fail",
                        f"the worker finished it: {now.status}",
                    )
                )
                return out
            out.append(Check("claim", "ok", f"claimed {str(run.id)[:8]} from lane {lane}"))
            # On Supabase the claim lands right after the join, before Realtime says the feed is
            # live ("Subscribed to PostgreSQL"): it must still reach the subscriber.
            early = seen.until(
                lambda c: c.run is not None and c.run.version >= mine.version, timeout
            )
            out.append(
                Check(
                    "realtime ready",
                    "ok",
                    f"a change right after subscribing arrived ({early.kind})",
                )
                if early
                else Check(
                    "realtime ready",
                    "fail",
                    "a change right after subscribing was lost",
                    "upgrade pulser-ops: it catches up when Realtime's feed is ready",
                )
            )
            beat = client.runs.heartbeat(run.id, worker, mine.attempt)
            out.append(Check("heartbeat", "ok", f"lease until {beat.lease_expires_at:%H:%M:%S}"))
            payload = uuid.uuid4().bytes * 4096
            client.artifacts.put(run.id, "doctor/blob.bin", payload, attempt=mine.attempt)
            back = client.artifacts.download(run.id, "doctor/blob.bin")
            out.append(
                Check(
                    "artifact",
                    "ok" if back == payload else "fail",
                    f"{len(payload)} bytes stored and read back via "
                    f"{client.transport.files.describe()}",
                )
            )
            out.append(platform.unicode_artifact(client, run.id, mine.attempt))
            client.events.log(run.id, "doctor was here")
            big = platform.big_result()
            client.runs.complete(run.id, worker, mine.attempt, "succeeded", result=big)
            live = seen.until(
                lambda c: c.run is not None and c.run.status == RunStatus.SUCCEEDED, timeout
            )
            if live is None:
                out.append(
                    Check(
                        "realtime",
                        "fail",
                        f"no change reached the subscriber within {timeout:.0f}s",
                        "check the supabase_realtime publication and Realtime's status",
                    )
                )
            else:
                out.append(
                    Check(
                        "realtime",
                        "ok" if live.kind != "SNAPSHOT" else "warn",
                        f"saw the run succeed ({live.kind})",
                    )
                )
                whole = live.run is not None and live.run.result == big
                out.append(
                    Check(
                        "large change",
                        "ok" if whole else "fail",
                        "a result over Realtime's 1 MiB payload limit arrived whole"
                        if whole
                        else "a change over Realtime's payload limit arrived stripped",
                        "" if whole else "upgrade pulser-ops: it reads such rows back by id",
                    )
                )
            out.append(Check("complete", "ok", "succeeded"))
            client.runs.delete(created)
            created = []
            gone = seen.until(lambda c: c.kind == "DELETE" and c.run_id == run.id, timeout)
            out.append(
                Check("deleted run", "ok", "the subscriber heard the run was deleted")
                if gone
                else Check(
                    "deleted run", "fail", "the DELETE of the run never reached the subscriber"
                )
            )
    finally:
        try:
            if created:
                current = client.runs.get(run.id)
                if not current.is_terminal:
                    client.runs.cancel(run.id, reason="doctor cleanup")
                deadline = time.monotonic() + timeout
                while not client.runs.get(run.id).is_terminal and time.monotonic() < deadline:
                    time.sleep(0.2)
                client.runs.delete(created)
            out.append(Check("cleanup", "ok", "smoke run, its events and files deleted"))
        except PulserOpsError as e:
            out.append(
                Check(
                    "cleanup",
                    "warn",
                    f"could not delete the smoke run: {e}",
                    f"delete run {run.id} by hand",
                )
            )
    # After the smoke run's subscription is closed: its thousands of changes are nobody's.
    out += platform.row_cap(client, SMOKE_TEMPLATE, lane, say)
    wrong = platform.wrong_key(client)
    return out + ([wrong] if wrong else [])


__all__ = ["LANES", "REQUIRED_FUNCTIONS", "Check", "run_checks", "smoke"]
