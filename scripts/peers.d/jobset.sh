# JobSet peer: the JobSet controller manager (sigs.k8s.io/jobset, built from the Go module proxy) running out of
# cluster against the k8s peer, with its CRD applied there. Same recipe as kueue.sh: no webhook configurations are
# installed (so nothing defaults or validates a JobSet: write them fully specified, see docs/development.md), internal
# cert management off, webhook and metrics servers on 127.0.0.1 with self-signed certificates in the data dir.
JOBSET_VERSION="${MLPLANE_JOBSET_VERSION:-v0.12.0}"
JOBSET_CACHE="$MLPLANE_PEERS_CACHE/jobset-$JOBSET_VERSION"

jobset_deps() { echo k8s; }

# `go install sigs.k8s.io/jobset@vX` does not work here: it asks the Go module proxy for the module's version list (to
# report deprecations), which the proxy refuses for this module; exact versions are served. So the manager (the
# module's root package, main.go) is built from a wrapper module in the cache that requires the exact version, with
# the module's own go.sum as a start.
jobset_install() {
  if [ ! -x "$JOBSET_CACHE/bin/jobset" ] || [ ! -d "$JOBSET_CACHE/crds" ]; then
    command -v go >/dev/null || { echo "jobset: building the peer needs Go on PATH" >&2; return 1; }
    local mod gover
    mod="$(GOWORK=off GOFLAGS= go mod download -json "sigs.k8s.io/jobset@$JOBSET_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [ -n "$mod" ] && [ -f "$mod/go.mod" ] && [ -f "$mod/main.go" ] ||
      { echo "jobset: sigs.k8s.io/jobset@$JOBSET_VERSION not available from the Go module proxy" >&2; return 1; }
    gover="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$mod/go.mod")"
    if [ ! -x "$JOBSET_CACHE/bin/jobset" ]; then
      mkdir -p "$JOBSET_CACHE/bin" "$JOBSET_CACHE/src"
      printf 'module mlplane.dev/peers/jobset-build\n\ngo %s\n\nrequire sigs.k8s.io/jobset %s\n' "$gover" "$JOBSET_VERSION" \
        >"$JOBSET_CACHE/src/go.mod"
      cp "$mod/go.sum" "$JOBSET_CACHE/src/go.sum" && chmod u+w "$JOBSET_CACHE/src/go.sum"
      echo "jobset: building sigs.k8s.io/jobset@$JOBSET_VERSION (needs go $gover; first run: minutes; log $JOBSET_CACHE/build.log)" >&2
      if ! (cd "$JOBSET_CACHE/src" && GOWORK=off GOFLAGS=-mod=mod go build -trimpath \
          -ldflags "-s -w -X sigs.k8s.io/jobset/pkg/version.GitVersion=$JOBSET_VERSION" \
          -o "$JOBSET_CACHE/bin/jobset" sigs.k8s.io/jobset) >"$JOBSET_CACHE/build.log" 2>&1; then
        tail -n 30 "$JOBSET_CACHE/build.log" >&2
        echo "jobset: $JOBSET_VERSION needs go $gover ($(go env GOVERSION) here); an older MLPLANE_JOBSET_VERSION may fit" >&2
        return 1
      fi
    fi
    if [ ! -d "$JOBSET_CACHE/crds" ]; then
      [ -d "$mod/config/components/crd/bases" ] || { echo "jobset: CRDs not found in the module ($mod)" >&2; return 1; }
      mkdir -p "$JOBSET_CACHE/crds.tmp" && cp "$mod"/config/components/crd/bases/*.yaml "$JOBSET_CACHE/crds.tmp/" &&
        mv "$JOBSET_CACHE/crds.tmp" "$JOBSET_CACHE/crds"
    fi
  fi
}

_jobset_cert() { # <dir>: a self-signed certificate for 127.0.0.1 as tls.crt / tls.key
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$1/tls.key" -out "$1/tls.crt" 2>/dev/null
}

# `kubectl wait --for=condition=Established` right after the apply can fail at once with ".status.conditions accessor
# error" (the new CRD has no conditions yet), so it is retried.
_jobset_crds_established() {
  local i
  for i in $(seq 1 10); do
    _k8s_kubectl wait --for=condition=Established --timeout=10s -f "$JOBSET_CACHE/crds/" >>"$(peer_log jobset)" 2>&1 && return 0
    sleep 1
  done
  return 1
}

jobset_start() {
  local d webhook_port health_port metrics_port
  d="$(peer_data_dir jobset)"
  webhook_port="$(peer_port MLPLANE_JOBSET_WEBHOOK_PORT 9444)"
  health_port="$(peer_port MLPLANE_JOBSET_HEALTH_PORT 8182)"
  metrics_port="$(peer_port MLPLANE_JOBSET_METRICS_PORT 8444)"
  { [ -f "$d/webhook/tls.crt" ] || _jobset_cert "$d/webhook"; } && { [ -f "$d/metrics/tls.crt" ] || _jobset_cert "$d/metrics"; } ||
    { peer_fail jobset "openssl (certificates in $d/webhook and $d/metrics)"; return 1; }
  _k8s_kubectl apply --server-side --force-conflicts -f "$JOBSET_CACHE/crds/" >>"$(peer_log jobset)" 2>&1 &&
    _jobset_crds_established ||
    { peer_fail jobset "kubectl --kubeconfig $K8S_KUBECONFIG apply --server-side -f $JOBSET_CACHE/crds/"; return 1; }
  cat >"$d/config.yaml" <<CONFIG
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
health:
  healthProbeBindAddress: 127.0.0.1:$health_port
metrics:
  bindAddress: 127.0.0.1:$metrics_port
  certDir: $d/metrics
webhook:
  host: 127.0.0.1
  port: $webhook_port
  certDir: $d/webhook
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
CONFIG
  echo "$health_port" >"$d/health_port"
  KUBECONFIG="$K8S_KUBECONFIG" peer_spawn jobset -- "$JOBSET_CACHE/bin/jobset" --config="$d/config.yaml"
  peer_wait jobset 90 || { peer_fail jobset "KUBECONFIG=$K8S_KUBECONFIG $JOBSET_CACHE/bin/jobset --config=$d/config.yaml"; return 1; }
}

jobset_health() {
  local d; d="$(peer_data_dir jobset)"
  [ -n "$d" ] && peer_alive jobset && curl -sf "http://127.0.0.1:$(cat "$d/health_port")/readyz" >/dev/null 2>&1 &&
    curl -sf "http://127.0.0.1:$(cat "$d/health_port")/healthz" >/dev/null 2>&1
}

jobset_env() { :; }
