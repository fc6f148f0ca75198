# TorchServe 0.12 (Java 17 frontend + Python workers, in a cached virtualenv with torch) serving one tiny model:
# `tiny_linear`, a TorchScript torch.nn.Linear(2, 1) with weight [2, 3] and bias 1, whose handler reads
# {"data": [[x1, x2], ...]} and answers {"predictions": [...]}: [1, 1] -> 6, [2, 3] -> 14.
# PyPI serves torch for Linux x86_64 only as the CUDA build (its nvidia-* wheels come along, ~5 GB venv);
# the CPU path works without a GPU. The archive is built once into the cache and copied into a fresh model store.
# Ports (MLPLANE_TORCHSERVE_*_PORT): INFERENCE 18080, MANAGEMENT 18081, METRICS 18082, GRPC 17070, GRPC_MANAGEMENT 17071.
TORCHSERVE_VERSION=0.12.0
TORCHSERVE_TORCH=2.4.1
TS_HOME="$MLPLANE_PEERS_CACHE/torchserve"
TS_MODEL=tiny_linear
TS_INFERENCE_PORT="$(peer_port MLPLANE_TORCHSERVE_INFERENCE_PORT 18080)"
TS_MANAGEMENT_PORT="$(peer_port MLPLANE_TORCHSERVE_MANAGEMENT_PORT 18081)"
TS_METRICS_PORT="$(peer_port MLPLANE_TORCHSERVE_METRICS_PORT 18082)"
TS_GRPC_PORT="$(peer_port MLPLANE_TORCHSERVE_GRPC_PORT 17070)"
TS_GRPC_MANAGEMENT_PORT="$(peer_port MLPLANE_TORCHSERVE_GRPC_MANAGEMENT_PORT 17071)"

torchserve_install() {
  command -v java >/dev/null || { echo "peers: torchserve needs java 17" >&2; return 1; }
  peer_venv "$TS_HOME" ".complete-$TORCHSERVE_VERSION-torch$TORCHSERVE_TORCH" "torch==$TORCHSERVE_TORCH" \
    "torchserve==$TORCHSERVE_VERSION" "torch-model-archiver==$TORCHSERVE_VERSION" pyyaml numpy==1.26.4 || return 1
  [ -f "$TS_HOME/mar/$TS_MODEL.mar" ] && return 0
  local b="$TS_HOME/mar-build"
  rm -rf "$b" "$TS_HOME/mar"; mkdir -p "$b" "$TS_HOME/mar"
  cat >"$b/handler.py" <<'PY'
"""TorchServe handler of the tiny_linear test model: {"data": [[x1, x2], ...]} -> {"predictions": [y, ...]}."""
import json
import os

import torch

_model = None


def _inputs(row):
    # REST: the decoded JSON body under "body" (or raw bytes); gRPC: the request's input map, e.g. {"data": b"..."}.
    payload = row.get("body") if row.get("body") is not None else row.get("data")
    if isinstance(payload, (bytes, bytearray)):
        payload = json.loads(payload.decode("utf-8"))
    elif isinstance(payload, str):
        payload = json.loads(payload)
    if isinstance(payload, dict):
        payload = payload.get("data")
    if not isinstance(payload, list) or not all(isinstance(r, list) and len(r) == 2 for r in payload):
        raise ValueError('expected {"data": [[x1, x2], ...]}')
    return payload


def handle(data, context):
    global _model
    if _model is None:
        props = context.system_properties
        path = os.path.join(props.get("model_dir"), context.manifest["model"]["serializedFile"])
        _model = torch.jit.load(path, map_location="cpu")
        _model.eval()
    if data is None:
        return None
    out = []
    with torch.no_grad():
        for row in data:
            x = torch.tensor(_inputs(row), dtype=torch.float32)
            out.append({"predictions": _model(x).squeeze(-1).tolist()})
    return out
PY
  "$TS_HOME/venv/bin/python" - "$b/model.pt" <<'PY' || return 1
import sys
import torch

m = torch.nn.Linear(2, 1)
with torch.no_grad():
    m.weight.copy_(torch.tensor([[2.0, 3.0]]))
    m.bias.copy_(torch.tensor([1.0]))
torch.jit.script(m).save(sys.argv[1])
PY
  "$TS_HOME/venv/bin/torch-model-archiver" --model-name "$TS_MODEL" --version 1.0 --serialized-file "$b/model.pt" \
    --handler "$b/handler.py" --export-path "$TS_HOME/mar" --force || return 1
  rm -rf "$b"
}

