# Apache Kafka 4.x in KRaft mode: one process that is both broker and controller (static quorum of one).
# The jars come from the Maven repository via a generated pom (cached), started with `java -cp 'libs/*' kafka.Kafka`.
# Ports: MLPLANE_KAFKA_PORT (broker, default 19092), MLPLANE_KAFKA_CONTROLLER_PORT (default 19093).
# Env: MLPLANE_KAFKA_BROKERS.
KAFKA_VERSION=4.1.1
KAFKA_LOG4J_VERSION=2.24.3
KAFKA_PORT="$(peer_port MLPLANE_KAFKA_PORT 19092)"
KAFKA_CONTROLLER_PORT="$(peer_port MLPLANE_KAFKA_CONTROLLER_PORT 19093)"
KAFKA_HOME="$MLPLANE_PEERS_CACHE/kafka"
# A fixed cluster id (16 bytes, base64url) keeps `format` free of an extra JVM start.
KAFKA_CLUSTER_ID=bWxwbGFuZS1wZWVycy1rYQ

kafka_install() {
  local marker="$KAFKA_HOME/libs/.complete-$KAFKA_VERSION"
  [ -f "$marker" ] && return 0
  if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    echo "peers: kafka needs java (17+) and mvn" >&2; return 1
  fi
  mkdir -p "$KAFKA_HOME"
  cat >"$KAFKA_HOME/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mlplane.peers</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$KAFKA_LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$KAFKA_HOME/libs"
  mvn -q -B -f "$KAFKA_HOME/pom.xml" -Dmaven.repo.local="$KAFKA_HOME/m2" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_HOME/libs" -DincludeScope=runtime -Dstyle.color=never >"$KAFKA_HOME/install.log" 2>&1 ||
    { tail -n 30 "$KAFKA_HOME/install.log" >&2; return 1; }
  rm -rf "$KAFKA_HOME/m2" # the jars were copied into libs/
  touch "$marker"
}

kafka_java() { java -Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "$@"; }

kafka_start() {
  local d; d="$(peer_data_dir kafka)"
  cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
  cat >"$d/log4j2.properties" <<'LOG'
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.server.name=kafka.server.KafkaRaftServer
logger.server.level=INFO
LOG
  local cp="$KAFKA_HOME/libs/*" log4j="-Dlog4j2.configurationFile=$d/log4j2.properties"
  # A restart keeps the formatted log dir (formatting twice fails).
  [ -f "$d/logs/meta.properties" ] || kafka_java "$log4j" -cp "$cp" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$d/server.properties" \
    >>"$(peer_log kafka)" 2>&1 || { peer_fail kafka "java -cp '$cp' kafka.tools.StorageTool format -t $KAFKA_CLUSTER_ID -c $d/server.properties"; return 1; }
  peer_spawn kafka -- java -Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    "$log4j" -cp "$cp" kafka.Kafka "$d/server.properties"
  peer_wait kafka 90 || { peer_fail kafka "java -Xmx512m -cp '$cp' kafka.Kafka $d/server.properties"; return 1; }
}

# Healthy when the broker listener answers an ApiVersions (v0) request without error.
kafka_health() {
  python3 - "$KAFKA_PORT" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
cid = b"mlplane-peers"
body = struct.pack(">hhih", 18, 0, 7, len(cid)) + cid
s.sendall(struct.pack(">i", len(body)) + body)
buf = b""
while len(buf) < 10:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit(1)
    buf += chunk
_, corr, err = struct.unpack(">iih", buf[:10])
sys.exit(0 if corr == 7 and err == 0 else 1)
PY
}

kafka_env() { echo "export MLPLANE_KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"; }
