# Redis 7 (Debian package redis-server) in the foreground. The append-only file is on (fsync every second,
# written before each reply), so a restart of the process keeps every acknowledged write.
# Port: MLPLANE_REDIS_PORT (default 63799). Env: MLPLANE_REDIS_URL.
REDIS_PORT="$(peer_port MLPLANE_REDIS_PORT 63799)"

redis_install() {
  dpkg -s redis-server >/dev/null 2>&1 && return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}

redis_start() {
  local d; d="$(peer_data_dir redis)"
  peer_spawn redis -- redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes --dir "$d" \
    --daemonize no --save '' --appendonly yes --appendfsync everysec --logfile ''
  peer_wait redis 15 || { peer_fail redis "redis-server --port $REDIS_PORT --bind 127.0.0.1 --dir $d --save ''"; return 1; }
}

redis_health() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

redis_env() { echo "export MLPLANE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"; }
