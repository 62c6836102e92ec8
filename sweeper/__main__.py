"""``python -m sweeper`` from a checkout (cron on a host that has the repository).

The same command as ``pulser-ops sweep``: options, exit codes and behaviour are
:func:`pulser_ops.sweeper.main`'s, so the job and an installed sweeper cannot drift apart.
"""

from __future__ import annotations

import sys

from pulser_ops.sweeper import main

if __name__ == "__main__":
    sys.exit(main())
