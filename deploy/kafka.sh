#!/usr/bin/env bash
# Local Apache Kafka (KRaft: broker + controller in one JVM per node, no ZooKeeper) for the demo, tests and CI.
#
#   deploy/kafka.sh fetch     resolve org.apache.kafka:kafka_2.13 + runtime deps from Maven Central into .cache/kafka/libs
#   deploy/kafka.sh start     fetch if needed, format KRaft storage (first time), start, wait until it accepts clients
#   deploy/kafka.sh stop      stop it cleanly (SIGTERM, then wait for controlled shutdown)
#   deploy/kafka.sh kill      SIGKILL every node at once, no shutdown at all (fault tests; start recovers the logs)
#   deploy/kafka.sh status    exit 0 when running (every node)
#   deploy/kafka.sh reset     stop and delete its data (and, secured, its certificates and passwords)
#   deploy/kafka.sh stop-node N / start-node N    one node of a cluster (DPP_KAFKA_NODES=3), N = 1..3
#   deploy/kafka.sh grant-dpp SOURCE SINK DEAD_LETTER GROUP [TXN_ID_PREFIX]    secured only: ACLs of User:dpp
#   deploy/kafka.sh env       secured only: print where the client files are (never a password)
#
# Environment: DPP_KAFKA_PORT (default 9092; the controller listens on PORT+1), DPP_KAFKA_CACHE (default <repo>/.cache/kafka),
# DPP_KAFKA_HEAP (JVM heap options per node; default -Xms256m -Xmx1g, -Xms128m -Xmx512m with 3 nodes).
# The bootstrap address printed on success is 127.0.0.1:$DPP_KAFKA_PORT (one node).
#
# DPP_KAFKA_NODES=3: three combined broker+controller nodes; node N (1..3) serves clients on PORT+N-1 and its
# controller on PORT+3+N-1; bootstrap 127.0.0.1:PORT,127.0.0.1:PORT+1,127.0.0.1:PORT+2 (printed on success);
# internal topics replicated 3 times (min.insync.replicas 2); data under .cache/kafka/cluster-PORT/node-N.
#
# DPP_KAFKA_SECURITY=sasl_ssl (default plaintext): every listener is SASL_SSL, none plaintext. State under
# .cache/kafka/sasl-PORT (sasl-cluster-PORT with 3 nodes), created once and reused:
#   tls/ca.pem, tls/ca.key        a private CA; tls/broker.p12 the broker certificate (SAN localhost, 127.0.0.1)
#   secrets.env (0600)            random passwords: DPP_KAFKA_{ADMIN,DPP,READER,KEYSTORE}_PASSWORD (never printed;
#                                 server.properties, 0600, holds them too: the PLAIN users' JAAS config)
#   clients/{admin,dpp,reader}.properties         librdkafka: SCRAM-SHA-512, sasl.password=env:DPP_KAFKA_*_PASSWORD
#   clients/{admin,dpp,reader}-plain.properties   the same over SASL/PLAIN
#   clients/admin-java.properties (0600)          Java admin client (used by grant-dpp)
# Users: admin (super user), dpp and reader (no rights until granted); SCRAM-SHA-512 credentials written at
# format time, PLAIN ones in the broker's JAAS config. StandardAuthorizer, allow.everyone.if.no.acl.found=false.
# Use: set -a; . <state>/secrets.env; set +a; dpp --kafka-config-file <state>/clients/dpp.properties run ...
# grant-dpp gives User:dpp exactly: Read on SOURCE, Write+Describe+DescribeConfigs on SINK and DEAD_LETTER, Read on GROUP,
# Read+Describe on the control topic (DPP_CONTROL_TOPIC, default dpp.control), Write+Describe on the audit
# topic (DPP_AUDIT_TOPIC, default dpp.audit: the records of processing) and,
# with TXN_ID_PREFIX (exactly_once routes: transactional ids dpp.<group>.*), Write+Describe on those
# transactional ids (prefixed) and IdempotentWrite on the cluster.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
port="${DPP_KAFKA_PORT:-9092}"
cache="${DPP_KAFKA_CACHE:-$root/.cache/kafka}"
libs="$cache/libs"
security="${DPP_KAFKA_SECURITY:-plaintext}"
nodes="${DPP_KAFKA_NODES:-1}"
case "$security" in plaintext|sasl_ssl) ;; *) printf 'kafka.sh: DPP_KAFKA_SECURITY must be plaintext or sasl_ssl\n' >&2; exit 2 ;; esac
case "$nodes" in 1|3) ;; *) printf 'kafka.sh: DPP_KAFKA_NODES must be 1 or 3\n' >&2; exit 2 ;; esac
if [ "$nodes" = 1 ]; then heap_default="-Xms256m -Xmx1g"; else heap_default="-Xms128m -Xmx512m"; fi
heap="${DPP_KAFKA_HEAP:-$heap_default}"

