"""The Kubernetes manifests: every object validated (strict: no unknown fields) against the
schemas of pinned Kubernetes versions, KEDA's ScaledObject against KEDA's own CRD models, and
the things that hold them together (grace periods, probes, selectors, SSE annotations). The
sweeper CronJob's command runs against the test database. Nothing is applied to a cluster
here (none is reachable); deploy/k8s/deploy.sh is run against a stand-in in
test_deploy_scripts.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pulser_ops.worker.health import stall_after
from tests.ship.support import ROOT, VENV_BIN

#: The oldest Kubernetes minor these manifests promise to work on (DOKS still offers it when
#: this was written) and the newest that kubernetes-validate 1.37 knows. Both pinned.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
K8S = ROOT / "deploy" / "k8s"
#: Objects of custom resources: kubernetes-validate has no schema for them, so each is checked
#: against the models its project generates from its CRDs.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


def manifests() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def objects() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in manifests()
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in objects() if d["kind"] == kind}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_the_manifests_this_issue_ships() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in objects()}
    assert kinds >= {
        ("Deployment", "pulser-ops-worker"),
        ("PodDisruptionBudget", "pulser-ops-worker"),
        ("CronJob", "pulser-ops-sweeper"),
        ("Deployment", "pulser-ops-control-room"),
        ("Service", "pulser-ops-control-room"),
        ("Ingress", "pulser-ops-control-room"),
        ("ScaledObject", "pulser-ops-worker"),
        ("HorizontalPodAutoscaler", "pulser-ops-worker"),
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "path_doc",
    [o for o in objects() if (o[1]["apiVersion"], o[1]["kind"]) not in CUSTOM_KINDS],
    ids=lambda o: f"{o[0].relative_to(K8S)}:{o[1]['kind']}",
)
def test_kubernetes_validate_strict(path_doc: tuple[Path, dict[str, Any]], version: str) -> None:
    _, doc = path_doc
    kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_validate_really_rejects(tmp_path: Path) -> None:
    doc = by_kind("Deployment")["pulser-ops-worker"]
    bad = {**doc, "spec": {**doc["spec"], "terminationGracePeriod": 90}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSIONS[0], strict=True)
    # the command line the docs give, on the real files
    out = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet",
         "-k", KUBERNETES_VERSIONS[0], *map(str, manifests())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "ScaledObject" in out.stdout + out.stderr, "the CRD is the one object it cannot check"


def test_keda_scaled_object_against_kedas_models() -> None:
    """KEDA's CRD schema, as cloudcoil generates models from it. The models ignore unknown
    keys, so the check is a round trip: anything they drop or change was not valid."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    (doc,) = [d for _, d in objects() if d["kind"] == "ScaledObject"]
    parsed = ScaledObject.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc
    broken = {**doc, "spec": {**doc["spec"], "minReplicas": 1}}
    assert ScaledObject.model_validate(broken).model_dump(
        by_alias=True, exclude_unset=True, mode="json"
    ) != broken, "the round trip notices an unknown key"
    assert doc["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    queries = [t["metadata"]["query"] for t in doc["spec"]["triggers"]]
    assert any("pulser_queue_oldest_age_seconds" in q for q in queries)
    assert any('pulser_runs{status="queued"}' in q for q in queries)


def test_worker_drains_before_it_is_killed_and_is_probed_on_its_health_port() -> None:
    dep = by_kind("Deployment")["pulser-ops-worker"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = _env(c)
    grace = float(env["PULSER_OPS_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    # the drain, the preStop pause, 3 s for steps to react to SIGTERM, time to release runs
    assert pod["terminationGracePeriodSeconds"] >= grace + pre_stop + 3 + 10
    assert c["args"][0] == "worker"
    (port,) = c["ports"]
    assert str(port["containerPort"]) == env["PULSER_OPS_HEALTH_PORT"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= stall_after(2.0)
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = dep["spec"]["template"]["metadata"]["labels"]
    pdb = by_kind("PodDisruptionBudget")["pulser-ops-worker"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind("HorizontalPodAutoscaler")["pulser-ops-worker"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "pulser-ops-worker"


def test_control_room_is_reachable_through_an_sse_friendly_ingress() -> None:
    dep = by_kind("Deployment")["pulser-ops-control-room"]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"][:5] == ["ui", "--host", "0.0.0.0", "--port", "8080"]
    assert "--secure-cookies" in c["args"], "TLS ends at the Ingress"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    signin = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert signin["PULSER_OPS_UI_USER"]["name"] == signin["PULSER_OPS_UI_PASSWORD"]["name"] == (
        "pulser-ops-ui"
    ), "off loopback the board needs its sign-in"
    assert _env(c)["FORWARDED_ALLOW_IPS"] == "*", "behind the Ingress it must see https"
    svc = by_kind("Service")["pulser-ops-control-room"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    ing = by_kind("Ingress")["pulser-ops-control-room"]
    notes = ing["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "pulser-ops-control-room"
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}


def test_render_swaps_the_image_and_the_result_still_validates(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(K8S / "deploy.sh"), "--render", "sha-abc1234", str(tmp_path)],
        env={**os.environ, "PULSER_OPS_IMAGE": "ghcr.io/acme/pulser-ops"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    images = set()
    for path in tmp_path.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)
            images.update(
                c["image"]
                for c in _containers(doc)
            )
    assert images == {"ghcr.io/acme/pulser-ops:sha-abc1234"}
    assert {p.name for p in tmp_path.glob("*.yaml")} == {p.name for p in K8S.glob("*.yaml")}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec.get("template", {}).get("spec", {}).get("containers", []))


def test_the_sweeper_cronjob_runs_its_command(db_url: str, tmp_path: Path) -> None:
    """The CronJob's container command (entrypoint `pulser-ops` + its args), run here with the
    Secret's value in the environment, sweeps the test database."""
    import psycopg

    import pulser_ops

    job = by_kind("CronJob")["pulser-ops-sweeper"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    (c,) = _containers(job)
    (secret,) = [e for e in c["env"] if e["name"] == "PULSER_OPS_DATABASE_URL"]
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "pulser-ops", "key": "database-url"}
    with pulser_ops.connect(db_url, storage_dir=tmp_path) as client:
        client.templates.upsert({"name": "cj", "max_attempts": 3, "lease_seconds": 30})
        run = client.runs.create("cj")
        client.runs.claim("w-gone", limit=1)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("update public.runs set lease_expires_at = now() - interval '1 s'")
        out = subprocess.run(
            [str(VENV_BIN / "pulser-ops"), *c["args"]],
            env={**os.environ, "PULSER_OPS_DATABASE_URL": db_url},
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "requeued 1" in out.stdout
        assert client.runs.get(run.id).status == "queued"
