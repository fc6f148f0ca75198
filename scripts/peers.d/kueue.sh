# Kueue peer: the Kueue manager (v0.17, built from the Go module proxy) running out of cluster against the k8s peer,
# with its CRDs applied there. Recipe from ../shared/docs/PEERS.md: no webhook configurations (Jobs are created
# suspended with the queue-name label), self-signed certificates for 127.0.0.1, metrics certificates at the fixed
# path /etc/kueue/metrics/certs. Queues, flavors and quotas are each test's to create.
KUEUE_VERSION="${MLPLANE_KUEUE_VERSION:-v0.17.0}"
KUEUE_CACHE="$MLPLANE_PEERS_CACHE/kueue-$KUEUE_VERSION"
KUEUE_METRICS_CERTS=/etc/kueue/metrics/certs

kueue_deps() { echo k8s; }

_kueue_module() { GOWORK=off GOFLAGS= go list -m -f '{{.Dir}}' "sigs.k8s.io/kueue@$KUEUE_VERSION" 2>/dev/null; }

kueue_install() {
  if [ ! -x "$KUEUE_CACHE/bin/kueue" ]; then
    command -v go >/dev/null || { echo "kueue: building the peer needs Go on PATH" >&2; return 1; }
    mkdir -p "$KUEUE_CACHE/bin"
    echo "kueue: building sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION (first run: minutes; log $KUEUE_CACHE/build.log)" >&2
    if ! GOWORK=off GOFLAGS= GOBIN="$KUEUE_CACHE/bin" go install -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/kueue/cmd/kueue@$KUEUE_VERSION" >"$KUEUE_CACHE/build.log" 2>&1; then
      tail -n 30 "$KUEUE_CACHE/build.log" >&2
      return 1
    fi
  fi
  if [ ! -d "$KUEUE_CACHE/crds" ]; then
    local mod
    mod="$(GOWORK=off GOFLAGS= go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [ -d "$mod/config/components/crd/bases" ] || { echo "kueue: CRDs not found in the module ($mod)" >&2; return 1; }
    mkdir -p "$KUEUE_CACHE/crds" && cp "$mod"/config/components/crd/bases/*.yaml "$KUEUE_CACHE/crds/"
  fi
}

_kueue_cert() { # <dir>: a self-signed certificate for 127.0.0.1 as tls.crt / tls.key
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$1/tls.key" -out "$1/tls.crt" 2>/dev/null
}

kueue_start() {
  local d webhook_port health_port metrics_port
  d="$(peer_data_dir kueue)"
  webhook_port="$(peer_port MLPLANE_KUEUE_WEBHOOK_PORT 9443)"
  health_port="$(peer_port MLPLANE_KUEUE_HEALTH_PORT 8181)"
  metrics_port="$(peer_port MLPLANE_KUEUE_METRICS_PORT 8443)"
  _kueue_cert "$d/webhook" && { [ -f "$KUEUE_METRICS_CERTS/tls.crt" ] || _kueue_cert "$KUEUE_METRICS_CERTS"; } ||
    { peer_fail kueue "openssl (certificates in $d/webhook and $KUEUE_METRICS_CERTS)"; return 1; }
  _k8s_kubectl apply --server-side --force-conflicts -f "$KUEUE_CACHE/crds/" >>"$(peer_log kueue)" 2>&1 &&
    _k8s_kubectl wait --for=condition=Established --timeout=60s -f "$KUEUE_CACHE/crds/" >>"$(peer_log kueue)" 2>&1 &&
    { _k8s_kubectl get namespace kueue-system >/dev/null 2>&1 || _k8s_kubectl create namespace kueue-system >>"$(peer_log kueue)" 2>&1; } ||
    { peer_fail kueue "kubectl --kubeconfig $K8S_KUBECONFIG apply --server-side -f $KUEUE_CACHE/crds/"; return 1; }
  cat >"$d/config.yaml" <<CONFIG
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health:
  healthProbeBindAddress: 127.0.0.1:$health_port
metrics:
  bindAddress: 127.0.0.1:$metrics_port
webhook:
  host: 127.0.0.1
  port: $webhook_port
  certDir: $d/webhook
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
integrations:
  frameworks: [batch/job]
CONFIG
  echo "$health_port" >"$d/health_port"
  KUBECONFIG="$K8S_KUBECONFIG" peer_spawn kueue -- "$KUEUE_CACHE/bin/kueue" --config="$d/config.yaml" \
    --feature-gates=VisibilityOnDemand=false
  peer_wait kueue 90 || { peer_fail kueue "KUBECONFIG=$K8S_KUBECONFIG $KUEUE_CACHE/bin/kueue --config=$d/config.yaml"; return 1; }
}

kueue_health() {
  local d; d="$(peer_data_dir kueue)"
  [ -n "$d" ] && peer_alive kueue && curl -sf "http://127.0.0.1:$(cat "$d/health_port")/readyz" >/dev/null 2>&1
}

kueue_env() { :; }