prefix=""; [ "$security" = sasl_ssl ] && prefix="sasl-"
if [ "$nodes" = 1 ]; then base="$cache/${prefix:-node-}$port"; else base="$cache/${prefix}cluster-$port"; fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

# node N: its state dir, client port, controller port
node_state() { if [ "$nodes" = 1 ]; then echo "$base"; else echo "$base/node-$1"; fi; }
node_port() { echo $((port + $1 - 1)); }
node_cport() { if [ "$nodes" = 1 ]; then echo $((port + 1)); else echo $((port + nodes + $1 - 1)); fi; }
bootstrap() { local i out=""; for i in $(seq 1 "$nodes"); do out="${out:+$out,}127.0.0.1:$(node_port "$i")"; done; echo "$out"; }
voters() { local i out=""; for i in $(seq 1 "$nodes"); do out="${out:+$out,}$i@127.0.0.1:$(node_cport "$i")"; done; echo "$out"; }

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

running_node() { local f; f="$(node_state "$1")/kafka.pid"; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
running() { local i; for i in $(seq 1 "$nodes"); do running_node "$i" || return 1; done; }
any_running() { local i; for i in $(seq 1 "$nodes"); do running_node "$i" && return 0; done; return 1; }

java_run() {
  java -Xms64m -Xmx256m -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
       -cp "$libs/*" "$@"
}

# -- secured mode: CA, broker certificate, passwords, client files (created once) -----------------------
secrets_file="$base/secrets.env"
secret() { sed -n "s/^$1=//p" "$secrets_file"; }

make_secrets() {
  command -v openssl >/dev/null || { log "openssl is required for DPP_KAFKA_SECURITY=sasl_ssl"; exit 1; }
  mkdir -p "$base/tls" "$base/clients"
  chmod 700 "$base"
  if [ ! -s "$secrets_file" ]; then
    (umask 077; {
      for u in ADMIN DPP READER KEYSTORE; do printf 'DPP_KAFKA_%s_PASSWORD=%s\n' "$u" "$(openssl rand -hex 24)"; done
    } > "$secrets_file.tmp" && mv "$secrets_file.tmp" "$secrets_file")
  fi
  local t="$base/tls"
  if [ ! -s "$t/broker.p12" ]; then
    log "creating a private CA and the broker certificate under $t"
    (umask 077
     openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=dpp local Kafka CA" \
       -keyout "$t/ca.key" -out "$t/ca.pem" >/dev/null 2>&1
     openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
       -keyout "$t/broker.key" -out "$t/broker.csr" >/dev/null 2>&1
     printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > "$t/ext.cnf"
     openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial -days 3650 -sha256 \
       -extfile "$t/ext.cnf" -out "$t/broker.pem" >/dev/null 2>&1
     openssl pkcs12 -export -in "$t/broker.pem" -inkey "$t/broker.key" -certfile "$t/ca.pem" -name broker \
       -passout "file:"<(secret DPP_KAFKA_KEYSTORE_PASSWORD) -out "$t/broker.p12.tmp" >/dev/null 2>&1) \
      || { log "creating the certificates with openssl failed"; exit 1; }
    mv "$t/broker.p12.tmp" "$t/broker.p12"
    chmod 644 "$t/ca.pem"
  fi
  local u mech suffix
  for u in admin dpp reader; do
    for mech in SCRAM-SHA-512 PLAIN; do
      suffix=""; [ "$mech" = PLAIN ] && suffix="-plain"
      cat > "$base/clients/$u$suffix.properties" <<PROPS
# librdkafka client properties for User:$u on $(bootstrap) (written by deploy/kafka.sh)
# the password is read from the environment: set -a; . $secrets_file; set +a
security.protocol=SASL_SSL
sasl.mechanism=$mech
sasl.username=$u
sasl.password=env:DPP_KAFKA_$(printf '%s' "$u" | tr a-z A-Z)_PASSWORD
ssl.ca.location=$t/ca.pem
PROPS
    done
  done
  (umask 077; cat > "$base/clients/admin-java.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret DPP_KAFKA_ADMIN_PASSWORD)";
ssl.truststore.type=PEM
ssl.truststore.location=$t/ca.pem
PROPS
  )
}

security_config() {  # server.properties lines of the secured mode
  local t="$base/tls" a d r
  a="$(secret DPP_KAFKA_ADMIN_PASSWORD)"; d="$(secret DPP_KAFKA_DPP_PASSWORD)"; r="$(secret DPP_KAFKA_READER_PASSWORD)"
  local plain="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$a\" user_admin=\"$a\" user_dpp=\"$d\" user_reader=\"$r\";"
  cat <<PROPS
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$plain
ssl.keystore.type=PKCS12
ssl.keystore.location=$t/broker.p12
ssl.keystore.password=$(secret DPP_KAFKA_KEYSTORE_PASSWORD)
ssl.truststore.type=PEM
ssl.truststore.location=$t/ca.pem
ssl.endpoint.identification.algorithm=https
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
PROPS
}

write_config() {  # node N
  local i="$1" st p cp proto=PLAINTEXT rf=1 misr=1
  st="$(node_state "$i")"; p="$(node_port "$i")"; cp="$(node_cport "$i")"
  [ "$security" = sasl_ssl ] && proto=SASL_SSL
  [ "$nodes" = 3 ] && { rf=3; misr=2; }
  mkdir -p "$st/data"
  (umask 077; {
  cat <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$(voters)
listeners=$proto://127.0.0.1:$p,CONTROLLER://127.0.0.1:$cp
advertised.listeners=$proto://127.0.0.1:$p
controller.listener.names=CONTROLLER
log.dirs=$st/data
num.partitions=3
auto.create.topics.enable=true
default.replication.factor=$rf
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$misr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$misr
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
PROPS
  if [ "$security" = sasl_ssl ]; then security_config
  else printf '%s\n' "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT" "inter.broker.listener.name=PLAINTEXT"; fi
  } > "$st/server.properties.tmp" && mv "$st/server.properties.tmp" "$st/server.properties")
}

format_node() {  # node N, cluster id
  local i="$1" cid="$2" st; st="$(node_state "$i")"
  [ -f "$st/data/meta.properties" ] && return 0
  (umask 077; {
    printf '%s\n' kafka.tools.StorageTool format -t "$cid" -c "$st/server.properties"
    if [ "$security" = sasl_ssl ]; then  # an @argfile keeps the passwords off the process command line
      local u; for u in admin dpp reader; do
        printf -- '--add-scram\n"SCRAM-SHA-512=[name=%s,password=%s]"\n' "$u" "$(secret "DPP_KAFKA_$(printf '%s' "$u" | tr a-z A-Z)_PASSWORD")"
      done
    fi
  } > "$st/format.args")
  (umask 077; java -Xms64m -Xmx256m -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" -cp "$libs/*" "@$st/format.args" \
    >"$st/format.log" 2>&1) || { rm -f "$st/format.args"; log "formatting KRaft storage failed:"; cat "$st/format.log" >&2; exit 1; }
  rm -f "$st/format.args"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

launch_node() {  # node N: start the JVM (storage formatted)
  local i="$1" st; st="$(node_state "$i")"
  : > "$st/broker.log"
  # shellcheck disable=SC2086
  nohup java $heap -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
       -cp "$libs/*" kafka.Kafka "$st/server.properties" >>"$st/broker.log" 2>&1 &
  echo $! > "$st/kafka.pid"
  log "node $i started pid $! (127.0.0.1:$(node_port "$i"))"
}

await_node() {  # node N: wait until it accepts clients
  local i="$1" st p lg; st="$(node_state "$i")"; p="$(node_port "$i")"; lg="$st/broker.log"
  for _ in $(seq 1 240); do
    if ! running_node "$i"; then log "node $i exited during start-up; last log lines:"; tail -n 30 "$lg" >&2; return 1; fi
    if grep -q "Failed to bind\|failed to bind\|Exiting Kafka" "$lg" 2>/dev/null; then
      log "node $i failed to start; last log lines:"; tail -n 30 "$lg" >&2; return 1
    fi
    if grep -q "Kafka Server started\|Transition from STARTING to STARTED" "$lg" 2>/dev/null && port_busy "$p"; then
      sleep 0.5
      if running_node "$i" && ! grep -q "Failed to bind\|failed to bind\|Exiting Kafka" "$lg"; then return 0; fi
    fi
    sleep 0.5
  done
  log "node $i did not become ready in 120 s; last log lines:"; tail -n 30 "$lg" >&2; return 1
}

start() {
  if running; then log "already running on $(bootstrap)"; echo "$(bootstrap)"; return 0; fi
  fetch
  local i todo=()
  for i in $(seq 1 "$nodes"); do
    running_node "$i" && continue
    if port_busy "$(node_port "$i")" || port_busy "$(node_cport "$i")"; then
      log "port $(node_port "$i") or $(node_cport "$i") on 127.0.0.1 is already in use by another process;"
      log "choose other ports with DPP_KAFKA_PORT=<port> (the controller uses port+1; 3 nodes use PORT..PORT+5)"
      exit 1
    fi
    todo+=("$i")
  done
  [ "$security" = sasl_ssl ] && make_secrets
  local cid=""
  [ -s "$base/cluster.id" ] && cid="$(cat "$base/cluster.id")"
  if [ -z "$cid" ]; then
    mkdir -p "$base"; cid="$(java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"; echo "$cid" > "$base/cluster.id"
  fi
  for i in "${todo[@]}"; do write_config "$i"; format_node "$i" "$cid"; done
  for i in "${todo[@]}"; do launch_node "$i"; done
  log "waiting for $(bootstrap)"
  for i in "${todo[@]}"; do
    await_node "$i" || { stop >/dev/null 2>&1 || true; exit 1; }
  done
  log "ready on $(bootstrap)${prefix:+ (SASL_SSL; client files in $base/clients)}"
  echo "$(bootstrap)"
}

start_node() {  # one node of a running cluster
  local i="$1"
  if running_node "$i"; then log "node $i already running"; return 0; fi
  [ -f "$(node_state "$i")/data/meta.properties" ] || { log "node $i was never started (run start first)"; exit 1; }
  launch_node "$i"; await_node "$i" || exit 1; log "node $i ready on 127.0.0.1:$(node_port "$i")"
}

stop_node() {
  local i="$1" st pid; st="$(node_state "$i")"
  if ! running_node "$i"; then rm -f "$st/kafka.pid"; return 0; fi
  pid="$(cat "$st/kafka.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || { rm -f "$st/kafka.pid"; log "node $i stopped"; return 0; }; sleep 0.5; done
  log "node $i: no clean shutdown after 60 s; killing"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$st/kafka.pid"
}

stop() {
  if ! any_running; then log "not running"; local i; for i in $(seq 1 "$nodes"); do rm -f "$(node_state "$i")/kafka.pid"; done; return 0; fi
  local i pids=()
  for i in $(seq 1 "$nodes"); do  # SIGTERM to all at once: a cluster shuts down together
    running_node "$i" && { kill -TERM "$(cat "$(node_state "$i")/kafka.pid")"; pids+=("$i"); }
  done
  for i in "${pids[@]}"; do stop_node "$i"; done
  log "stopped"
}

kill_nodes() {  # SIGKILL: what a crashed or OOM-killed broker looks like; the data stay for the next start
  local i st pid
  for i in $(seq 1 "$nodes"); do
    st="$(node_state "$i")"
    running_node "$i" || { rm -f "$st/kafka.pid"; continue; }
    pid="$(cat "$st/kafka.pid")"
    kill -KILL "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$st/kafka.pid"; log "node $i killed (SIGKILL, pid $pid)"
  done
}

node_arg() {
  [ "$nodes" = 3 ] || { log "$1 needs DPP_KAFKA_NODES=3"; exit 2; }
  case "${2:-}" in 1|2|3) ;; *) log "usage: DPP_KAFKA_NODES=3 deploy/kafka.sh $1 N (N = 1, 2 or 3)"; exit 2 ;; esac
}

grant_dpp() {  # SOURCE SINK DEAD_LETTER GROUP [TXN_ID_PREFIX]
  [ "$security" = sasl_ssl ] || { log "grant-dpp needs DPP_KAFKA_SECURITY=sasl_ssl"; exit 2; }
  [ $# -ge 4 ] && [ $# -le 5 ] || { log "usage: deploy/kafka.sh grant-dpp SOURCE SINK DEAD_LETTER GROUP [TXN_ID_PREFIX]"; exit 2; }
  running || { log "not running"; exit 1; }
  local acl=(org.apache.kafka.tools.AclCommand --bootstrap-server "$(bootstrap)"
             --command-config "$base/clients/admin-java.properties" --add --allow-principal User:dpp)
  java_run "${acl[@]}" --operation Read --topic "$1" >"$base/acl.log" 2>&1 \
   && java_run "${acl[@]}" --operation Write --operation Describe --operation DescribeConfigs --topic "$2" --topic "$3" >>"$base/acl.log" 2>&1 \
   && java_run "${acl[@]}" --operation Read --group "$4" >>"$base/acl.log" 2>&1 \
   && java_run "${acl[@]}" --operation Read --operation Describe --topic "${DPP_CONTROL_TOPIC:-dpp.control}" >>"$base/acl.log" 2>&1 \
   && java_run "${acl[@]}" --operation Write --operation Describe --topic "${DPP_AUDIT_TOPIC:-dpp.audit}" >>"$base/acl.log" 2>&1 \
   && if [ $# -eq 5 ]; then
        java_run "${acl[@]}" --operation Write --operation Describe --transactional-id "$5" \
          --resource-pattern-type prefixed >>"$base/acl.log" 2>&1 \
        && java_run "${acl[@]}" --operation IdempotentWrite --cluster >>"$base/acl.log" 2>&1
      fi \
   || { log "adding the ACLs failed:"; tail -n 20 "$base/acl.log" >&2; exit 1; }
  log "User:dpp may read $1 (group $4) and the control topic ${DPP_CONTROL_TOPIC:-dpp.control}, and write $2, $3, ${DPP_AUDIT_TOPIC:-dpp.audit}${5:+ (transactional ids $5*)}"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  kill) kill_nodes ;;
  status) if running; then echo "running on $(bootstrap)"; else echo "not running"; exit 1; fi ;;
  reset) stop; rm -rf "$base"; log "data removed" ;;
  start-node) node_arg "$@"; start_node "$2" ;;
  stop-node) node_arg "$@"; stop_node "$2" ;;
  grant-dpp) shift; grant_dpp "$@" ;;
  env) [ "$security" = sasl_ssl ] || { log "env needs DPP_KAFKA_SECURITY=sasl_ssl"; exit 2; }
       printf 'bootstrap=%s\nsecrets=%s\nclients=%s\nca=%s\n' "$(bootstrap)" "$secrets_file" "$base/clients" "$base/tls/ca.pem" ;;
  *) sed -n '2,35p' "$0"; exit 2 ;;
esac