torchserve_start() {
  local d; d="$(peer_data_dir torchserve)"
  mkdir -p "$d/model-store" "$d/logs" "$d/tmp"
  cp "$TS_HOME/mar/$TS_MODEL.mar" "$d/model-store/"
  cat >"$d/config.properties" <<PROPS
inference_address=http://127.0.0.1:$TS_INFERENCE_PORT
management_address=http://127.0.0.1:$TS_MANAGEMENT_PORT
metrics_address=http://127.0.0.1:$TS_METRICS_PORT
grpc_inference_address=127.0.0.1
grpc_management_address=127.0.0.1
grpc_inference_port=$TS_GRPC_PORT
grpc_management_port=$TS_GRPC_MANAGEMENT_PORT
enable_grpc_ssl=false
metrics_mode=prometheus
model_store=$d/model-store
default_workers_per_model=1
number_of_netty_threads=2
netty_client_threads=2
install_py_dep_per_model=false
disable_token_authorization=true
enable_model_api=true
vmargs=-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.io.tmpdir=$d/tmp
PROPS
  local cmd=("$TS_HOME/venv/bin/torchserve" --start --foreground --ncs --disable-token-auth --enable-model-api
    --ts-config "$d/config.properties" --model-store "$d/model-store")
  # TorchServe writes logs/ under LOG_LOCATION and its pid file under the temp dir: keep both in the data dir.
  (cd "$d" && peer_spawn torchserve -- env LOG_LOCATION="$d/logs" METRICS_LOCATION="$d/logs" TMPDIR="$d/tmp" \
    PATH="$TS_HOME/venv/bin:$PATH" OMP_NUM_THREADS=1 "${cmd[@]}")
  local i=0
  until torchserve_ping; do
    i=$((i + 1))
    if [ "$i" -ge 120 ] || ! peer_alive torchserve; then peer_fail torchserve "(cd $d && ${cmd[*]})"; return 1; fi
    sleep 1
  done
  curl -fsS -m 120 -X POST "http://127.0.0.1:$TS_MANAGEMENT_PORT/models?url=$TS_MODEL.mar&model_name=$TS_MODEL&initial_workers=1&synchronous=true" \
    >>"$(peer_log torchserve)" 2>&1 ||
    { peer_fail torchserve "curl -X POST 'http://127.0.0.1:$TS_MANAGEMENT_PORT/models?url=$TS_MODEL.mar&model_name=$TS_MODEL&initial_workers=1&synchronous=true'"; return 1; }
  peer_wait torchserve 60 || { peer_fail torchserve "curl http://127.0.0.1:$TS_MANAGEMENT_PORT/models/$TS_MODEL"; return 1; }
}

torchserve_ping() { curl -fsS -m 3 "http://127.0.0.1:$TS_INFERENCE_PORT/ping" 2>/dev/null | grep -q Healthy; }

# Healthy: the frontend answers /ping and the model has a READY worker.
torchserve_health() {
  torchserve_ping && curl -fsS -m 3 "http://127.0.0.1:$TS_MANAGEMENT_PORT/models/$TS_MODEL" 2>/dev/null | grep -q '"READY"'
}

torchserve_env() {
  cat <<ENV
export MLPLANE_TORCHSERVE_INFERENCE_URL=http://127.0.0.1:$TS_INFERENCE_PORT
export MLPLANE_TORCHSERVE_MANAGEMENT_URL=http://127.0.0.1:$TS_MANAGEMENT_PORT
export MLPLANE_TORCHSERVE_METRICS_URL=http://127.0.0.1:$TS_METRICS_PORT
export MLPLANE_TORCHSERVE_GRPC=127.0.0.1:$TS_GRPC_PORT
export MLPLANE_TORCHSERVE_GRPC_MANAGEMENT=127.0.0.1:$TS_GRPC_MANAGEMENT_PORT
export MLPLANE_TORCHSERVE_MODEL=$TS_MODEL
ENV
}
