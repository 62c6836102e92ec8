"""The deploy scripts' decisions: deploy, check health, and put the previous image back when
the check fails. DigitalOcean, a cluster, Docker and systemd are out of reach here, so
``doctl``, ``kubectl``, ``docker`` and ``systemctl`` are recording stand-ins that keep a small
state (what is deployed); the health checks are real ``curl`` requests to a real local HTTP
server that answers for whatever image that state says is running. This proves the scripts'
logic and the commands they issue, not that DigitalOcean accepts them: that is only known
from a real deploy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship.support import ROOT

FAKE_KUBECTL = r'''
import json, os, sys, pathlib, yaml
state_path = pathlib.Path(os.environ["FAKE_STATE"])
st = json.loads(state_path.read_text())
args = sys.argv[1:]
st["calls"].append(" ".join(a for a in args if not a.startswith("--timeout")))
deps = st["deployments"]
def done(code=0):
    state_path.write_text(json.dumps(st)); sys.exit(code)
if args[0] == "get":
    name = args[1].split("/", 1)[1]
    if name in deps:
        print(deps[name]["revision"], end="")
    done()
if args[0] == "apply":
    for f in sorted(pathlib.Path(args[2]).glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc["kind"] == "Deployment":
                name = doc["metadata"]["name"]
                image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
                d = deps.setdefault(name, {"revision": 0, "images": []})
                if not d["images"] or d["images"][-1] != image:
                    d["images"].append(image); d["revision"] += 1
    done()
if args[:2] == ["rollout", "status"]:
    name = args[2].split("/", 1)[1]
    bad = any(deps[name]["images"][-1].endswith(":" + t) for t in st["bad_tags"])
    done(1 if bad else 0)
if args[:2] == ["rollout", "undo"]:
    d = deps[args[2].split("/", 1)[1]]
    d["images"].append(d["images"][-2]); d["revision"] += 1
    done()
sys.exit(f"fake kubectl: unexpected {args}")
'''

FAKE_DOCTL = r'''
import json, os, sys, pathlib, yaml
state_path = pathlib.Path(os.environ["FAKE_STATE"])
st = json.loads(state_path.read_text())
args = sys.argv[1:]
st["calls"].append(" ".join(args[:3]))
def done(code=0):
    state_path.write_text(json.dumps(st)); sys.exit(code)
if args[:2] == ["apps", "get"]:
    spec = {"workers": [{"image": {"tag": st["active"]}}]} if st["active"] else {}
    print(json.dumps([{"id": args[2], "live_url": st["live_url"],
                       "active_deployment": {"spec": spec}}]))
    done()
if args[:2] == ["apps", "update"]:
    spec = yaml.safe_load(pathlib.Path(args[args.index("--spec") + 1]).read_text())
    st["applied"].append(spec)
    tag = spec["workers"][0]["image"]["tag"]
    if tag in st["bad_tags"]:  # the deployment fails its health checks: the old one stays
        done(0)
    st["active"] = tag
    done()
sys.exit(f"fake doctl: unexpected {args}")
'''

FAKE_DOCKER = r'''
import json, os, sys, pathlib
state_path = pathlib.Path(os.environ["FAKE_STATE"])
st = json.loads(state_path.read_text())
st["calls"].append("docker " + " ".join(sys.argv[1:]))
state_path.write_text(json.dumps(st))
'''

FAKE_SYSTEMCTL = FAKE_DOCKER.replace('"docker "', '"systemctl "')


def _fake(bin_dir: Path, name: str, code: str) -> None:
    exe = bin_dir / name
    exe.write_text(f"#!{sys.executable}\n{code}")
    exe.chmod(0o755)


class Health:
    """A real HTTP server: /healthz and /readyz answer 503 while ``bad()`` says so."""

    def __init__(self, bad: Any) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 503 if bad() else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "state.json"
    st: dict[str, Any] = {"calls": [], "bad_tags": [], "deployments": {}, "applied": []}
    state.write_text(json.dumps(st))
    yield {"bin": bin_dir, "state": state, "tmp": tmp_path}


def _run(script: str, *args: str, world: dict[str, Any], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / script), *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PULSER_OPS_")},
            "PATH": f"{world['bin']}:{os.environ['PATH']}",
            "FAKE_STATE": str(world["state"]),
            **env,
        },
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _state(world: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(world["state"].read_text())
    return data


def _set(world: dict[str, Any], **values: Any) -> None:
    world["state"].write_text(json.dumps({**_state(world), **values}))


# --- Kubernetes -------------------------------------------------------------------------------


def test_k8s_deploys_and_leaves_a_good_rollout_alone(world: dict[str, Any]) -> None:
    _fake(world["bin"], "kubectl", FAKE_KUBECTL)
    out = _run("deploy/k8s/deploy.sh", "1.2.3", world=world)
    assert out.returncode == 0, out.stderr
    st = _state(world)
    image = "ghcr.io/pulser-ops/pulser-ops:1.2.3"
    assert {n: d["images"] for n, d in st["deployments"].items()} == {
        "pulser-ops-worker": [image],
        "pulser-ops-control-room": [image],
    }
    assert "rollout undo" not in " ".join(st["calls"])
    assert "rollout status deployment/pulser-ops-worker" in st["calls"]


def test_k8s_undoes_only_the_rollouts_it_changed_when_one_fails(world: dict[str, Any]) -> None:
    _fake(world["bin"], "kubectl", FAKE_KUBECTL)
    assert _run("deploy/k8s/deploy.sh", "1.2.3", world=world).returncode == 0
    _set(world, bad_tags=["1.3.0"], calls=[])
    out = _run(
        "deploy/k8s/deploy.sh", "1.3.0", world=world, PULSER_OPS_IMAGE="ghcr.io/acme/pulser-ops"
    )
    assert out.returncode == 1 and "failed; undoing it" in out.stderr
    st = _state(world)
    for name in ("pulser-ops-worker", "pulser-ops-control-room"):
        assert st["deployments"][name]["images"][-2:] == [
            "ghcr.io/acme/pulser-ops:1.3.0",
            "ghcr.io/pulser-ops/pulser-ops:1.2.3",
        ], "rolled back to the previous image"
        assert f"rollout undo deployment/{name}" in st["calls"]

    # The same tag again changes nothing, so a failure then undoes nothing.
    _set(world, calls=[], bad_tags=["1.2.3"])
    again = _run("deploy/k8s/deploy.sh", "1.2.3", world=world)
    assert again.returncode == 1
    assert not [c for c in _state(world)["calls"] if c.startswith("rollout undo")]


# --- App Platform -----------------------------------------------------------------------------


@pytest.fixture
def app_platform(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    _fake(world["bin"], "doctl", FAKE_DOCTL)
    health = Health(bad=lambda: _state(world)["active"] in _state(world)["unhealthy"])
    _set(world, active="1.2.3", live_url=health.url + "/", unhealthy=[])
    try:
        yield world
    finally:
        health.close()


def _deploy_app(world: dict[str, Any], tag: str) -> subprocess.CompletedProcess[str]:
    return _run(
        "deploy/do/deploy.sh", tag, world=world,
        APP_ID="app-1", PULSER_OPS_DATABASE_URL="postgresql://db", PULSER_OPS_GHCR_OWNER="acme",
        PULSER_OPS_UI_PASSWORD="pw",
        PULSER_OPS_HEALTH_TRIES="1", PULSER_OPS_HEALTH_DELAY="0",
    )  # fmt: skip


def test_app_platform_deploys_and_checks_the_control_room(app_platform: dict[str, Any]) -> None:
    out = _deploy_app(app_platform, "1.3.0")
    assert out.returncode == 0, out.stderr
    st = _state(app_platform)
    assert st["active"] == "1.3.0" and "deploy/do: 1.2.3 -> 1.3.0" in out.stdout
    (spec,) = st["applied"]
    assert spec["workers"][0]["image"] == spec["services"][0]["image"] == {
        "registry_type": "GHCR", "registry": "acme", "repository": "pulser-ops", "tag": "1.3.0"
    }  # fmt: skip
    assert "apps update app-1" in st["calls"]


def test_app_platform_redeploys_the_previous_tag_when_the_deployment_fails(
    app_platform: dict[str, Any],
) -> None:
    _set(app_platform, bad_tags=["1.3.0"])
    out = _deploy_app(app_platform, "1.3.0")
    assert out.returncode == 1
    assert "did not become active" in out.stderr and "rolling back to 1.2.3" in out.stderr
    st = _state(app_platform)
    assert [s["workers"][0]["image"]["tag"] for s in st["applied"]] == ["1.3.0", "1.2.3"]
    assert st["active"] == "1.2.3"


def test_app_platform_rolls_back_when_the_control_room_is_unhealthy(
    app_platform: dict[str, Any],
) -> None:
    _set(app_platform, unhealthy=["1.3.0"])
    out = _deploy_app(app_platform, "1.3.0")
    assert out.returncode == 1 and "rolling back to 1.2.3" in out.stderr
    assert _state(app_platform)["active"] == "1.2.3"


# --- Droplet ----------------------------------------------------------------------------------


@pytest.fixture
def droplet(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    _fake(world["bin"], "docker", FAKE_DOCKER)
    _fake(world["bin"], "systemctl", FAKE_SYSTEMCTL)
    _fake(world["bin"], "journalctl", "print('(journal)')\n")
    etc = world["tmp"] / "etc"
    etc.mkdir()
    (etc / "worker.env").write_text("PULSER_OPS_DATABASE_URL=postgresql://db\n")

    def running_is_bad() -> bool:
        image = (etc / "image.env").read_text().strip() if (etc / "image.env").exists() else ""
        return image.endswith(":bad")

    health = Health(bad=running_is_bad)
    world.update(etc=etc, health=health)
    try:
        yield world
    finally:
        health.close()


def _deploy_droplet(world: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    # As the workflow does: the copied directory, run with bash.
    return _run(
        "deploy/droplet/deploy.sh", *args, world=world,
        PULSER_OPS_ETC=str(world["etc"]),
        PULSER_OPS_UNIT_DIR=str(world["tmp"] / "systemd"),
        PULSER_OPS_INSTALL_DIR=str(world["tmp"] / "opt"),
        PULSER_OPS_HEALTH_URL=world["health"].url + "/readyz",
        PULSER_OPS_HEALTH_SECONDS="2",
    )  # fmt: skip


def _image(world: dict[str, Any]) -> str:
    return str((world["etc"] / "image.env").read_text().strip())


def test_droplet_deploys_installs_the_unit_and_records_the_previous_image(
    droplet: dict[str, Any],
) -> None:
    first = _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:1.2.3")
    assert first.returncode == 0, first.stderr
    assert _image(droplet) == "PULSER_OPS_IMAGE=ghcr.io/acme/pulser-ops:1.2.3"
    unit = (droplet["tmp"] / "systemd/pulser-ops-worker.service").read_text()
    assert unit == (ROOT / "deploy/droplet/pulser-ops-worker.service").read_text()
    assert (droplet["tmp"] / "opt/deploy.sh").stat().st_mode & 0o111, "kept for rollbacks"
    calls = _state(droplet)["calls"]
    assert calls == [
        "systemctl daemon-reload",
        "docker pull --quiet ghcr.io/acme/pulser-ops:1.2.3",
        "systemctl enable pulser-ops-worker.service",
        "systemctl restart pulser-ops-worker.service",
    ]
    second = _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:1.3.0")
    assert second.returncode == 0, second.stderr
    assert (droplet["etc"] / "image.previous").read_text().strip() == (
        "ghcr.io/acme/pulser-ops:1.2.3"
    )

    # The documented rollback command: back to the previous image.
    back = _deploy_droplet(droplet, "rollback")
    assert back.returncode == 0, back.stderr
    assert _image(droplet) == "PULSER_OPS_IMAGE=ghcr.io/acme/pulser-ops:1.2.3"


def test_droplet_puts_the_previous_image_back_when_the_new_one_stays_unready(
    droplet: dict[str, Any],
) -> None:
    assert _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:1.2.3").returncode == 0
    out = _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:bad")
    assert out.returncode == 1
    assert "did not become ready" in out.stderr and "rolled back to" in out.stderr
    assert _image(droplet) == "PULSER_OPS_IMAGE=ghcr.io/acme/pulser-ops:1.2.3"
    restarts = [c for c in _state(droplet)["calls"] if c.startswith("systemctl restart")]
    assert len(restarts) == 3, "deploy, bad deploy, rollback"


def test_droplet_refuses_without_the_worker_settings(droplet: dict[str, Any]) -> None:
    (droplet["etc"] / "worker.env").unlink()
    out = _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:1.2.3")
    assert out.returncode == 2 and "missing" in out.stderr and "worker.env" in out.stderr
    assert _state(droplet)["calls"] == []
    bad = _deploy_droplet(droplet, "ghcr.io/acme/pulser-ops:1.2.3; reboot")
    assert bad.returncode == 2 and "not an image reference" in bad.stderr


def test_the_droplet_unit_the_script_installs_is_the_one_yaml_and_docs_name() -> None:
    wf = yaml.safe_load((ROOT / ".github/workflows/deploy-workers.yml").read_text())
    text = json.dumps(wf)
    assert "deploy/droplet/deploy.sh deploy/droplet/pulser-ops-worker.service" in text
