"""Built-in alerting: rules evaluated by the control plane, notices delivered through apprise.

- :mod:`.rules`: the rules (defaults, or a YAML file whose mistakes are reported with their line);
- :mod:`.engine`: one evaluation (``evaluate_alerts`` in SQL opens, reminds and resolves the
  incidents in ``public.alerts`` and writes ``alert`` events on the runs concerned);
- :mod:`.notify`: delivery to Slack, Discord, Teams, generic JSON, email, ... on a thread per
  target, retried with backoff, never blocking the caller;
- :mod:`.command`: ``pulser-ops alerts`` (a loop, or ``--once`` for cron) and the sweeper's
  ``--alerts`` option.
"""

from __future__ import annotations

from .engine import AlertEngine, describe
from .notify import Notifier, apprise_send, render
from .rules import Rules, Target, load, parse

__all__ = [
    "AlertEngine",
    "Notifier",
    "Rules",
    "Target",
    "apprise_send",
    "describe",
    "load",
    "parse",
    "render",
]
