# Feast feature server (pinned, cached virtualenv with the redis extra) over a small feature repo that start
# writes into the data dir: entity driver (driver_id int64), feature views driver_hourly_stats {conv_rate,
# acc_rate float64, avg_daily_trips int64} and driver_profile {rating float64, city string} over parquet files
# with fixed values, online store = the redis peer, file offline store. start runs `feast apply` and
# `feast materialize`, then `feast serve` (HTTP). The values a client must read are written to expected.json.
# Port: MLPLANE_FEAST_PORT (default 16566). Env: MLPLANE_FEAST_URL, MLPLANE_FEAST_REPO, MLPLANE_FEAST_EXPECTED.
FEAST_VERSION=0.67.0
FEAST_PORT="$(peer_port MLPLANE_FEAST_PORT 16566)"
FEAST_HOME="$MLPLANE_PEERS_CACHE/feast"
FEAST_PROJECT=mlplane_peers

feast_deps() { echo redis; }

feast_install() { peer_venv "$FEAST_HOME" ".complete-$FEAST_VERSION" "feast[redis]==$FEAST_VERSION"; }

feast_repo_files() { # <repo dir>: feature_store.yaml, definitions, parquet data and expected.json
  local repo="$1"
  mkdir -p "$repo/data"
  cat >"$repo/feature_store.yaml" <<YAML
project: $FEAST_PROJECT
registry: $repo/data/registry.db
provider: local
online_store:
  type: redis
  connection_string: "127.0.0.1:$REDIS_PORT"
offline_store:
  type: file
entity_key_serialization_version: 3
YAML
  cat >"$repo/features.py" <<'PY'
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

DATA = Path(__file__).resolve().parent / "data"

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64, description="a driver")

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=36500),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float64),
        Field(name="acc_rate", dtype=Float64),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=FileSource(
        name="driver_hourly_stats_source", path=str(DATA / "driver_hourly_stats.parquet"), timestamp_field="event_timestamp"
    ),
)

driver_profile = FeatureView(
    name="driver_profile",
    entities=[driver],
    ttl=timedelta(days=36500),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="rating", dtype=Float64),
        Field(name="city", dtype=String),
    ],
    online=True,
    source=FileSource(name="driver_profile_source", path=str(DATA / "driver_profile.parquet"), timestamp_field="event_timestamp"),
)
PY
  # Fixed values (binary fractions, exact in JSON); driver 1001 also has an older row that materialize must not pick.
  "$FEAST_HOME/venv/bin/python" - "$repo" <<'PY'
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

repo = Path(sys.argv[1])
t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
old = datetime(2024, 12, 1, tzinfo=timezone.utc)
stats = [
    (1001, 0.5, 0.75, 12, t0), (1002, 0.25, 0.875, 7, t0), (1003, 0.125, 0.5, 30, t0),
    (1001, 0.0625, 0.0625, 1, old),
]
profile = [(1001, 4.5, "Berlin", t0), (1002, 3.75, "Lisbon", t0), (1003, 5.0, "Osaka", t0)]
pd.DataFrame(stats, columns=["driver_id", "conv_rate", "acc_rate", "avg_daily_trips", "event_timestamp"]).astype(
    {"driver_id": "int64", "avg_daily_trips": "int64"}
).to_parquet(repo / "data" / "driver_hourly_stats.parquet", index=False)
pd.DataFrame(profile, columns=["driver_id", "rating", "city", "event_timestamp"]).astype({"driver_id": "int64"}).to_parquet(
    repo / "data" / "driver_profile.parquet", index=False
)
latest = {r[0]: r for r in stats if r[4] == t0}
ids = [1001, 1002, 1003]
expected = {
    "project": "mlplane_peers",
    "entities": {"driver_id": ids},
    "missing_driver_id": 9999,
    "features": {
        "driver_hourly_stats:conv_rate": [latest[i][1] for i in ids],
        "driver_hourly_stats:acc_rate": [latest[i][2] for i in ids],
        "driver_hourly_stats:avg_daily_trips": [latest[i][3] for i in ids],
        "driver_profile:rating": [next(p[1] for p in profile if p[0] == i) for i in ids],
        "driver_profile:city": [next(p[2] for p in profile if p[0] == i) for i in ids],
    },
    "event_timestamp": t0.isoformat().replace("+00:00", "Z"),
}
(repo / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
PY
}

feast_start() {
  local d; d="$(peer_data_dir feast)"
  local repo="$d/repo" feast="$FEAST_HOME/venv/bin/feast" log; log="$(peer_log feast)"
  export FEAST_USAGE=False
  feast_repo_files "$repo" >>"$log" 2>&1 || { peer_fail feast "feast_repo_files $repo"; return 1; }
  (cd "$repo" && "$feast" apply) >>"$log" 2>&1 || { peer_fail feast "cd $repo && FEAST_USAGE=False $feast apply"; return 1; }
  (cd "$repo" && "$feast" materialize 2024-01-01T00:00:00 2026-01-01T00:00:00) >>"$log" 2>&1 ||
    { peer_fail feast "cd $repo && FEAST_USAGE=False $feast materialize 2024-01-01T00:00:00 2026-01-01T00:00:00"; return 1; }
  # HOME: gunicorn (27+) puts its control socket under ~/.gunicorn; keep it in the data dir.
  (cd "$repo" && peer_spawn feast -- env FEAST_USAGE=False HOME="$d" "$feast" serve -h 127.0.0.1 -p "$FEAST_PORT" --workers 1)
  peer_wait feast 90 || { peer_fail feast "cd $repo && FEAST_USAGE=False $feast serve -h 127.0.0.1 -p $FEAST_PORT"; return 1; }
}

# Healthy: the server answers and serves a materialized value (so a redis started afresh under a running
# feast reads as unhealthy, and `up` materializes again).
feast_health() {
  curl -fsS -m 3 "http://127.0.0.1:$FEAST_PORT/health" >/dev/null &&
    curl -fsS -m 5 -X POST -H 'content-type: application/json' "http://127.0.0.1:$FEAST_PORT/get-online-features" \
      -d '{"entities":{"driver_id":[1001]},"features":["driver_profile:city"]}' 2>/dev/null | grep -q '"Berlin"'
}

feast_env() {
  echo "export MLPLANE_FEAST_URL=http://127.0.0.1:$FEAST_PORT"
  local d; d="$(peer_data_dir feast)"
  if [ -n "$d" ]; then
    echo "export MLPLANE_FEAST_REPO=$d/repo"
    echo "export MLPLANE_FEAST_EXPECTED=$d/repo/expected.json"
  fi
}
