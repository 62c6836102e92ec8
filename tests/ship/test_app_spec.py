"""deploy/do/app.yaml against DigitalOcean's app spec (as their client pydo describes it; see
do_app_spec.py), after the same rendering the deploy script does. Nothing is sent to
DigitalOcean here (no network): `doctl apps spec validate` is what the docs suggest too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship import do_app_spec
from tests.ship.support import ROOT

SCRIPT = ROOT / "deploy/do/deploy.sh"


def render(tag: str = "1.2.3", spec: Path | None = None, **env: str) -> dict[str, Any]:
    out = subprocess.run(
        [str(SCRIPT), "--render", tag],
        env={
            **os.environ,
            "PULSER_OPS_DATABASE_URL": "postgresql://postgres.ref:pw@pooler:5432/postgres",
            "PULSER_OPS_UI_PASSWORD": "s3cret",
            **({"PULSER_OPS_APP_SPEC": str(spec)} if spec else {}),
            **env,
        },
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = yaml.safe_load(out.stdout)
    return data


def test_the_rendered_spec_is_valid() -> None:
    spec = render()
    assert do_app_spec.validate(spec) == []


def test_the_validator_catches_what_do_would_reject() -> None:
    spec = render()
    spec["workers"][0]["instanc_count"] = 2
    spec["workers"][0]["envs"][0]["scope"] = "RUNTIME"
    spec["services"][0]["http_port"] = "8080"
    spec["workers"][0]["image"]["registry_type"] = "GHCR.IO"
    del spec["name"]
    assert sorted(do_app_spec.validate(spec)) == [
        "spec.name: required",
        "spec.services[0].http_port: expected int, got '8080'",
        "spec.workers[0].envs[0].scope: 'RUNTIME' is not one of UNSET, RUN_TIME, BUILD_TIME, "
        "RUN_AND_BUILD_TIME",
        "spec.workers[0].image.registry_type: 'GHCR.IO' is not one of DOCKER_HUB, DOCR, GHCR",
        "spec.workers[0].instanc_count: unknown key",
    ]


def test_the_template_is_read_whole() -> None:
    """The parse reaches every part of the spec pydo knows (a silent truncation would let
    unknown keys through as 'unknown' everywhere, or accept too little)."""
    schema = do_app_spec.schema()
    assert {"name", "region", "services", "workers", "jobs", "ingress", "databases"} <= set(
        schema.fields
    )
    worker = schema.fields["workers"].item
    assert {"liveness_health_check", "termination", "run_command", "image"} <= set(worker.fields)
    assert "key" in worker.fields["envs"].item.required


def test_workers_and_control_room_as_agreed() -> None:
    spec = render("sha-abc1234", PULSER_OPS_GHCR_OWNER="acme")
    (worker,) = spec["workers"]
    (room,) = spec["services"]
    for component in (worker, room):
        assert component["image"] == {
            "registry_type": "GHCR",
            "registry": "acme",
            "repository": "pulser-ops",
            "tag": "sha-abc1234",
        }
        secret = next(e for e in component["envs"] if e["key"] == "PULSER_OPS_DATABASE_URL")
        assert secret["type"] == "SECRET" and secret["value"].startswith("postgresql://")
    env = {e["key"]: e.get("value") for e in worker["envs"]}
    assert worker["run_command"].startswith("pulser-ops worker")
    assert worker["termination"]["grace_period_seconds"] > float(
        env["PULSER_OPS_SHUTDOWN_GRACE_SECONDS"]
    ) + 10
    assert worker["liveness_health_check"]["port"] == int(env["PULSER_OPS_HEALTH_PORT"])
    assert worker["liveness_health_check"]["http_path"] == "/healthz"
    assert room["run_command"] == "pulser-ops ui --host 0.0.0.0 --port 8080 --secure-cookies"
    room_env = {e["key"]: e for e in room["envs"]}
    assert room_env["PULSER_OPS_UI_USER"]["value"] == "ops"
    assert room_env["PULSER_OPS_UI_PASSWORD"] == {
        "key": "PULSER_OPS_UI_PASSWORD", "scope": "RUN_TIME", "type": "SECRET", "value": "s3cret"
    }  # fmt: skip
    assert room["http_port"] == 8080 and room["health_check"]["http_path"] == "/healthz"
    assert spec["disable_edge_cache"] is True, "server-sent events must bypass the CDN cache"
    assert spec["ingress"]["rules"][0]["component"]["name"] == room["name"]


def test_render_fills_only_its_own_variables(tmp_path: Path) -> None:
    spec = tmp_path / "app.yaml"
    spec.write_text(
        (ROOT / "deploy/do/app.yaml").read_text()
        + "envs:\n  - key: BASE_URL\n    scope: RUN_TIME\n    value: ${APP_URL}\n"
    )
    assert render(spec=spec)["envs"] == [
        {"key": "BASE_URL", "scope": "RUN_TIME", "value": "${APP_URL}"}
    ], "App Platform's own bindable variables pass through"


@pytest.mark.parametrize("tag", ["", "1.0 && rm", "-x", "a/b"])
def test_render_refuses_what_is_not_an_image_tag(tag: str) -> None:
    out = subprocess.run(
        [str(SCRIPT), "--render", tag],
        env={**os.environ, "PULSER_OPS_DATABASE_URL": "postgresql://x", "PULSER_OPS_UI_PASSWORD": "p"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2 and "not an image tag" in out.stderr


@pytest.mark.parametrize("secret", ["PULSER_OPS_DATABASE_URL", "PULSER_OPS_UI_PASSWORD"])
def test_render_needs_the_secrets(secret: str) -> None:
    env = {**os.environ, "PULSER_OPS_DATABASE_URL": "postgresql://x", "PULSER_OPS_UI_PASSWORD": "p"}
    del env[secret]
    out = subprocess.run(
        [str(SCRIPT), "--render", "1.0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2 and f"{secret} must be set" in out.stderr
