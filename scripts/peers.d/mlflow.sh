# MLflow tracking server (pinned, in a cached virtualenv): SQLite backend store, one worker, telemetry off.
# Proxied artifacts (mlflow-artifacts:/...) are stored the way a production server stores them: in an S3 bucket, here
# the S3 peer's (s3://$MLPLANE_S3_BUCKET/mlflow-artifacts, boto3 in the server's virtualenv), so a run's artifacts
# logged through MLflow are objects that plugin-s3 can read. MLPLANE_MLFLOW_ARTIFACTS=local keeps them in the data
# dir instead and drops the dependency on the S3 peer.
# Port: MLPLANE_MLFLOW_PORT (default 15000). Env: MLPLANE_MLFLOW_URL, MLPLANE_MLFLOW_ARTIFACTS_URI, and
# MLPLANE_MLFLOW_PYTHON: the virtualenv's python, whose stock mlflow client the server package's MLflow-compatible
# API is tested with (packages/server/test/mlflow-client).
MLFLOW_VERSION=3.17.2
MLFLOW_BOTO3_VERSION=1.44.8
MLFLOW_PORT="$(peer_port MLPLANE_MLFLOW_PORT 15000)"
MLFLOW_HOME="$MLPLANE_PEERS_CACHE/mlflow"
MLFLOW_S3_PREFIX=mlflow-artifacts

mlflow_artifacts_in_s3() { [ "${MLPLANE_MLFLOW_ARTIFACTS:-s3}" != local ]; }

mlflow_deps() { mlflow_artifacts_in_s3 && echo s3; }

mlflow_install() {
  peer_venv "$MLFLOW_HOME" ".complete-$MLFLOW_VERSION" "mlflow==$MLFLOW_VERSION" || return 1
  mlflow_artifacts_in_s3 || return 0
  mlflow_boto3_install
}

# boto3 goes into the existing virtualenv under its own marker: a venv made before this step is kept, and a
# server already running from it is not disturbed.
mlflow_boto3_install() {
  local marker="$MLFLOW_HOME/.boto3-$MLFLOW_BOTO3_VERSION"
  [ -f "$marker" ] && return 0
  "$MLFLOW_HOME/venv/bin/pip" install -q --disable-pip-version-check "boto3==$MLFLOW_BOTO3_VERSION" \
    >"$MLFLOW_HOME/install-boto3.log" 2>&1 || { tail -n 30 "$MLFLOW_HOME/install-boto3.log" >&2; return 1; }
  touch "$marker"
}

mlflow_start() {
  local d; d="$(peer_data_dir mlflow)"
  local destination="$d/art" s3_env=()
  if mlflow_artifacts_in_s3; then
    # `restart` runs start without install: make sure boto3 is there (a file check once installed).
    mlflow_boto3_install || return 1
    s3_health || { echo "peers: mlflow stores its artifacts in the S3 peer, which is not up: scripts/peers up s3 (or MLPLANE_MLFLOW_ARTIFACTS=local)" >&2; return 1; }
    destination="s3://$S3_BUCKET/$MLFLOW_S3_PREFIX"
    # MLflow's S3 artifact repository reads the endpoint from MLFLOW_S3_ENDPOINT_URL and the keys from boto3's chain.
    s3_env=(MLFLOW_S3_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY"
      AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION="$S3_REGION")
  else
    mkdir -p "$d/art"
  fi
  echo "$destination" >"$d/artifacts-destination"
  local cmd=("$MLFLOW_HOME/venv/bin/mlflow" server --backend-store-uri "sqlite:///$d/mlflow.db" --artifacts-destination "$destination"
    --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1)
  # The job runner (huey consumers for GenAI jobs: ~8 extra Python processes, slow start) is off
  # unless MLPLANE_MLFLOW_JOBS=true; tracking and the model registry do not need it.
  peer_spawn mlflow -- env MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true "${s3_env[@]}" \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLPLANE_MLFLOW_JOBS:-false}" "${cmd[@]}"
  peer_wait mlflow 120 || { peer_fail mlflow "MLFLOW_DISABLE_TELEMETRY=true ${s3_env[*]} ${cmd[*]}"; return 1; }
}

mlflow_health() { curl -fsS -m 3 "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null; }

mlflow_env() {
  echo "export MLPLANE_MLFLOW_URL=http://127.0.0.1:$MLFLOW_PORT"
  # Where the server stores proxied artifacts, as it was started (absent while it is not up).
  local f; f="$(peer_data_dir mlflow)/artifacts-destination"
  [ -f "$f" ] && echo "export MLPLANE_MLFLOW_ARTIFACTS_URI=$(cat "$f")"
  [ -x "$MLFLOW_HOME/venv/bin/python" ] && echo "export MLPLANE_MLFLOW_PYTHON=$MLFLOW_HOME/venv/bin/python"
  return 0
}
