# PostgreSQL 15 (Debian package) as a private instance: initdb into the data dir, then
# `postgres -D` in the foreground, run as the unprivileged `postgres` system user.
# Port: MLPLANE_PG_PORT (default 54329). Env: MLPLANE_PG_URL.
PG_PORT="$(peer_port MLPLANE_PG_PORT 54329)"
PG_USER=mlplane PG_PASS=mlplane PG_DB=mlplane

pg_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && { echo "$d"; return 0; }; done
  return 1
}

postgres_install() {
  if ! dpkg -s postgresql >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null || return 1
  fi
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
  pg_bindir >/dev/null
}

# Run a command as the postgres user (or as is when not root).
pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

postgres_start() {
  local d bin; d="$(peer_data_dir postgres)"; bin="$(pg_bindir)"
  mkdir -p "$d/pgdata" "$d/sock"
  printf '%s\n' "$PG_PASS" >"$d/pwfile"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$d" && chmod 755 "$d"
  # A restart keeps the cluster initdb made.
  [ -f "$d/pgdata/PG_VERSION" ] || pg_as "$bin/initdb" -D "$d/pgdata" -U "$PG_USER" --pwfile="$d/pwfile" -A scram-sha-256 -E UTF8 --no-sync \
    >>"$(peer_log postgres)" 2>&1 || { peer_fail postgres "$bin/initdb -D $d/pgdata"; return 1; }
  _pg_clear_crash "$d/pgdata" "$d/sock"
  local run=()
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  # Tests run faster without fsync; crash tests set MLPLANE_PG_DURABLE=1, since a crash then loses nothing acknowledged.
  local durability=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
  [ "${MLPLANE_PG_DURABLE:-}" = 1 ] && durability=()
  peer_spawn postgres -- "${run[@]}" "$bin/postgres" -D "$d/pgdata" -k "$d/sock" -h 127.0.0.1 -p "$PG_PORT" \
    "${durability[@]}"
  if ! peer_wait postgres 30; then
    peer_fail postgres "${run[*]} $bin/postgres -D $d/pgdata -k $d/sock -h 127.0.0.1 -p $PG_PORT"; return 1
  fi
  [ "$(PGPASSWORD="$PG_PASS" "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" 2>/dev/null)" = 1 ] && return 0
  PGPASSWORD="$PG_PASS" "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "CREATE DATABASE $PG_DB" \
    >>"$(peer_log postgres)" 2>&1 || { peer_fail postgres "psql -h 127.0.0.1 -p $PG_PORT -U $PG_USER -c 'CREATE DATABASE $PG_DB'"; return 1; }
}

# After a crash (restart with KILL) the server's backends, which lead their own sessions, outlive the killed
# postmaster for a moment, and its pid stays a zombie until init reaps it; a new postmaster started then refuses
# the data dir. Wait until no live process works in the data dir, then drop the stale lock files.
_pg_clear_crash() {
  local pgdata="$1" sock="$2" i p busy state
  [ -f "$pgdata/postmaster.pid" ] || return 0
  for i in $(seq 1 40); do
    busy=0
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/cwd" 2>/dev/null)" = "$pgdata" ] || continue
      state="$(awk '{print $3}' "$p/stat" 2>/dev/null)"
      [ -n "$state" ] && [ "$state" != Z ] && busy=1 && break
    done
    [ "$busy" = 0 ] && break
    sleep 0.5
  done
  rm -f "$pgdata/postmaster.pid" "$sock"/.s.PGSQL.*.lock
}

postgres_health() {
  local bin; bin="$(pg_bindir)" || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
}

postgres_env() {
  echo "export MLPLANE_PG_URL=postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
}

# Fast shutdown (SIGINT) so open client sessions do not hold the smart shutdown that SIGTERM asks for;
# backends run in their own process groups, so the postmaster must end them itself.
postgres_stop() {
  local d pid; d="$(peer_data_dir postgres)"
  [ -n "$d" ] && [ -f "$d/pgdata/postmaster.pid" ] || return 0
  pid="$(head -n 1 "$d/pgdata/postmaster.pid")"
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
}
