"""Running the alerts: ``pulser-ops alerts`` (a loop, or ``--once`` for cron) and the sweeper's
``--alerts`` option share this.

An evaluation that fails for want of the database is logged and tried at the next interval
(a loop never dies of a network blip); a bad rules file stops the command before it starts,
naming the line.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..client import Client
from ..errors import PulserOpsError, TransportError
from ..metrics.process import AlertMetrics
from ..models import AlertNotice
from .engine import AlertEngine, describe
from .notify import Send, apprise_send
from .rules import Rules, load, urls_from_env

log = logging.getLogger("pulser_ops.alerts")

#: How long ``--once`` (and a stopping loop) waits for queued notices to go out.
DELIVERY_GRACE_SECONDS = 60.0


def print_notice(n: AlertNotice) -> None:
    print(f"alert: {describe(n)}", flush=True)


def rules_for(rules_file: Path | str | None, urls: Sequence[str] = ()) -> Rules:
    """The rules (file or defaults) with the notification URLs of the flags and of
    ``PULSER_OPS_ALERT_URLS`` added; ``AlertRulesError`` for a bad file. Read before anything
    connects, so a mistake costs no connection."""
    return load(rules_file).with_urls([*urls, *urls_from_env()])


def engine_for(
    client: Client,
    rules: Rules,
    *,
    send: Send = apprise_send,
    on_notice: Callable[[AlertNotice], None] | None = print_notice,
) -> AlertEngine:
    if not rules.notify:
        log.warning(
            "alerts: no notification targets (notify: in the rules file, --notify, or "
            "PULSER_OPS_ALERT_URLS): incidents are recorded, nobody is told"
        )
    return AlertEngine(client, rules, send=send, metrics=AlertMetrics(), on_notice=on_notice)


def evaluate_safely(engine: AlertEngine) -> bool:
    """One evaluation that never raises for want of the database (False then)."""
    try:
        engine.evaluate()
    except TransportError as e:
        print(f"alerts: cannot evaluate now ({e}); trying again later", file=sys.stderr, flush=True)
        return False
    return True


def run(engine: AlertEngine, *, once: bool, interval: float | None, stop: threading.Event) -> int:
    """Evaluate once (exit status: 1 if the control plane refused, or a notice could not be
    delivered) or every ``interval`` seconds until ``stop``."""
    every = interval if interval is not None else engine.rules.interval
    try:
        if once:
            try:
                engine.evaluate()
            except PulserOpsError as e:
                print(f"alerts: {e}", file=sys.stderr, flush=True)
                return 1
            engine.notifier.wait_idle(DELIVERY_GRACE_SECONDS)
            return 1 if engine.notifier.outcomes().get("dropped") else 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                evaluate_safely(engine)
            except PulserOpsError as e:  # refused: bad rules for this control plane, rights
                print(f"alerts: {e}", file=sys.stderr, flush=True)
                return 1
            stop.wait(max(0.0, every - (time.monotonic() - started)))
        return 0
    finally:
        engine.close(DELIVERY_GRACE_SECONDS if once else 10.0)
