#!/usr/bin/env bash
# Local schema registry with a Confluent-compatible REST API (Apicurio Registry, SQL storage in an H2 database
# file under .cache/registry/node-PORT/data, so schemas and ids survive a restart like a real registry's) for the
# demo, tests and CI.
#
#   deploy/registry.sh fetch     resolve io.apicurio:apicurio-registry-app (runner jar + lib/) from Maven Central
#                                into .cache/registry/app
#   deploy/registry.sh start     fetch if needed, start on 127.0.0.1, wait until the Confluent API answers, print its URL
#   deploy/registry.sh stop      stop it (SIGTERM, then SIGKILL after 30 s); the schemas stay in the database file
#   deploy/registry.sh reset     stop it and delete its database (every schema and id is gone)
#   deploy/registry.sh status    exit 0 when running
#   deploy/registry.sh url       print the Confluent-compatible base URL (http://127.0.0.1:PORT/apis/ccompat/v7)
#
# Environment: DPP_REGISTRY_PORT (default 8081), DPP_REGISTRY_CACHE (default <repo>/.cache/registry),
# DPP_REGISTRY_JAVA (default java; 17+), DPP_REGISTRY_HEAP (default 512m),
# DPP_REGISTRY_STORAGE (file, the default: H2 database file; mem: in memory, gone at stop).
# Each port has its own pid and log files (.cache/registry/node-PORT/), so several instances can run at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DPP_REGISTRY_PORT:-8081}"
cache="${DPP_REGISTRY_CACHE:-$root/.cache/registry}"
java="${DPP_REGISTRY_JAVA:-java}"
heap="${DPP_REGISTRY_HEAP:-512m}"
app="$cache/app"
state="$cache/node-$port"
pidfile="$state/registry.pid"
log="$state/registry.log"
url="http://127.0.0.1:$port/apis/ccompat/v7"

log() { printf 'registry.sh: %s\n' "$*" >&2; }

runner() { compgen -G "$app/apicurio-registry-app-*-runner.jar" | head -n1; }

fetch() {
  if [ -f "$app/.complete" ] && [ -n "$(runner)" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn (Maven) is required to resolve the registry from Maven Central"; exit 1; }
  command -v "$java" >/dev/null || { log "java (17+) is required to run the registry"; exit 1; }
  log "resolving Apicurio Registry from Maven Central into $app"
  mkdir -p "$cache"
  rm -rf "$app" "$app.tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$here/registry/pom.xml" dependency:unpack \
       -Dregistry.out="$app.tmp" >"$cache/fetch.log" 2>&1; then
    log "resolving the registry failed; Maven said:"; cat "$cache/fetch.log" >&2; rm -rf "$app.tmp"; exit 1
  fi
  rm -rf "$app.tmp/.markers"
  mv "$app.tmp" "$app"
  [ -n "$(runner)" ] || { log "no apicurio-registry-app-*-runner.jar in $app"; exit 1; }
  touch "$app/.complete"
}

running() {
  [ -f "$pidfile" ] || return 1
  local pid; pid="$(cat "$pidfile")"
  kill -0 "$pid" 2>/dev/null && grep -qa apicurio-registry "/proc/$pid/cmdline" 2>/dev/null
}

# exit 0 when GET $1 answers 200
http_ok() {
  if command -v curl >/dev/null; then
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null)" = 200 ]
  else
    python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
PY
  fi
}

start() {
  if running; then log "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; echo "$url"; return 0; fi
  fetch
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port on 127.0.0.1 is already in use by another process; choose another with DPP_REGISTRY_PORT=<port>"
    exit 1
  fi
  mkdir -p "$state"
  : > "$log"
  local t0; t0="$(date +%s)"
  # SQL storage on H2 (the application's default kind); REGISTRY_DATASOURCE_URL is its datasource setting.
  # WRITE_DELAY=0: every commit is on disk at once (H2's default delays writes up to 0.5 s, so a stop that
  # ends in SIGKILL on a loaded machine could lose a schema registered just before it)
  local ds="jdbc:h2:mem:registry_db"
  if [ "${DPP_REGISTRY_STORAGE:-file}" = file ]; then mkdir -p "$state/data"; ds="jdbc:h2:file:$state/data/registry;WRITE_DELAY=0"; fi
  REGISTRY_DATASOURCE_URL="$ds" nohup "$java" -Xms64m -Xmx"$heap" -XX:+UseSerialGC -Djava.awt.headless=true \
       -Djava.util.logging.manager=org.jboss.logmanager.LogManager \
       -Dvertx.cacheDirBase="$state/vertx-cache" \
       -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
       -Dquarkus.log.console.color=false \
       -jar "$(runner)" >>"$log" 2>&1 &
  echo $! > "$pidfile"
  log "started pid $(cat "$pidfile"); waiting for $url"
  for _ in $(seq 1 240); do
    # kill -0, not running(): until the forked shell has exec'd java, /proc/PID/cmdline is this script's
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "registry exited during start-up; last log lines:"; tail -n 30 "$log" >&2; rm -f "$pidfile"; exit 1
    fi
    if http_ok "$url/subjects"; then
      log "ready on 127.0.0.1:$port after $(( $(date +%s) - t0 )) s"; echo "$url"; return 0
    fi
    sleep 0.5
  done
  log "registry did not become ready in 120 s; last log lines:"; tail -n 30 "$log" >&2
  stop >/dev/null 2>&1 || true
  exit 1
}

stop() {
  if ! running; then log "not running on port $port"; rm -f "$pidfile"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }; sleep 0.5; done
  log "no clean shutdown after 30 s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") on 127.0.0.1:$port ($url)"; else echo "not running"; exit 1; fi ;;
  url) echo "$url" ;;
  reset) stop; rm -rf "$state/data"; log "database deleted" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
