#!/usr/bin/env bash
# Local HashiCorp Vault (dev server, in memory) with the Transit secrets engine, for the KMS tests and demos.
#
#   deploy/vault.sh fetch     download the Go module github.com/hashicorp/vault (Go module proxy) into the Go module cache
#   deploy/vault.sh build     fetch, then build the `vault` binary (tags $DPP_VAULT_BUILD_TAGS, default minimal: core,
#                             transit, approle) into .cache/vault/bin/vault (skipped when it exists);
#                             prints the build wall time and the binary size
#   deploy/vault.sh start     build if needed, start a dev server on 127.0.0.1:$DPP_VAULT_PORT, enable transit,
#                             wait until healthy; prints VAULT_ADDR (never the token)
#   deploy/vault.sh stop      stop it (SIGTERM, then wait)
#   deploy/vault.sh status    exit 0 when running and healthy
#
# Environment: DPP_VAULT_PORT (default 8200), DPP_VAULT_VERSION (default v1.21.4), DPP_VAULT_SDK_VERSION (the
# github.com/hashicorp/vault/sdk module built in as ./sdk, default: the one go.mod requires, see build()), DPP_VAULT_CACHE (default
# <repo>/.cache/vault), VAULT_DEV_ROOT_TOKEN_ID (the root token; default: a random one, made once and written to
# $DPP_VAULT_CACHE/token, mode 0600). The dev server keeps everything in memory: a restart loses every key.
# The module's go.mod has replace directives, which `go install pkg@version` refuses, so the build runs inside a
# writable copy of the downloaded module (as deploy/ops-tools.sh does for compose), at nice 10 with `-p 2`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DPP_VAULT_PORT:-8200}"
version="${DPP_VAULT_VERSION:-v1.21.4}"
cache="${DPP_VAULT_CACHE:-$root/.cache/vault}"
bin="$cache/bin/vault"
state="$cache/dev-$port"
addr="http://127.0.0.1:$port"

log() { printf 'vault.sh: %s\n' "$*" >&2; }

module_dir() {  # [SUBMODULE VERSION]: the module's directory in the Go module cache
  local path="github.com/hashicorp/vault${1:+/$1}@${2:-$version}"
  (cd "$(mktemp -d)" && go mod download -json "$path" \
     | python3 -c 'import json, sys; d = json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])')
}

fetch() {
  command -v go >/dev/null || { log "go is required to build vault"; exit 1; }
  log "downloading github.com/hashicorp/vault@$version (Go module proxy)"
  module_dir >/dev/null
}

# FILE OLD NEW: replace the one occurrence of the literal OLD by NEW in $work/src/FILE (fails if not exactly one)
patch_line() {
  python3 -c '
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"vault.sh: {path}: expected one {old!r}")
open(path, "w").write(text.replace(old, new))' "$work/src/$1" "$2" "$3"
}

work=""
cleanup() { if [ -n "$work" ]; then rm -rf "$work"; fi; }

