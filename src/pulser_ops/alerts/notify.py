"""Deliver alert notices through apprise, off the caller's thread, retried with backoff.

Why a thread per target: a webhook that hangs or answers 500 must never hold up the sweeper
that evaluated the alert, nor another target (a Slack outage must not delay the email). Each
target has a bounded queue; ``submit`` never blocks (a full queue drops the oldest notice, with
a log line and the ``dropped`` delivery counter). A failed delivery is tried again after
``backoff``, doubling up to ``max_backoff``, ``attempts`` times in all.

apprise (https://github.com/caronc/apprise) speaks Slack, Discord, Microsoft Teams, generic
JSON, email and many more from one URL each; pulser-ops writes no client of its own.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..models import AlertNotice
from .rules import Delivery, Target

log = logging.getLogger("pulser_ops.alerts")

#: Notices waiting per target at most.
QUEUE_SIZE = 1000

Send = Callable[[str, str, str, str], bool]
"""(url, title, body, notify_type) -> delivered?"""


def apprise_send(url: str, title: str, body: str, notify_type: str) -> bool:
    """One delivery through apprise; False when the service refused it or did not answer."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(url):
        log.error("alerts: apprise does not understand the URL %s", redact(url))
        return False
    return bool(sender.notify(title=title, body=body, notify_type=apprise.NotifyType(notify_type)))


def redact(url: str) -> str:
    """A URL fit for logs: scheme and host, never the token or password in it."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…" if rest else url


def _ago(started: datetime) -> str:
    s = max(0, int((datetime.now(UTC) - started).total_seconds()))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def render(n: AlertNotice, board_url: str | None = None) -> tuple[str, str, str]:
    """(title, body, apprise notify type) of a notice."""
    head = {"firing": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED"}[n.notice]
    subject = f" ({n.subject})" if n.subject else ""
    title = f"[{head}] pulser-ops {n.rule}{subject}: {n.severity}"
    lines = [n.summary if n.notice != "resolved" else f"Resolved: {n.summary}"]
    when = n.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if n.notice == "resolved" and n.resolved_at is not None:
        took = n.resolved_at - n.started_at
        lines.append(f"Fired at {when}; resolved after {int(took.total_seconds())} s.")
    else:
        lines.append(f"Firing since {when} ({_ago(n.started_at)}); notice {n.notifications}.")
    if n.run_ids:
        shown = ", ".join(str(r) for r in n.run_ids[:5])
        more = f" and {len(n.run_ids) - 5} more" if len(n.run_ids) > 5 else ""
        lines.append(f"Runs: {shown}{more}")
    if board_url:
        base = board_url.rstrip("/")
        if len(n.run_ids) == 1:
            lines.append(f"{base}/runs/{n.run_ids[0]}")
        else:
            lines.append(f"{base}/")
    kind = (
        "success"
        if n.notice == "resolved"
        else {"critical": "failure", "warning": "warning"}.get(n.severity, "info")
    )
    return title, "\n".join(lines), kind


@dataclass(frozen=True)
class _Item:
    notice: AlertNotice
    title: str
    body: str
    kind: str


class _TargetWorker:
    def __init__(self, target: Target, delivery: Delivery, send: Send,
                 on_outcome: Callable[[str], None], stop: threading.Event) -> None:
        self.target = target
        self._delivery = delivery
        self._send = send
        self._on_outcome = on_outcome
        self._stop = stop
        self.queue: queue.Queue[_Item] = queue.Queue(QUEUE_SIZE)
        self.busy = 0
        self._busy_lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._loop, name=f"pulser-alerts {redact(target.url)}", daemon=True
        )

    def put(self, item: _Item) -> None:
        with self._busy_lock:
            self.busy += 1
        while True:
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    old = self.queue.get_nowait()
                except queue.Empty:
                    continue
                self._done()
                log.error("alerts: queue of %s full: dropped %s %s (%s)",
                          redact(self.target.url), old.notice.notice, old.notice.rule,
                          old.notice.subject)
                self._on_outcome("dropped")

    def _done(self) -> None:
        with self._busy_lock:
            self.busy -= 1

    def _loop(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            try:
                self._deliver(item)
            finally:
                self._done()

    def _deliver(self, item: _Item) -> None:
        d = self._delivery
        url = self.target.url
        for attempt in range(1, d.attempts + 1):
            try:
                ok = self._send(url, item.title, item.body, item.kind)
            except Exception as e:  # a library bug must not kill the thread
                log.error("alerts: sending to %s raised %r", redact(url), e)
                ok = False
            if ok:
                self._on_outcome("sent")
                return
            if attempt == d.attempts:
                break
            wait = min(d.max_backoff, d.backoff * 2 ** (attempt - 1)) * (0.8 + random.random() / 5)
            log.warning("alerts: %s refused %s %s (attempt %d of %d); again in %.1f s",
                        redact(url), item.notice.notice, item.notice.rule, attempt, d.attempts,
                        wait)
            self._on_outcome("retried")
            if self._stop.wait(wait):  # closing, and the grace ran out: give up now
                break
        log.error("alerts: gave up on %s %s for %s after %d attempts", item.notice.notice,
                  item.notice.rule, redact(url), d.attempts)
        self._on_outcome("dropped")


class Notifier:
    """Hands notices to their targets' threads; ``submit`` returns at once."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        delivery: Delivery | None = None,
        board_url: str | None = None,
        send: Send = apprise_send,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self._board_url = board_url
        self._stop = threading.Event()
        self._outcomes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._extra = on_outcome
        self._workers = [
            _TargetWorker(t, delivery or Delivery(), send, self._count, self._stop)
            for t in targets
        ]
        for w in self._workers:
            w.thread.start()

    @property
    def targets(self) -> int:
        return len(self._workers)

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._outcomes[outcome] = self._outcomes.get(outcome, 0) + 1
        if self._extra is not None:
            self._extra(outcome)

    def outcomes(self) -> dict[str, int]:
        """Deliveries so far: ``sent``, ``retried`` (attempts that failed and will be tried
        again), ``dropped`` (given up)."""
        with self._lock:
            return dict(self._outcomes)

    def submit(self, notices: Sequence[AlertNotice]) -> int:
        """Queue each notice for the targets that want it; returns how many deliveries."""
        queued = 0
        for n in notices:
            title, body, kind = render(n, self._board_url)
            for w in self._workers:
                if w.target.wants(n.rule, n.severity, n.notice):
                    w.put(_Item(n, title, body, kind))
                    queued += 1
        return queued

    def pending(self) -> int:
        return sum(w.busy for w in self._workers)

    def wait_idle(self, timeout: float) -> bool:
        """Until every queued notice is delivered or dropped (True), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self, grace: float = 10.0) -> None:
        """Give queued notices up to ``grace`` seconds, then stop the threads (a retry that
        is waiting gives up at once)."""
        self.wait_idle(grace)
        self._stop.set()
        for w in self._workers:
            w.thread.join(timeout=5)
