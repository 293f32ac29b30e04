#!/usr/bin/env bash
# Installs the tools the operations tests (tests/ops) drive. Run as root (CI is); idempotent.
#
#   deploy/ops-tools.sh prometheus   prometheus + promtool (Debian package "prometheus"); the service the
#                                    package enables is disabled and stopped: the tests run their own instance
#   deploy/ops-tools.sh compose      the `docker compose` CLI plugin, built from its Go module
#                                    (github.com/docker/compose/v5, from the Go module proxy; needs go >= 1.26.8)
#                                    into /usr/local/lib/docker/cli-plugins. `docker compose config` needs only
#                                    the client, no Docker engine.
#   deploy/ops-tools.sh all          both
#
# Environment: DPP_COMPOSE_VERSION (default v5.6.0).
set -euo pipefail

compose_version="${DPP_COMPOSE_VERSION:-v5.6.0}"
plugins=/usr/local/lib/docker/cli-plugins

log() { printf 'ops-tools.sh: %s\n' "$*" >&2; }

install_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return 0; fi
  log "installing prometheus + promtool (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null; then systemctl disable prometheus >/dev/null 2>&1 || true; fi
  if [ -x /etc/init.d/prometheus ]; then /etc/init.d/prometheus stop >/dev/null 2>&1 || true; fi
}

install_compose() {
  if docker compose version >/dev/null 2>&1; then return 0; fi
  if ! command -v docker >/dev/null; then
    log "installing the docker client (apt: docker.io; its engine is not started)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
  command -v go >/dev/null || { log "go is required to build the compose plugin"; exit 1; }
  log "building docker compose $compose_version from its Go module"
  local work dir
  work="$(mktemp -d)"
  dir="$(cd "$work" && go mod download -json "github.com/docker/compose/v5@$compose_version" \
         | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  # `go install pkg@version` refuses modules with exclude directives, so build inside a copy of the module.
  cp -r "$dir/." "$work/src"
  chmod -R u+w "$work/src"
  mkdir -p "$plugins"
  (cd "$work/src" && go build -trimpath \
      -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$compose_version" \
      -o "$plugins/docker-compose" ./cmd)
  rm -rf "$work"
  docker compose version >&2
}

case "${1:-all}" in
  prometheus) install_prometheus ;;
  compose) install_compose ;;
  all) install_prometheus; install_compose ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
