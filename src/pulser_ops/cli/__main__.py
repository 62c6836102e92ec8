"""``python -m pulser_ops.cli``: the same as the ``pulser-ops`` console script."""

from pulser_ops.cli import main

main()
