# Shared machinery for scripts/peers. Peers are listed in start order.
PEERS_ALL=(postgres redis kafka s3 mlflow feast torchserve k8s jobset kueue)
export MLPLANE_PEERS_CACHE="${MLPLANE_PEERS_CACHE:-$HOME/.cache/mlplane-peers}"
export MLPLANE_PEERS_STATE="${MLPLANE_PEERS_STATE:-${TMPDIR:-/tmp}/mlplane-peers-state}"
mkdir -p "$MLPLANE_PEERS_CACHE" "$MLPLANE_PEERS_STATE"

# Data of one `up` lives in a fresh temp dir; its path is remembered for down/status.
peer_data_dir() { # <name>: the data dir for this peer in the current run
  local root
  root="$(cat "$MLPLANE_PEERS_STATE/$1.data" 2>/dev/null)"
  echo "$root"
}
peer_new_data_dir() { # <name>
  local d; d="$(mktemp -d "${TMPDIR:-/tmp}/mlplane-peer-$1.XXXXXX")"
  echo "$d" >"$MLPLANE_PEERS_STATE/$1.data"
  echo "$d"
}
peer_log() { echo "$MLPLANE_PEERS_STATE/$1.log"; }

# peer_spawn <name> -- cmd args...: start a background process in its own session, record its PID.
peer_spawn() {
  local name="$1"; shift; [ "$1" = "--" ] && shift
  setsid "$@" >>"$(peer_log "$name")" 2>&1 < /dev/null &
  echo $! >>"$MLPLANE_PEERS_STATE/$name.pids"
}
peer_pids() { cat "$MLPLANE_PEERS_STATE/$1.pids" 2>/dev/null; }
# Alive while a tracked PID, or any process of its process group, is running. Zombies do not count:
# PID 1 may reap orphans late, and `kill -0` succeeds on a zombie.
peer_alive() {
  local pids; pids="$(peer_pids "$1" | tr '\n' ' ')"
  [ -n "${pids// /}" ] || return 1
  ps -e -o pid=,pgid=,stat= | awk -v want=" $pids " '
    $3 !~ /^Z/ && (index(want, " " $1 " ") || index(want, " " $2 " ")) { found = 1 }
    END { exit !found }'
}

# peer_wait <name> <seconds>: poll <name>_health until healthy or timeout.
peer_wait() {
  local name="$1" limit="$2" i=0
  while [ "$i" -lt "$limit" ]; do
    if "${name}_health" >/dev/null 2>&1; then return 0; fi
    # A tracked process that already exited will not become healthy: stop waiting.
    if [ -n "$(peer_pids "$name")" ] && ! peer_alive "$name"; then return 1; fi
    sleep 1; i=$((i + 1))
  done
  return 1
}

peer_fail() { # <name> <reproduce command...>
  local name="$1"; shift
  echo "peers: $name failed to start; last lines of $(peer_log "$name"):" >&2
  tail -n 40 "$(peer_log "$name")" >&2 2>/dev/null
  echo "peers: reproduce with: $*" >&2
}

# peer_venv <dir> <marker> <pip args...>: create a virtualenv once and install into it; reruns are a file check.
peer_venv() {
  local dir="$1" marker="$2"; shift 2
  [ -f "$dir/$marker" ] && return 0
  rm -rf "$dir/venv"; mkdir -p "$dir"
  "${MLPLANE_PEERS_PYTHON:-python3}" -m venv "$dir/venv" || return 1
  "$dir/venv/bin/pip" install -q --disable-pip-version-check "$@" >"$dir/install.log" 2>&1 ||
    { tail -n 30 "$dir/install.log" >&2; return 1; }
  touch "$dir/$marker"
}

peer_port() { # <ENV_NAME> <default>: a port that env can override
  local v="${!1:-}"; echo "${v:-$2}"
}

peers_expand() { # dependencies first, each once
  local out=() n d
  add() { local x; for x in "${out[@]:-}"; do [ "$x" = "$1" ] && return; done
    if declare -F "${1}_deps" >/dev/null; then for d in $("${1}_deps"); do add "$d"; done; fi
    out+=("$1"); }
  for n in "$@"; do add "$n"; done
  echo "${out[@]}"
}

