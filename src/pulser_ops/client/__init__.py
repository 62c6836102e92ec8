"""``Client`` and ``AsyncClient``: the control-plane API in namespaces, from one source.

- ``_async/client.py`` is the source: every namespace, written once, as async.
- ``_sync/client.py`` is generated from it by ``python scripts/unasync.py`` (never edit it;
  ``tests/test_unasync.py`` fails when it is stale, ``tests/test_client_parity.py`` when the
  surfaces differ in a method or parameter).
- ``_async/concurrency.py`` and ``_sync/concurrency.py`` are the hand-written pair for what
  differs by nature: blocking file-store calls (a thread in async, a plain call in sync) and
  ``subscribe`` (an async iterator, or a ``SyncSubscription`` on a helper thread).
- ``inputs.py`` turns caller input into models, for both.
"""

from ._async.client import (
    AsyncAlerts,
    AsyncArtifacts,
    AsyncClient,
    AsyncEvents,
    AsyncLanes,
    AsyncMonitoring,
    AsyncRuns,
    AsyncSchedules,
    AsyncSessions,
    AsyncTemplates,
    AsyncWorkers,
)
from ._sync.client import (
    Alerts,
    Artifacts,
    Client,
    Events,
    Lanes,
    Monitoring,
    Runs,
    Schedules,
    Sessions,
    Templates,
    Workers,
)
from .inputs import CompletionLike, EventLike, RunRequestLike

__all__ = [
    "Alerts",
    "Artifacts",
    "AsyncAlerts",
    "AsyncArtifacts",
    "AsyncClient",
    "AsyncEvents",
    "AsyncLanes",
    "AsyncMonitoring",
    "AsyncRuns",
    "AsyncSchedules",
    "AsyncSessions",
    "AsyncTemplates",
    "AsyncWorkers",
    "Client",
    "CompletionLike",
    "EventLike",
    "Events",
    "Lanes",
    "Monitoring",
    "RunRequestLike",
    "Runs",
    "Schedules",
    "Sessions",
    "Templates",
    "Workers",
]
