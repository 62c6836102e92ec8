"""How the hostile property suites draw their larger profiles.

In the suite (and CI) the draws are the same on every run, so it passes or fails for a reason
and a failure is reproduced by running it again. ``PULSER_OPS_FUZZ=1`` draws new examples on
every run, ten times as many, to look for bugs the fixed draws miss; what it finds becomes a
fix and a deterministic test (as ``test_edge_values_in_each_parameter_fail_cleanly`` and
``test_a_list_nested_10000_deep_is_refused_in_every_parameter`` did).

    PULSER_OPS_FUZZ=1 .venv/bin/python -m pytest tests/contract/test_hostile_properties.py \\
        tests/cli/test_hostile_cli.py -k larger_profile
"""

from __future__ import annotations

import os
from typing import Any

FUZZ = os.environ.get("PULSER_OPS_FUZZ") == "1"


def larger(examples: int) -> dict[str, Any]:
    """Settings for a larger profile of ``examples`` examples (see the module docstring)."""
    return {"max_examples": examples * 10 if FUZZ else examples, "derandomize": not FUZZ}
