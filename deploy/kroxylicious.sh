#!/usr/bin/env bash
# Local Kroxylicious (the Kafka proxy of kroxylicious.io), for the benchmark's peer rows and its integration test.
#
#   deploy/kroxylicious.sh fetch    resolve io.kroxylicious:kroxylicious-runtime, -record-encryption and
#                                   -kms-provider-kroxylicious-inmemory (0.12.0, deploy/kroxylicious/pom.xml) with their
#                                   runtime dependencies from Maven Central into .cache/kroxylicious/libs, and compile
#                                   loadtests/kroxylicious/Launcher.java (the app distribution is not on Maven Central)
#   deploy/kroxylicious.sh start    fetch if needed, write the configuration, start, wait until it accepts clients;
#                                   prints the proxy's bootstrap address (127.0.0.1:PORT) last
#   deploy/kroxylicious.sh stop     SIGTERM, wait for the shutdown
#   deploy/kroxylicious.sh status   exit 0 when running (prints the pid and the filter)
#   deploy/kroxylicious.sh pid      print the JVM's pid (exit 1 when not running)
#
# Environment:
#   DPP_KROXYLICIOUS_PORT    bootstrap port of the proxy (default 9192); the broker nodes 0..3 get PORT+1..PORT+4
#   DPP_KROXYLICIOUS_TARGET  the Kafka cluster behind it (default 127.0.0.1:${DPP_KAFKA_PORT:-9092})
#   DPP_KROXYLICIOUS_FILTER  none (default: a plain proxy, no filter) or record-encryption: the RecordEncryption filter
#                            on every topic, one KEK for all topics in the in-memory KMS (IntegrationTestingKmsService:
#                            the KEK is generated inside the JVM at start, never written or logged; it is gone when the
#                            proxy stops, and with it every record encrypted under it), unresolvedKeyPolicy REJECT
#   DPP_KROXYLICIOUS_CACHE   default <repo>/.cache/kroxylicious (jars, launcher, per-port state: config.yaml, proxy.log)
#   DPP_KROXYLICIOUS_HEAP    JVM heap options (default -Xms256m -Xmx1g)
#   DPP_KROXYLICIOUS_JAVA    the java binary (default java: 17 or newer)
# One proxy per port; start with another filter on the same port needs a stop first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DPP_KROXYLICIOUS_PORT:-9192}"
target="${DPP_KROXYLICIOUS_TARGET:-127.0.0.1:${DPP_KAFKA_PORT:-9092}}"
filter="${DPP_KROXYLICIOUS_FILTER:-none}"
cache="${DPP_KROXYLICIOUS_CACHE:-$root/.cache/kroxylicious}"
heap="${DPP_KROXYLICIOUS_HEAP:--Xms256m -Xmx1g}"
java="${DPP_KROXYLICIOUS_JAVA:-java}"
libs="$cache/libs"
classes="$cache/classes"
launcher="$root/loadtests/kroxylicious/Launcher.java"
state="$cache/proxy-$port"
pidfile="$state/proxy.pid"
case "$filter" in none|record-encryption) ;; *) printf 'kroxylicious.sh: DPP_KROXYLICIOUS_FILTER must be none or record-encryption\n' >&2; exit 2 ;; esac

log() { printf 'kroxylicious.sh: %s\n' "$*" >&2; }

