"""The fleet's gauges, read from the database at scrape time (``fleet_metrics``).

One SQL call per scrape, at a bounded cost (exact below the caps, estimates above them:
``pulser_fleet_exact`` says which), turned into Prometheus gauges here. Served by
``pulser-ops metrics`` (:class:`FleetCollector` in a registry) and by ``/metrics`` on
``pulser-ops ui`` (:func:`families` of a snapshot the board's client fetched).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import PulserOpsError
from ..models import LANES, FleetMetrics

log = logging.getLogger("pulser_ops.metrics")

#: A scrape within this many seconds of the last one reuses its snapshot (two Prometheus
#: replicas, a dashboard's own scrape: one query).
REUSE_SECONDS = 1.0


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def families(snap: FleetMetrics) -> list[Metric]:
    """The gauges of one snapshot."""
    runs = _gauge("pulser_runs", "Runs in the table by lane, template and status (queued and "
                  "running exact below the caps; finished ones sampled on big tables: see "
                  "pulser_fleet_exact).", ("lane", "template", "status"))
    oldest = _gauge("pulser_queue_oldest_age_seconds", "Seconds the lane's oldest ready queued "
                    "run has waited (0: nothing waits).", ("lane",))
    stuck = _gauge("pulser_runs_stuck", "Running runs whose lease expired (the sweeper has not "
                   "taken them yet).", ("lane",))
    paused = _gauge("pulser_lane_paused", "1 while the lane is paused.", ("lane",))
    for q in snap.lanes:
        split = q.templates or ({"": q.queued} if q.queued else {})
        for template, n in sorted(split.items()):
            runs.add_metric([q.lane, template, "queued"], n)
        oldest.add_metric([q.lane], q.oldest_age_seconds or 0.0)
        paused.add_metric([q.lane], 1.0 if q.paused else 0.0)
    stuck_by_lane: dict[str, int] = dict.fromkeys(LANES, 0)
    counted = True
    for r in snap.running:
        runs.add_metric([r.lane, r.template, "running"], r.runs)
        if r.stuck is None:
            counted = False
        else:
            stuck_by_lane[r.lane] += r.stuck
    if counted:
        for lane, n in stuck_by_lane.items():
            stuck.add_metric([lane], n)
    for f in snap.finished:
        runs.add_metric([f.lane, f.template, f.status], f.runs)

    workers = _gauge("pulser_workers", "Workers not stopped and seen lately, alive or stale "
                     "(unseen for 3 heartbeat intervals).", ("state",))
    beat = _gauge("pulser_worker_last_heartbeat_timestamp_seconds",
                  "When the worker was last seen (Unix time).", ("worker",))
    interval = _gauge("pulser_worker_heartbeat_interval_seconds",
                      "The heartbeat interval the worker registered.", ("worker",))
    lanes = _gauge("pulser_worker_lane", "1 for each lane a worker claims from.",
                   ("worker", "lane"))
    slots = _gauge("pulser_worker_slots", "Run slots of the alive workers, used or free.",
                   ("state",))
    state: dict[str, int] = {"alive": 0, "stale": 0}
    used = total = 0
    slots_known = True
    for w in snap.workers:
        state["stale" if w.stale else "alive"] += 1
        beat.add_metric([w.id], w.last_seen_at.timestamp())
        interval.add_metric([w.id], w.heartbeat_seconds)
        for lane in w.lanes:
            lanes.add_metric([w.id, lane], 1.0)
        if not w.stale:
            total += w.concurrency
            if w.running is None:
                slots_known = False
            else:
                used += w.running
    for k, v in state.items():
        workers.add_metric([k], v)
    out: list[Metric] = [runs, oldest, paused, workers, beat, interval, lanes]
    if counted:
        out.append(stuck)
    if slots_known:
        slots.add_metric(["used"], used)
        slots.add_metric(["free"], max(0, total - used))
        out.append(slots)
    exact = _gauge("pulser_fleet_exact", "1 when the part's numbers are exact, 0 when they are "
                   "estimates (a cap or the scrape's time budget was reached).", ("part",))
    exact.add_metric(["queues"], 1.0 if snap.exact else 0.0)
    exact.add_metric(["finished"], 1.0 if snap.finished_exact else 0.0)
    out.append(exact)
    return out


def scrape_families(took: float, error: bool) -> list[Metric]:
    duration = _gauge("pulser_fleet_scrape_duration_seconds",
                      "Seconds the fleet_metrics call took.")
    duration.add_metric([], took)
    failed = _gauge("pulser_fleet_scrape_error",
                    "1 when the database could not be read (the fleet gauges are missing).")
    failed.add_metric([], 1.0 if error else 0.0)
    return [duration, failed]


class FleetCollector(Collector):
    """Reads the fleet at scrape time through ``fetch`` (one call at a time; a scrape right
    after another reuses its snapshot). A failed read yields only
    ``pulser_fleet_scrape_error 1``, so Prometheus sees the outage instead of a dead target."""

    def __init__(self, fetch: Callable[[], FleetMetrics]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._last: tuple[float, list[Metric]] | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: do not read the database then

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < REUSE_SECONDS:
                yield from self._last[1]
                return
            started = time.monotonic()
            try:
                snap = self._fetch()
            except PulserOpsError as e:
                log.warning("metrics: cannot read the fleet: %s", e)
                yield from scrape_families(time.monotonic() - started, True)
                self._last = None
                return
            got = [*families(snap), *scrape_families(time.monotonic() - started, False)]
            self._last = (now, got)
        yield from got



class _Read(Collector):
    """Metrics already read (the board's async client fetched the snapshot)."""

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self._metrics)


def exposition(snap: FleetMetrics | None, took: float) -> bytes:
    """Prometheus text: this process's own metrics (the default registry), then the fleet's
    gauges of ``snap`` (None: the read failed, only ``pulser_fleet_scrape_error 1``)."""
    from prometheus_client import REGISTRY, generate_latest
    from prometheus_client.registry import CollectorRegistry

    fleet = CollectorRegistry(auto_describe=False)
    got = scrape_families(took, snap is None)
    fleet.register(_Read([*families(snap), *got] if snap is not None else got))
    return generate_latest(REGISTRY) + generate_latest(fleet)
