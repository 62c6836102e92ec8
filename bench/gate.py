"""The start gate of a timed drain: every worker process of a system starts together.

Why: a 10,000-run drain lasts one to two seconds, about as long as a Python process takes to
import its queue library and connect. Started without a gate, the first process to be ready
drained alone while the others were still importing, so the rate also measured start-up
skew. Each process writes its ``ready`` file once connected, then waits for the runner to
create ``go``.

Stdlib only: the pulser-ops scripts and the peers' scripts (another virtualenv) share it.
"""

from __future__ import annotations

import os
import time


def ready_then_wait(ready: str, go: str) -> None:
    """Say this process is ready (if asked to), then hold until the gate opens (if any)."""
    if ready:
        open(ready, "w").close()
    while go and not os.path.exists(go):
        time.sleep(0.001)