fetch() {
  if [ ! -f "$libs/.complete" ]; then
    command -v mvn >/dev/null || { log "mvn (Maven) is required to resolve Kroxylicious from Maven Central"; exit 1; }
    log "resolving Kroxylicious from Maven Central into $libs"
    rm -rf "$libs"; mkdir -p "$libs"
    if ! mvn -q -B -Dstyle.color=never -f "$here/kroxylicious/pom.xml" dependency:copy-dependencies \
         -DoutputDirectory="$libs" -DincludeScope=runtime >"$cache/fetch.log" 2>&1; then
      log "resolving Kroxylicious failed; Maven said:"; cat "$cache/fetch.log" >&2; exit 1
    fi
    touch "$libs/.complete"
  fi
  if [ ! -f "$classes/Launcher.class" ] || [ "$launcher" -nt "$classes/Launcher.class" ]; then
    command -v javac >/dev/null || { log "javac (a JDK, 17+) is required to compile the launcher"; exit 1; }
    mkdir -p "$classes"
    javac -nowarn -d "$classes" -cp "$libs/*" "$launcher" >"$cache/javac.log" 2>&1 \
      || { log "compiling $launcher failed:"; cat "$cache/javac.log" >&2; exit 1; }
  fi
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  mkdir -p "$state"
  {
    cat <<YAML
# written by deploy/kroxylicious.sh (filter: $filter)
virtualClusters:
  - name: dpp-local
    targetCluster:
      bootstrapServers: $target
    gateways:
      - name: plain
        portIdentifiesNode:
          bootstrapAddress: 127.0.0.1:$port
          nodeIdRanges:
            - name: nodes
              start: 0
              end: 3
YAML
    if [ "$filter" = record-encryption ]; then
      cat <<YAML
filterDefinitions:
  - name: encrypt
    type: RecordEncryption
    config:
      kms: IntegrationTestingKmsService
      kmsConfig:
        name: dpp-local-$port
      selector: TemplateKekSelector
      selectorConfig:
        template: "KEK_all-topics"
      unresolvedKeyPolicy: REJECT
defaultFilters:
  - encrypt
YAML
    fi
  } > "$state/config.yaml.tmp" && mv "$state/config.yaml.tmp" "$state/config.yaml"
  echo "$filter" > "$state/filter"
}

start() {
  if running; then
    if [ "$(cat "$state/filter" 2>/dev/null)" != "$filter" ]; then
      log "already running on 127.0.0.1:$port with filter $(cat "$state/filter" 2>/dev/null); stop it first"; exit 1
    fi
    log "already running on 127.0.0.1:$port"; echo "127.0.0.1:$port"; return 0
  fi
  fetch
  local p
  for p in $(seq "$port" $((port + 4))); do
    if port_busy "$p"; then log "port $p on 127.0.0.1 is already in use; choose another DPP_KROXYLICIOUS_PORT (it uses PORT..PORT+4)"; exit 1; fi
  done
  write_config
  local kek=()
  [ "$filter" = record-encryption ] && kek=(--kek "dpp-local-$port:KEK_all-topics")
  : > "$state/proxy.log"
  # shellcheck disable=SC2086
  nohup "$java" $heap -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/kroxylicious/log4j2.properties" \
       -cp "$libs/*:$classes" Launcher "$state/config.yaml" "${kek[@]}" >>"$state/proxy.log" 2>&1 &
  echo $! > "$pidfile"
  log "started pid $! (127.0.0.1:$port -> $target, filter $filter)"
  for _ in $(seq 1 120); do
    if ! running; then log "exited during start-up; last log lines:"; tail -n 30 "$state/proxy.log" >&2; rm -f "$pidfile"; exit 1; fi
    if grep -q "^kroxylicious ready" "$state/proxy.log" && port_busy "$port"; then
      log "ready on 127.0.0.1:$port"; echo "127.0.0.1:$port"; return 0
    fi
    sleep 0.5
  done
  log "not ready in 60 s; last log lines:"; tail -n 30 "$state/proxy.log" >&2; stop >/dev/null 2>&1 || true; exit 1
}

stop() {
  if ! running; then rm -f "$pidfile"; log "not running"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }; sleep 0.5; done
  log "no shutdown after 30 s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) mkdir -p "$cache"; fetch ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"), filter $(cat "$state/filter" 2>/dev/null))"
          else echo "not running"; exit 1; fi ;;
  pid) if running; then cat "$pidfile"; else exit 1; fi ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac
