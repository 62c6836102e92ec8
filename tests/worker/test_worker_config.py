"""Worker settings: flags > env > config file > defaults; bad values are one clear line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pulser_ops.worker import WorkerConfig, WorkerConfigError, load
from tests.worker.conftest import PULSER_OPS


def test_defaults() -> None:
    cfg = load({}, env={})
    assert cfg.lanes == ("A", "B", "C", "D") and cfg.concurrency == 1 and not cfg.burst
    assert cfg.lease_seconds is None and cfg.poll_seconds == 2.0
    assert cfg.shutdown_grace_seconds == 30.0
    assert str(os.getpid()) in cfg.worker_id


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    toml = tmp_path / "worker.toml"
    toml.write_text(
        '[worker]\nlanes = ["C"]\nconcurrency = 3\npoll_seconds = 7\nworker_id = "from-file"\n'
    )
    env = {"PULSER_OPS_CONCURRENCY": "5", "PULSER_OPS_POLL_SECONDS": "0.5"}
    cfg = load({"concurrency": "9", "lanes": None}, env=env, config_file=toml)
    assert cfg.concurrency == 9  # flag beats env and file
    assert cfg.poll_seconds == 0.5  # env beats file
    assert cfg.lanes == ("C",) and cfg.worker_id == "from-file"  # file beats defaults
    assert cfg.shutdown_grace_seconds == 30.0  # default


def test_yaml_file_and_env_lanes(tmp_path: Path) -> None:
    yml = tmp_path / "worker.yaml"
    yml.write_text("lanes: A,b\nlease_seconds: 20\nheartbeat_seconds: 2.5\nburst: true\n")
    cfg = load({}, env={"PULSER_OPS_LANES": "b, d"}, config_file=yml)
    assert cfg.lanes == ("B", "D") and cfg.lease_seconds == 20 and cfg.burst
    assert cfg.heartbeat_interval([60]) == 2.5


def test_heartbeat_interval_is_a_third_of_the_shortest_lease() -> None:
    assert WorkerConfig().heartbeat_interval([30, 9]) == 3.0
    assert WorkerConfig(lease_seconds=6).heartbeat_interval([60]) == 2.0
    assert WorkerConfig(heartbeat_seconds=20).heartbeat_interval([30]) == 10.0


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"concurrency": "0"}, {}, "--concurrency: must be 1 to 1000 (got 0)"),
        ({}, {"PULSER_OPS_CONCURRENCY": "many"}, "PULSER_OPS_CONCURRENCY: expected an integer"),
        ({}, {"PULSER_OPS_LANES": "A,E"}, "PULSER_OPS_LANES: E not in A, B, C, D"),
        ({"lease_seconds": "2"}, {}, "--lease-seconds: must be 5 to 86400 (got 2)"),
        ({}, {"PULSER_OPS_POLL_SECONDS": "-1"}, "PULSER_OPS_POLL_SECONDS: must be > 0"),
    ],
)
def test_invalid_values_name_their_source(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(WorkerConfigError) as e:
        load(flags, env=env)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_unknown_file_key_is_rejected(tmp_path: Path) -> None:
    toml = tmp_path / "w.toml"
    toml.write_text("concurency = 3\n")
    with pytest.raises(WorkerConfigError, match=r"unknown setting\(s\) concurency"):
        load({}, env={}, config_file=toml)


def test_cli_reports_a_bad_setting_in_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSER_OPS_")}
    env["PULSER_OPS_LANES"] = "X"
    proc = subprocess.run(
        [str(PULSER_OPS), "worker", "--concurrency", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: PULSER_OPS_LANES: X not in A, B, C, D"
