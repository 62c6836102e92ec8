#!/usr/bin/env bash
# Deploy pulser-ops to Kubernetes (DOKS or any cluster kubectl points at): apply the manifests
# in deploy/k8s/ with the image tag, wait for the rollouts, and undo them if one fails.
#
#   deploy/k8s/deploy.sh <tag>                 deploy the image tag
#   deploy/k8s/deploy.sh --render <tag> DIR    write the manifests with the tag into DIR
#
# Roll back by hand, one command: deploy/k8s/deploy.sh <previous tag>
# (`kubectl rollout undo deployment/pulser-ops-worker` does the same for one Deployment).
#
# A rollout is done when every new pod is ready: the worker's /readyz says it claims, the
# control room's /healthz answers. Deployments whose rollout fails or times out
# (PULSER_OPS_ROLLOUT_TIMEOUT, default 300s) are rolled back with `kubectl rollout undo`,
# but only those this run changed. The image repository is PULSER_OPS_IMAGE (default
# ghcr.io/pulser-ops/pulser-ops). Not run against a cluster by the test suite (none there):
# tests/ship/test_deploy_scripts.py runs it against a recording stand-in for kubectl.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE=${PULSER_OPS_IMAGE:-ghcr.io/pulser-ops/pulser-ops}
TIMEOUT=${PULSER_OPS_ROLLOUT_TIMEOUT:-300s}
DEPLOYMENTS=(pulser-ops-worker pulser-ops-control-room)
# The image the committed manifests name; rendering replaces it (and its tag).
COMMITTED_IMAGE=ghcr.io/pulser-ops/pulser-ops

die() { printf 'deploy/k8s: %s\n' "$*" >&2; exit 2; }

check_tag() {
  [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not an image tag: '$1'"
}

render() {
  local tag=$1 out=$2 f
  check_tag "$tag"
  mkdir -p "$out"
  for f in "$HERE"/*.yaml; do
    sed "s#image: ${COMMITTED_IMAGE}:[^[:space:]\"']*#image: ${IMAGE}:${tag}#" "$f" >"$out/$(basename "$f")"
  done
}

revision() {
  kubectl get "deployment/$1" --ignore-not-found \
    -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}'
}

deploy() {
  local tag=$1 dir d failed=0
  local -A before=()
  check_tag "$tag"
  dir=$(mktemp -d)
  render "$tag" "$dir"
  for d in "${DEPLOYMENTS[@]}"; do before[$d]=$(revision "$d"); done
  kubectl apply -f "$dir"
  rm -rf "$dir"
  for d in "${DEPLOYMENTS[@]}"; do
    kubectl rollout status "deployment/$d" --timeout="$TIMEOUT" || failed=1
  done
  if ((failed == 0)); then
    echo "deploy/k8s: ${IMAGE}:${tag} is rolled out"
    return 0
  fi
  echo "deploy/k8s: the rollout of ${IMAGE}:${tag} failed; undoing it" >&2
  for d in "${DEPLOYMENTS[@]}"; do
    if [[ -n ${before[$d]} && "$(revision "$d")" != "${before[$d]}" ]]; then
      kubectl rollout undo "deployment/$d"
      kubectl rollout status "deployment/$d" --timeout="$TIMEOUT" \
        || echo "deploy/k8s: deployment/$d did not recover after the undo" >&2
    fi
  done
  return 1
}

case "${1:-}" in
  --render) [[ $# -eq 3 ]] || die "usage: deploy.sh --render <tag> DIR"; render "$2" "$3" ;;
  "" | -h | --help) sed -n '2,9p' "$0" ;;
  *) [[ $# -eq 1 ]] || die "usage: deploy.sh <tag>"; deploy "$1" ;;
esac
