#!/usr/bin/env bash
# Deploy pulser-ops to DigitalOcean App Platform from deploy/do/app.yaml (the workers and the
# control room), and put the previous image back if the deployment fails.
#
#   APP_ID=<app id> deploy/do/deploy.sh <tag>    deploy the image tag
#   deploy/do/deploy.sh --render <tag>           print the spec with the tag and secrets filled in
#
# Roll back by hand, one command: APP_ID=<app id> deploy/do/deploy.sh <previous tag>
#
# A deployment counts as done when App Platform made it the active one (its health checks
# passed: the worker's /healthz, the control room's /healthz) and the control room answers
# /healthz at the app's URL. Otherwise App Platform keeps the old deployment running, and this
# script deploys the previous tag again so the app's spec matches what runs.
#
# Needs doctl (authenticated through DIGITALOCEAN_ACCESS_TOKEN), jq, envsubst and curl; and
# PULSER_OPS_DATABASE_URL and PULSER_OPS_UI_PASSWORD (the control room's sign-in, user
# PULSER_OPS_UI_USER, default ops) in the environment: the deploy workflow takes them from the
# GitHub environment's secrets. The image is ghcr.io/$PULSER_OPS_GHCR_OWNER/pulser-ops (default
# owner: pulser-ops). Not run against DigitalOcean by the test suite (no network there):
# tests/ship/test_deploy_scripts.py runs it against a recording stand-in for doctl.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SPEC=${PULSER_OPS_APP_SPEC:-$HERE/app.yaml}
HEALTH_TRIES=${PULSER_OPS_HEALTH_TRIES:-10}
HEALTH_DELAY=${PULSER_OPS_HEALTH_DELAY:-6}

die() { printf 'deploy/do: %s\n' "$*" >&2; exit 2; }

check_tag() {
  [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not an image tag: '$1'"
}

render() {
  check_tag "$1"
  [[ -n ${PULSER_OPS_DATABASE_URL:-} ]] || die "PULSER_OPS_DATABASE_URL must be set"
  [[ -n ${PULSER_OPS_UI_PASSWORD:-} ]] || die "PULSER_OPS_UI_PASSWORD must be set (the control room's sign-in)"
  # Only our variables: App Platform's own ${...} bindings pass through untouched.
  # shellcheck disable=SC2016
  PULSER_OPS_IMAGE_TAG=$1 PULSER_OPS_GHCR_OWNER=${PULSER_OPS_GHCR_OWNER:-pulser-ops} \
    PULSER_OPS_UI_USER=${PULSER_OPS_UI_USER:-ops} \
    envsubst '${PULSER_OPS_IMAGE_TAG} ${PULSER_OPS_GHCR_OWNER} ${PULSER_OPS_DATABASE_URL}
      ${PULSER_OPS_UI_USER} ${PULSER_OPS_UI_PASSWORD}' <"$SPEC"
}

app() { doctl apps get "$APP_ID" --output json | jq '(if type == "array" then .[0] else . end)'; }

active_tag() { app | jq -r '.active_deployment.spec.workers[0].image.tag // empty'; }

apply() {
  local tag=$1 spec url
  spec=$(mktemp)
  render "$tag" >"$spec"
  echo "deploy/do: applying the spec with tag $tag (waiting for the deployment)"
  if ! doctl apps update "$APP_ID" --spec "$spec" --wait --output json >/dev/null; then
    rm -f "$spec"
    return 1
  fi
  rm -f "$spec"
  if [[ "$(active_tag)" != "$tag" ]]; then
    echo "deploy/do: the deployment of $tag did not become active" >&2
    return 1
  fi
  url=$(app | jq -r '.live_url // empty')
  [[ -n $url ]] || { echo "deploy/do: the app has no live URL" >&2; return 1; }
  curl --fail --silent --show-error --max-time 10 --retry "$HEALTH_TRIES" \
    --retry-delay "$HEALTH_DELAY" --retry-all-errors "${url%/}/healthz" >/dev/null
}

deploy() {
  local tag=$1 previous
  check_tag "$tag"
  [[ -n ${APP_ID:-} ]] || die "APP_ID must be set (doctl apps list)"
  previous=$(active_tag)
  echo "deploy/do: ${previous:-(nothing)} -> $tag"
  if apply "$tag"; then
    echo "deploy/do: $tag is live"
    return 0
  fi
  echo "deploy/do: deploying $tag failed" >&2
  if [[ -n $previous && $previous != "$tag" ]]; then
    echo "deploy/do: rolling back to $previous" >&2
    apply "$previous" || echo "deploy/do: the rollback to $previous failed too" >&2
  fi
  return 1
}

case "${1:-}" in
  --render) [[ $# -eq 2 ]] || die "usage: deploy.sh --render <tag>"; render "$2" ;;
  "" | -h | --help) sed -n '2,9p' "$0" ;;
  *) [[ $# -eq 1 ]] || die "usage: deploy.sh <tag>"; deploy "$1" ;;
esac