build() {
  if [ -x "$bin" ]; then return 0; fi
  command -v go >/dev/null || { log "go is required to build vault"; exit 1; }
  local dir t0 t1
  t0=$(date +%s)
  dir="$(module_dir)"
  work="$cache/build.$$"  # not under /tmp: a long build must not lose its tree to a tmp cleaner
  rm -rf "$work"; mkdir -p "$work"
  trap cleanup EXIT
  cp -r "$dir/." "$work/src"
  chmod -R u+w "$work/src"
  # The module zip leaves out its nested modules (sdk, api, api/auth/*), which go.mod replaces with ./sdk etc.:
  # put the versions go.mod requires (each a module of its own on the proxy) where the replace directives look.
  local sub ver
  for sub in api sdk api/auth/approle api/auth/userpass api/auth/kubernetes; do
    ver="$(cd "$work/src" && go mod edit -json | python3 -c '
import json, sys
want = "github.com/hashicorp/vault/" + sys.argv[1]
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == want))' "$sub")"
    if [ "$sub" = sdk ]; then ver="${DPP_VAULT_SDK_VERSION:-$ver}"; fi
    dir="$(module_dir "$sub" "$ver")"
    mkdir -p "$work/src/$sub"
    cp -r "$dir/." "$work/src/$sub"
    chmod -R u+w "$work/src/$sub"
  done
  # v1.21.4's own ./sdk (its release branch, with backports) matches no published sdk module. With v0.21.0
  # (what go.mod names) three call sites differ; adapt them (each checked: the build stops if one is absent):
  # framework.Backend.ActivationFunc takes a third argument (the activation flag's name), and transit's
  # restore expects keysutil's RestorePolicy to return the restored key's name too (used for telemetry
  # only; the requested name stands in for it).
  if grep -q 'ActivationFunc func(context.Context, \*logical.Request, string) error' "$work/src/sdk/framework/backend.go"; then
    patch_line vault/identity_store.go 'ActivationFunc: iStore.activateDeduplication,' \
      'ActivationFunc: func(ctx context.Context, req *logical.Request, _ string) error { return iStore.activateDeduplication(ctx, req) },'
    patch_line vault/logical_system_activation_flags.go 'b.idStoreBackend.ActivationFunc(ctx, nil)' \
      'b.idStoreBackend.ActivationFunc(ctx, nil, "")'
  fi
  if grep -q 'RestorePolicy(ctx context.Context, storage logical.Storage, name, backup string, force bool) error' \
      "$work/src/sdk/helper/keysutil/lock_manager.go"; then
    patch_line builtin/logical/transit/path_restore.go \
      'restoredKeyName, err := b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)' \
      'restoredKeyName, err := keyName, b.lm.RestorePolicy(ctx, req.Storage, keyName, backupB64, force)'
  fi
  mkdir -p "$cache/bin"
  log "building vault $version (tags: ${DPP_VAULT_BUILD_TAGS-minimal}; nice 10, -p 2)"
  (cd "$work/src" && nice -n 10 go build -p 2 -tags "${DPP_VAULT_BUILD_TAGS-minimal}" -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
  rm -rf "$work"
  t1=$(date +%s)
  log "built $bin in $((t1 - t0)) s, $(stat -c %s "$bin") bytes"
}

token() {
  if [ -n "${VAULT_DEV_ROOT_TOKEN_ID:-}" ]; then printf '%s' "$VAULT_DEV_ROOT_TOKEN_ID"; return; fi
  mkdir -p "$cache"
  if [ ! -s "$cache/token" ]; then
    (umask 077; python3 -c 'import secrets; print("dpp-dev-" + secrets.token_hex(16))' > "$cache/token")
  fi
  chmod 600 "$cache/token"
  tr -d '\n' < "$cache/token"
}

healthy() { curl -fsS -o /dev/null "$addr/v1/sys/health" 2>/dev/null; }

pid_alive() { [ -s "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

start() {
  build
  if pid_alive && healthy; then log "already running on $addr"; echo "VAULT_ADDR=$addr"; return 0; fi
  mkdir -p "$state"
  local tok
  tok="$(token)"
  VAULT_DEV_ROOT_TOKEN_ID="$tok" nohup "$bin" server -dev -dev-listen-address="127.0.0.1:$port" \
      -dev-no-store-token >"$state/server.log" 2>&1 &
  echo $! > "$state/pid"
  local i
  for i in $(seq 1 120); do
    if healthy; then break; fi
    pid_alive || { log "vault exited; see $state/server.log"; exit 1; }
    sleep 0.5
  done
  healthy || { log "vault not healthy after 60 s; see $state/server.log"; exit 1; }
  if ! curl -fsS -o /dev/null -H "X-Vault-Token: $tok" "$addr/v1/sys/mounts/transit" 2>/dev/null; then
    curl -fsS -o /dev/null -H "X-Vault-Token: $tok" -X POST -d '{"type":"transit"}' "$addr/v1/sys/mounts/transit"
  fi
  log "running on $addr (transit enabled; token in ${VAULT_DEV_ROOT_TOKEN_ID:+VAULT_DEV_ROOT_TOKEN_ID}${VAULT_DEV_ROOT_TOKEN_ID:-$cache/token})"
  echo "VAULT_ADDR=$addr"
}

stop() {
  if ! pid_alive; then rm -f "$state/pid"; return 0; fi
  local pid i
  pid="$(cat "$state/pid")"
  kill "$pid"
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  rm -f "$state/pid"
  log "stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) pid_alive && healthy ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
