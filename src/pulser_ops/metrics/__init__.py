"""Prometheus metrics: the fleet's gauges from the database, and what each process knows.

- :mod:`.fleet`: ``pulser_runs``, ``pulser_queue_oldest_age_seconds``, ``pulser_runs_stuck``,
  ``pulser_lane_paused``, ``pulser_workers``, ``pulser_worker_*``: one ``fleet_metrics`` call
  per scrape (``pulser-ops metrics``, ``/metrics`` on ``pulser-ops ui``);
- :mod:`.worker`: a worker's counters and histograms (``pulser-ops worker --metrics-port``);
- :mod:`.process`: counters only one process knows (runs enqueued, what the sweeper swept,
  alert notices), made once per registry;
- :mod:`.serve`: the HTTP endpoint.

docs/MONITORING.md lists every metric with its meaning.
"""

from __future__ import annotations

from .process import AlertMetrics, SweeperMetrics, count_enqueued
from .serve import MetricsServer, serve

__all__ = ["AlertMetrics", "MetricsServer", "SweeperMetrics", "count_enqueued", "serve"]
