"""deploy/prometheus/alerts.yml: valid rules (``promtool check rules``) that do what their unit
tests say (``promtool test rules``: each rule fires on its condition and only then)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.prometheus import binary

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], cwd=DEPLOY, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def test_the_rules_are_valid() -> None:
    out = _promtool("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    out = _promtool("test", "rules", "alerts_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: without the paused-lane exception, a worker whose only lane is
    paused would be paged about."""
    rules = (DEPLOY / "alerts.yml").read_text()
    broken = rules.replace("unless on (lane) (max by (lane) (pulser_lane_paused) == 1)\n", "\n", 1)
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken)
    (tmp_path / "alerts_test.yml").write_text((DEPLOY / "alerts_test.yml").read_text())
    out = subprocess.run([binary("promtool"), "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0 and "w-paused" in out.stdout + out.stderr
