"""``python -m pulser_ops.sweeper``: the same as ``pulser-ops sweep``."""

from __future__ import annotations

import sys

from pulser_ops.sweeper.command import main

if __name__ == "__main__":
    sys.exit(main())
