"""The scheduled sweeper job of a checkout: ``python -m sweeper`` (see README.md here).

Its code is the package's, :mod:`pulser_ops.sweeper`; this folder is not installed by the wheel
(an install runs ``pulser-ops sweep`` or ``python -m pulser_ops.sweeper``).
"""
