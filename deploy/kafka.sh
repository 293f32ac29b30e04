#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft: broker + controller in one JVM, no ZooKeeper) for the demo, tests and CI.
#
#   deploy/kafka.sh fetch     resolve org.apache.kafka:kafka_2.13 + runtime deps from Maven Central into .cache/kafka/libs
#   deploy/kafka.sh start     fetch if needed, format KRaft storage (first time), start, wait until it accepts clients
#   deploy/kafka.sh stop      stop it cleanly (SIGTERM, then wait for controlled shutdown)
#   deploy/kafka.sh status    exit 0 when running
#   deploy/kafka.sh reset     stop and delete its data
#
# Environment: DPP_KAFKA_PORT (default 9092; the controller listens on PORT+1), DPP_KAFKA_CACHE (default <repo>/.cache/kafka).
# The bootstrap address printed on success is 127.0.0.1:$DPP_KAFKA_PORT.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DPP_KAFKA_PORT:-9092}"
cport=$((port + 1))
cache="${DPP_KAFKA_CACHE:-$root/.cache/kafka}"
libs="$cache/libs"
state="$cache/node-$port"
pidfile="$state/kafka.pid"
log="$state/broker.log"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn (Maven) is required to resolve Kafka from Maven Central"; exit 1; }
  command -v java >/dev/null || { log "java (17+) is required to run Kafka"; exit 1; }
  log "resolving Apache Kafka from Maven Central into $libs"
  rm -rf "$libs"; mkdir -p "$libs"
  mkdir -p "$cache"
  if ! mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
       -DoutputDirectory="$libs" -DincludeScope=runtime >"$cache/fetch.log" 2>&1; then
    log "resolving Kafka failed; Maven said:"; cat "$cache/fetch.log" >&2; exit 1
  fi
  touch "$libs/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

java_run() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
       -cp "$libs/*" "$@"
}

write_config() {
  mkdir -p "$state/data"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
PROPS
}

start() {
  if running; then log "already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; echo "127.0.0.1:$port"; return 0; fi
  fetch
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null; then
    log "port $port or $cport on 127.0.0.1 is already in use by another process;"
    log "choose other ports with DPP_KAFKA_PORT=<port> (the controller uses port+1)"
    exit 1
  fi
  write_config
  if [ ! -f "$state/data/meta.properties" ]; then
    local cid; cid="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    java_run kafka.tools.StorageTool format -t "$cid" -c "$state/server.properties" >"$state/format.log" 2>&1 \
      || { log "formatting KRaft storage failed:"; cat "$state/format.log" >&2; exit 1; }
  fi
  : > "$log"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
       -cp "$libs/*" kafka.Kafka "$state/server.properties" >>"$log" 2>&1 &
  echo $! > "$pidfile"
  log "started pid $(cat "$pidfile"); waiting for 127.0.0.1:$port"
  for _ in $(seq 1 240); do
    if ! running; then log "broker exited during start-up; last log lines:"; tail -n 30 "$log" >&2; exit 1; fi
    if grep -q "Failed to bind\|failed to bind\|Exiting Kafka" "$log" 2>/dev/null; then
      log "broker failed to start; last log lines:"; tail -n 30 "$log" >&2; stop >/dev/null 2>&1 || true; exit 1
    fi
    if grep -q "Kafka Server started\|Transition from STARTING to STARTED" "$log" 2>/dev/null \
       && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      sleep 0.5
      if running && ! grep -q "Failed to bind\|failed to bind\|Exiting Kafka" "$log"; then
        log "ready on 127.0.0.1:$port"; echo "127.0.0.1:$port"; return 0
      fi
    fi
    sleep 0.5
  done
  log "broker did not become ready in 120 s; last log lines:"; tail -n 30 "$log" >&2; exit 1
}

stop() {
  if ! running; then log "not running"; rm -f "$pidfile"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }; sleep 0.5; done
  log "no clean shutdown after 60 s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running pid $(cat "$pidfile") on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
  reset) stop; rm -rf "$state"; log "data removed" ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
