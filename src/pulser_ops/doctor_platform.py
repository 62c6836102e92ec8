"""What ``pulser-ops doctor`` checks of the platform itself: the limits a hosted Supabase project
imposes that a local database does not (docs/SUPABASE.md).

- the key: which style it is (``sb_secret_``/``sb_publishable_``, or a legacy JWT key, which
  Supabase retires by the end of 2026), and that a wrong one is refused as a configuration
  error, not retried as a network failure;
- an operator's token: when it expires, and whether something refreshes it;
- the Data API row cap (``--smoke``): 1,500 runs created and every one returned, a few of them
  with files, then deleted in pages under the cap with their files, the calls timed against
  the API's 8 s statement timeout.

``doctor.smoke`` runs the rest on its smoke run: a change between the join and Realtime's
"ready", a change too big for Realtime (413), an artifact with a non-ASCII name, the DELETE of a
run reaching a subscriber.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from .client import Client
from .config import Settings
from .doctor import Check
from .errors import ConfigurationError, InvalidInput, NotFound, PulserOpsError
from .tokens import claims_of

#: Runs the row-cap check creates: over Supabase's default cap of 1000 rows per reply.
ROW_CAP_RUNS = 1500
#: Of those, how many get a file (all after the first 1000: where a cut reply loses them).
ROW_CAP_FILES = 5
#: Supabase's statement timeout for API roles; a call should stay well under it.
API_STATEMENT_TIMEOUT_SECONDS = 8.0
#: A key no project has: the gateway must refuse it.
WRONG_KEY = "sb_publishable_pulser-ops-doctor-not-a-key"


def settings_of(client: Client) -> Settings | None:
    """The Supabase settings behind a client (None over a direct connection)."""
    value = getattr(client.transport, "settings", None)
    return value if isinstance(value, Settings) else None


def key_style(client: Client) -> Check | None:
    s = settings_of(client)
    if s is None or not s.supabase_key:
        return None
    key = s.supabase_key
    if key.startswith(("sb_secret_", "sb_publishable_")):
        kind = "secret" if key.startswith("sb_secret_") else "publishable"
        return Check("key style", "ok", f"new API key ({kind}, from {s.key_source})")
    role = claims_of(key).get("role", "?")
    return Check(
        "key style",
        "warn",
        f"legacy JWT key ({role}, from {s.key_source}); Supabase retires these by the end of 2026",
        "create a secret key (workers, sweeper) or a publishable key (operators) in the"
        " dashboard's API settings and set SUPABASE_SECRET_KEY / SUPABASE_PUBLISHABLE_KEY",
    )


def access_token(client: Client) -> Check | None:
    s = settings_of(client)
    if s is None:
        return None
    if s.token_provider is not None:
        return Check("access token", "ok", "refreshed by a token provider before it expires")
    if not s.access_token:
        return None
    exp = claims_of(s.access_token).get("exp")
    if not isinstance(exp, int | float):
        return Check(
            "access token",
            "fail",
            "the access token has no exp claim",
            "Realtime requires `exp`: use a token issued by Supabase Auth",
        )
    left = exp - time.time()
    return Check(
        "access token",
        "warn",
        f"a fixed token, valid for {max(0, left) / 60:.0f} more minute(s); long feeds (tail,"
        " subscriptions) end when it expires",
        "set PULSER_OPS_REFRESH_TOKEN (the session's refresh token) so it is refreshed",
    )


def wrong_key(client: Client) -> Check | None:
    """A request with a key no project has: refused at the gateway, reported at once."""
    s = settings_of(client)
    if s is None:
        return None
    from . import connect

    started = time.monotonic()
    with connect(supabase_url=s.supabase_url, supabase_key=WRONG_KEY, access_token=None) as c:
        try:
            c.lanes.list()
        except ConfigurationError:
            took = time.monotonic() - started
            return Check(
                "wrong key", "ok", f"refused at the gateway, reported at once ({took:.1f} s)"
            )
        except PulserOpsError as e:
            return Check("wrong key", "warn", f"refused, but as {e.code}: {e}")
    return Check(
        "wrong key",
        "fail",
        "a key of no project was accepted",
        "check SUPABASE_URL: it must be the project's API URL",
    )


def row_cap(client: Client, template: str, lane: str, say: Callable[[str], None]) -> list[Check]:
    """1,500 runs (not claimable: ``run_after`` tomorrow), every one returned; files on the
    last few; then cancelled and deleted in pages, files and all. ``template`` is the doctor's
    own: every run of it is the doctor's, which is how a failed step still cleans up."""
    out: list[Check] = []
    later = datetime.now(UTC) + timedelta(days=1)
    cap = client.transport.max_rows
    calls = -(-ROW_CAP_RUNS // cap) if cap else 1
    paths: list[str] = []
    try:
        started = time.monotonic()
        runs = client.runs.create_many(
            [
                {"template": template, "lane": lane, "run_after": later, "params": {"i": i}}
                for i in range(ROW_CAP_RUNS)
            ]
        )
        per_call = (time.monotonic() - started) / calls
        say(f"created {len(runs)} runs")
        whole = len(runs) == ROW_CAP_RUNS
        out.append(
            Check(
                "row cap",
                "ok" if whole else "fail",
                f"{ROW_CAP_RUNS} runs created in {calls} call(s) of at most {cap or 'any'} rows,"
                f" {len(runs)} returned",
                "" if whole else "set PULSER_OPS_MAX_ROWS to the project's max rows",
            )
        )
        quick = per_call < API_STATEMENT_TIMEOUT_SECONDS / 2
        out.append(
            Check(
                "call time",
                "ok" if quick else "warn",
                f"{per_call:.1f} s per call of {min(cap or ROW_CAP_RUNS, ROW_CAP_RUNS)} runs"
                f" (the API's statement timeout: {API_STATEMENT_TIMEOUT_SECONDS:.0f} s)",
                "" if quick else "lower PULSER_OPS_MAX_ROWS so each call does less",
            )
        )
        for r in runs[-ROW_CAP_FILES:]:
            a = client.artifacts.put(r.id, "doctor/row-cap.txt", b"x" * 300, inline=False)
            if a.storage_path:
                paths.append(a.storage_path)
    except PulserOpsError as e:
        out.append(Check("row cap", "fail", f"{e.code}: {e}"))
    out.append(delete_all(client, template, paths))
    return out


def delete_all(client: Client, template: str, paths: Sequence[str] = ()) -> Check:
    """Cancel and delete every run of ``template`` (the doctor's own), in pages under the row
    cap, with their files; ``paths``: files that must be gone afterwards."""
    try:
        ids = [r.id for r in client.runs.iter(template=template, limit=1000)]
        for start in range(0, len(ids), 1000):
            client.runs.bulk_cancel(ids[start : start + 1000], max_runs=1000,
                                    reason="doctor --smoke")  # fmt: skip
        gone = client.runs.delete(ids)
        left = [p for p in paths if _exists(client, p)]
    except PulserOpsError as e:
        return Check("paged delete", "fail", f"{e.code}: {e}",
                     f"delete the runs of template {template} by hand")  # fmt: skip
    return Check(
        "paged delete",
        "ok" if gone == len(ids) and not left else "fail",
        f"{gone} runs deleted in pages of at most {client.transport.max_rows or 'any'},"
        f" {len(paths) - len(left)} of {len(paths)} files removed",
    )


def _exists(client: Client, path: str) -> bool:
    try:
        client.transport.files.get(path)
    except NotFound:
        return False
    return True


#: A name with characters outside Storage's object-key set (non-ASCII).
UNICODE_NAME = "doctor/naïve-ünïcode.txt"


def unicode_artifact(client: Client, run_id: UUID, attempt: int) -> Check:
    payload = "ünïcode ✓".encode()
    try:
        client.artifacts.put(run_id, UNICODE_NAME, payload, attempt=attempt, inline=False)
        back = client.artifacts.download(run_id, UNICODE_NAME)
    except InvalidInput as e:
        if "valid object key" in str(e):  # accepted by the SDK, refused by Storage
            return Check(
                "artifact names",
                "warn",
                f"Storage refused {UNICODE_NAME!r}: {e}",
                "name artifacts with A-Z a-z 0-9 and _ / ! . * ' ( ) & $ @ = ; : + , ? -",
            )
        return Check("artifact names", "ok", f"refused up front, on every transport: {e}")
    return Check(
        "artifact names",
        "ok" if back == payload else "fail",
        f"{UNICODE_NAME!r} stored and read back",
    )


def big_result() -> dict[str, Any]:
    """A result whose change is over Realtime's 1 MiB payload limit (it arrives as a 413)."""
    return {"doctor": True, "pad": "x" * (1024 * 1024 + 1024)}


__all__ = [
    "access_token",
    "big_result",
    "key_style",
    "row_cap",
    "settings_of",
    "unicode_artifact",
    "wrong_key",
]
