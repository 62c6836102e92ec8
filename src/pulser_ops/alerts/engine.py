"""One evaluation of the alert rules: the control plane decides, the notifier delivers.

``evaluate_alerts`` (SQL) opens, reminds and resolves incidents in one transaction and returns
the notices; this class only passes them to the :class:`~.notify.Notifier`, whose threads do
the slow part. So an evaluation costs one round trip, whatever the webhooks are doing, and the
sweeper loop that runs it keeps its pace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..client import Client
from ..metrics.process import AlertMetrics
from ..models import AlertNotice
from .notify import Notifier, Send, apprise_send
from .rules import Rules

log = logging.getLogger("pulser_ops.alerts")


class AlertEngine:
    def __init__(
        self,
        client: Client,
        rules: Rules,
        *,
        send: Send = apprise_send,
        metrics: AlertMetrics | None = None,
        on_notice: Callable[[AlertNotice], None] | None = None,
    ) -> None:
        self.client = client
        self.rules = rules
        self._metrics = metrics
        self._on_notice = on_notice
        self._sql = rules.sql()
        self.notifier = Notifier(
            rules.notify,
            delivery=rules.delivery,
            board_url=rules.board_url,
            send=send,
            on_outcome=metrics.delivery if metrics is not None else None,
        )

    def evaluate(self) -> list[AlertNotice]:
        """Evaluate once; the notices are queued for delivery before this returns (raises the
        client's error when the control plane cannot be reached)."""
        notices = self.client.alerts.evaluate(self._sql)
        for n in notices:
            if self._metrics is not None:
                self._metrics.notice(n.rule, n.notice)
            if self._on_notice is not None:
                self._on_notice(n)
        self.notifier.submit(notices)
        return notices

    def close(self, grace: float = 10.0) -> None:
        """Let queued notices go out for up to ``grace`` seconds, then stop."""
        self.notifier.close(grace)


def describe(n: AlertNotice) -> str:
    """One line for a log or a terminal."""
    subject = f" {n.subject}" if n.subject else ""
    return f"{n.notice} {n.severity} {n.rule}{subject}: {n.summary}"
