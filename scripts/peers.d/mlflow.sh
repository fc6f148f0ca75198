# MLflow tracking server (pinned, in a cached virtualenv): SQLite backend store and proxied artifacts
# in the data dir, one worker, telemetry off. Port: MLPLANE_MLFLOW_PORT (default 15000). Env: MLPLANE_MLFLOW_URL.
MLFLOW_VERSION=3.17.2
MLFLOW_PORT="$(peer_port MLPLANE_MLFLOW_PORT 15000)"
MLFLOW_HOME="$MLPLANE_PEERS_CACHE/mlflow"

mlflow_install() { peer_venv "$MLFLOW_HOME" ".complete-$MLFLOW_VERSION" "mlflow==$MLFLOW_VERSION"; }

mlflow_start() {
  local d; d="$(peer_data_dir mlflow)"
  mkdir -p "$d/art"
  local cmd=("$MLFLOW_HOME/venv/bin/mlflow" server --backend-store-uri "sqlite:///$d/mlflow.db" --artifacts-destination "$d/art"
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1)
  # The job runner (huey consumers for GenAI jobs: ~8 extra Python processes, slow start) is off
  # unless MLPLANE_MLFLOW_JOBS=true; tracking and the model registry do not need it.
  peer_spawn mlflow -- env MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLPLANE_MLFLOW_JOBS:-false}" "${cmd[@]}"
  peer_wait mlflow 120 || { peer_fail mlflow "MLFLOW_DISABLE_TELEMETRY=true ${cmd[*]}"; return 1; }
}

mlflow_health() { curl -fsS -m 3 "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null; }

mlflow_env() { echo "export MLPLANE_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT"; }
