# MLflow tracking server (pinned, in a cached virtualenv), configured as MLflow's docs recommend for production: a
# PostgreSQL backend store (a database of its own, `mlflow`, on the PostgreSQL peer: dropped and created anew by
# `up`, kept by `restart`; psycopg2 in the server's virtualenv) and as many server workers as cores, telemetry off.
# MLPLANE_MLFLOW_BACKEND=sqlite runs it on a SQLite file in its data dir instead, with one worker (SQLite takes one
# writer at a time), and drops the dependency on the PostgreSQL peer. MLPLANE_MLFLOW_WORKERS overrides the workers.
# Proxied artifacts (mlflow-artifacts:/...) are stored the way a production server stores them: in an S3 bucket, here
# the S3 peer's (s3://$MLPLANE_S3_BUCKET/mlflow-artifacts, boto3 in the server's virtualenv), so a run's artifacts
# logged through MLflow are objects that plugin-s3 can read. MLPLANE_MLFLOW_ARTIFACTS=local keeps them in the data
# dir instead and drops the dependency on the S3 peer.
# Port: MLPLANE_MLFLOW_PORT (default 15000). Env: MLPLANE_MLFLOW_URL, MLPLANE_MLFLOW_ARTIFACTS_URI,
# MLPLANE_MLFLOW_BACKEND_URI (the backend store, as the server was started; for benchmarks that seed it directly), and
# MLPLANE_MLFLOW_PYTHON: the virtualenv's python, whose stock mlflow client the server package's MLflow-compatible
# API is tested with (packages/server/test/mlflow-client).
MLFLOW_VERSION=3.17.2
MLFLOW_BOTO3_VERSION=1.44.8
MLFLOW_PSYCOPG2_VERSION=2.9.13
MLFLOW_PG_DB=mlflow
MLFLOW_PORT="$(peer_port MLPLANE_MLFLOW_PORT 15000)"
MLFLOW_HOME="$MLPLANE_PEERS_CACHE/mlflow"
MLFLOW_S3_PREFIX=mlflow-artifacts

mlflow_artifacts_in_s3() { [ "${MLPLANE_MLFLOW_ARTIFACTS:-s3}" != local ]; }

mlflow_on_postgres() { [ "${MLPLANE_MLFLOW_BACKEND:-postgres}" != sqlite ]; }

mlflow_deps() {
  mlflow_on_postgres && echo postgres
  mlflow_artifacts_in_s3 && echo s3
  return 0
}

mlflow_install() {
  peer_venv "$MLFLOW_HOME" ".complete-$MLFLOW_VERSION" "mlflow==$MLFLOW_VERSION" || return 1
  if mlflow_on_postgres; then mlflow_psycopg_install || return 1; fi
  mlflow_artifacts_in_s3 || return 0
  mlflow_boto3_install
}

# psycopg2 (SQLAlchemy's postgresql+psycopg2 driver, the one MLflow's docs install) goes into the existing virtualenv
# under its own marker, as boto3 does below. Not psycopg 3: it binds strings as typed VARCHAR parameters, and
# MLflow 3.17.2 compares model_versions.version (an integer column) with a string when it archives the versions in a
# stage, which PostgreSQL then refuses (operator does not exist: integer <> character varying).
mlflow_psycopg_install() {
  local marker="$MLFLOW_HOME/.psycopg2-$MLFLOW_PSYCOPG2_VERSION"
  [ -f "$marker" ] && return 0
  "$MLFLOW_HOME/venv/bin/pip" install -q --disable-pip-version-check "psycopg2-binary==$MLFLOW_PSYCOPG2_VERSION" \
    >"$MLFLOW_HOME/install-psycopg.log" 2>&1 || { tail -n 30 "$MLFLOW_HOME/install-psycopg.log" >&2; return 1; }
  touch "$marker"
}

# The backend store URI: on PostgreSQL, the database `mlflow` of the PostgreSQL peer, new for each `up` (a data dir
# without the `backend-store` file) and kept on `restart`.
mlflow_backend_store() {
  local d="$1"
  if ! mlflow_on_postgres; then echo "sqlite:///$d/mlflow.db" >"$d/backend-store"; return 0; fi
  mlflow_psycopg_install || return 1
  postgres_health || { echo "peers: mlflow stores its runs in the PostgreSQL peer, which is not up: scripts/peers up postgres (or MLPLANE_MLFLOW_BACKEND=sqlite)" >&2; return 1; }
  if [ ! -f "$d/backend-store" ]; then
    local psql; psql="$(pg_bindir)/psql"
    PGPASSWORD="$PG_PASS" "$psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -q \
      -c "DROP DATABASE IF EXISTS $MLFLOW_PG_DB WITH (FORCE)" -c "CREATE DATABASE $MLFLOW_PG_DB" \
      >>"$(peer_log mlflow)" 2>&1 || { peer_fail mlflow "psql -h 127.0.0.1 -p $PG_PORT -U $PG_USER -c 'CREATE DATABASE $MLFLOW_PG_DB'"; return 1; }
  fi
  echo "postgresql+psycopg2://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$MLFLOW_PG_DB" >"$d/backend-store"
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
  mlflow_backend_store "$d" || return 1
  # As many workers as cores on PostgreSQL (MLflow's production advice); SQLite serializes writers, so one there.
  local workers=1
  mlflow_on_postgres && workers="$(nproc)"
  workers="${MLPLANE_MLFLOW_WORKERS:-$workers}"
  local cmd=("$MLFLOW_HOME/venv/bin/mlflow" server --backend-store-uri "$(cat "$d/backend-store")"
    --artifacts-destination "$destination" --host 127.0.0.1 --port "$MLFLOW_PORT" --workers "$workers")
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
  f="$(peer_data_dir mlflow)/backend-store"
  [ -f "$f" ] && echo "export MLPLANE_MLFLOW_BACKEND_URI=$(cat "$f")"
  [ -x "$MLFLOW_HOME/venv/bin/python" ] && echo "export MLPLANE_MLFLOW_PYTHON=$MLFLOW_HOME/venv/bin/python"
  return 0
}
