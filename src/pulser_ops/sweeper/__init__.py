"""The sweeper: requeues or fails runs whose lease expired (their worker stopped heartbeating),
and fires the schedules that are due.

The decisions, row by row and under lock, are the SQL functions ``sweep_expired_runs`` and
``enqueue_due_schedules``; this package only calls them in bounded batches (:func:`sweep_once`)
and wraps that in a command (:func:`main`: ``pulser-ops sweep``, ``python -m
pulser_ops.sweeper``). It lives in the package so an install runs it without a checkout; the
repository's top-level ``sweeper/`` folder keeps the scheduled job (``python -m sweeper``),
``pg_cron.sql`` and how to schedule them.
"""

from __future__ import annotations

from .command import main
from .sweep import SweepReport, sweep_once

__all__ = ["SweepReport", "main", "sweep_once"]