peers_up() {
  local names=("$@"); [ ${#names[@]} -eq 0 ] && names=("${PEERS_ALL[@]}")
  local n rc=0 t0
  for n in $(peers_expand "${names[@]}"); do
    declare -F "${n}_start" >/dev/null || { echo "peers: unknown peer '$n' (known: ${PEERS_ALL[*]})" >&2; return 2; }
    if peer_alive "$n" && "${n}_health" >/dev/null 2>&1; then echo "peers: $n already up"; continue; fi
    peers_down "$n" >/dev/null 2>&1
    t0=$(date +%s)
    "${n}_install" || { echo "peers: $n install failed" >&2; rc=1; continue; }
    : >"$(peer_log "$n")"
    peer_new_data_dir "$n" >/dev/null
    if "${n}_start"; then
      echo "peers: $n up in $(( $(date +%s) - t0 ))s"
    else
      # Leave nothing half-started behind (a live but unusable peer would pass as "already up").
      peers_down "$n" >/dev/null 2>&1
      rc=1
    fi
  done
  return $rc
}

# peers_restart <name...>: stop a peer's tracked processes and start it again on the same data dir and port,
# as a crash and recovery would. MLPLANE_PEERS_RESTART_SIGNAL=KILL stops it without a clean shutdown;
# MLPLANE_PEERS_RESTART_PAUSE_S keeps it stopped that many seconds first (a longer outage, default none).
peers_restart() {
  [ $# -gt 0 ] || { echo "usage: scripts/peers restart <name...>" >&2; return 2; }
  local n p d rc=0 t0 sig="${MLPLANE_PEERS_RESTART_SIGNAL:-TERM}"
  for n in "$@"; do
    declare -F "${n}_start" >/dev/null || { echo "peers: unknown peer '$n' (known: ${PEERS_ALL[*]})" >&2; return 2; }
    d="$(peer_data_dir "$n")"
    if [ -z "$d" ] || [ ! -d "$d" ]; then echo "peers: $n is not up; start it with scripts/peers up $n" >&2; rc=1; continue; fi
    t0=$(date +%s)
    [ "$sig" != KILL ] && declare -F "${n}_stop" >/dev/null && "${n}_stop" 2>/dev/null
    for p in $(peer_pids "$n"); do kill "-$sig" -- "-$p" 2>/dev/null || kill "-$sig" "$p" 2>/dev/null; done
    for _ in $(seq 1 60); do peer_alive "$n" || break; sleep 0.5; done
    for p in $(peer_pids "$n"); do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; done
    rm -f "$MLPLANE_PEERS_STATE/$n.pids"
    sleep "${MLPLANE_PEERS_RESTART_PAUSE_S:-0}"
    if "${n}_start"; then echo "peers: $n restarted in $(( $(date +%s) - t0 ))s"; else rc=1; fi
  done
  return $rc
}

peers_down() {
  local names=("$@"); [ ${#names[@]} -eq 0 ] && names=("${PEERS_ALL[@]}")
  local n p i data
  # Stop in reverse start order.
  for (( i=${#names[@]}-1; i>=0; i-- )); do
    n="${names[$i]}"
    declare -F "${n}_stop" >/dev/null && "${n}_stop" 2>/dev/null
    for p in $(peer_pids "$n"); do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 30); do peer_alive "$n" || break; sleep 0.5; done
    for p in $(peer_pids "$n"); do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; done
    rm -f "$MLPLANE_PEERS_STATE/$n.pids"
    data="$(peer_data_dir "$n")"
    [ -n "$data" ] && [ -d "$data" ] && rm -rf "$data"
    rm -f "$MLPLANE_PEERS_STATE/$n.data"
  done
}

peers_status() {
  local n
  for n in "${PEERS_ALL[@]}"; do
    declare -F "${n}_health" >/dev/null || continue
    if peer_alive "$n"; then
      if "${n}_health" >/dev/null 2>&1; then echo "$n: healthy"; else echo "$n: running, not healthy"; fi
    else
      echo "$n: stopped"
    fi
  done
}

peers_env() {
  local n
  for n in "${PEERS_ALL[@]}"; do declare -F "${n}_env" >/dev/null && "${n}_env"; done; return 0
}
