# Kubernetes peer: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from
# source with the machine's Go, plus kwok simulating fake GPU nodes (no kubelet, no containers) and
# one process node (k8s/process-node.mjs) that runs its pods' commands as processes on this machine.
# Sourced by scripts/peers; see docs/development.md, section "Kubernetes peer".
K8S_VERSION="${MLPLANE_K8S_VERSION:-v1.34.4}"
K8S_KWOK_VERSION="${MLPLANE_KWOK_VERSION:-v0.8.0}"
K8S_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s"
K8S_CACHE="$MLPLANE_PEERS_CACHE/k8s-$K8S_VERSION"
K8S_KWOK_BIN="$MLPLANE_PEERS_CACHE/k8s-kwok-$K8S_KWOK_VERSION/bin/kwok"
# The kubeconfig lives at a stable path (the data dir changes on every `up`).
K8S_KUBECONFIG="$MLPLANE_PEERS_STATE/k8s.kubeconfig"

# Go with the user's workspace and GOFLAGS (e.g. -mod=vendor) kept out of the peer's builds.
_k8s_go() { GOWORK=off GOFLAGS= go "$@"; }

_k8s_bins() { echo etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; }

# A fingerprint of what the build is made of; a change rebuilds (a new Go alone does not).
_k8s_fingerprint() {
  { echo "$K8S_VERSION"; cat "$K8S_HERE/go.mod.tmpl" "$K8S_HERE/tools.go" "$K8S_HERE/cmd/etcd/main.go"; } \
    | sha256sum | cut -c1-16
}

_k8s_built() {
  local b
  for b in $(_k8s_bins); do [ -x "$K8S_CACHE/bin/$b" ] || return 1; done
  [ "$(cat "$K8S_CACHE/bin/.fingerprint" 2>/dev/null)" = "$(_k8s_fingerprint)" ]
}

# Writes the wrapper module into $K8S_CACHE/src: k8s.io/kubernetes plus a replace line per
# staging module (k8s.io/api => k8s.io/api v0.34.4 for k8s.io/kubernetes v1.34.4).
_k8s_module() {
  local src="$K8S_CACHE/src" kmod staging="v0.${K8S_VERSION#v1.}"
  mkdir -p "$src/cmd/etcd"
  kmod="$(_k8s_go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "$kmod" ] || { echo "k8s: could not download k8s.io/kubernetes@$K8S_VERSION" >&2; return 1; }
  {
    sed "s/@K8S_VERSION@/$K8S_VERSION/" "$K8S_HERE/go.mod.tmpl"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$kmod"
    echo ")"
  } >"$src/go.mod"
  cp "$K8S_HERE/tools.go" "$src/tools.go"
  cp "$K8S_HERE/cmd/etcd/main.go" "$src/cmd/etcd/main.go"
  (cd "$src" && _k8s_go mod tidy)
}

k8s_install() {
  command -v openssl >/dev/null || { echo "k8s: needs openssl" >&2; return 1; }
  mkdir -p "$K8S_CACHE/bin"
  if ! _k8s_built || [ ! -x "$K8S_KWOK_BIN" ]; then
    command -v go >/dev/null || { echo "k8s: building the peer needs Go on PATH" >&2; return 1; }
  fi
  if ! _k8s_built; then
    local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
    local v pkgs ldflags="-s -w"
    for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
      ldflags+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
    done
    echo "k8s: building etcd and Kubernetes $K8S_VERSION into $K8S_CACHE/bin (first run: tens of minutes; log $K8S_CACHE/build.log)" >&2
    rm -f "$K8S_CACHE/bin/.fingerprint"
    pkgs="./cmd/etcd"
    for v in kube-apiserver kube-controller-manager kube-scheduler kubectl; do pkgs+=" k8s.io/kubernetes/cmd/$v"; done
    # One invocation for all commands so shared packages compile once.
    # shellcheck disable=SC2086
    if ! { _k8s_module && (cd "$K8S_CACHE/src" && _k8s_go build -trimpath -ldflags "$ldflags" -o "$K8S_CACHE/bin/" $pkgs); } \
        >"$K8S_CACHE/build.log" 2>&1; then
      tail -n 30 "$K8S_CACHE/build.log" >&2
      echo "k8s: build failed; full log in $K8S_CACHE/build.log" >&2
      return 1
    fi
    _k8s_fingerprint >"$K8S_CACHE/bin/.fingerprint"
  fi
  if [ ! -x "$K8S_KWOK_BIN" ]; then
    echo "k8s: building kwok $K8S_KWOK_VERSION" >&2
    if ! GOBIN="$(dirname "$K8S_KWOK_BIN")" _k8s_go install -trimpath -ldflags "-s -w" \
        "sigs.k8s.io/kwok/cmd/kwok@$K8S_KWOK_VERSION" >"$K8S_CACHE/kwok-build.log" 2>&1; then
      tail -n 30 "$K8S_CACHE/kwok-build.log" >&2
      echo "k8s: kwok build failed" >&2
      return 1
    fi
  fi
}

_k8s_port() { peer_port MLPLANE_K8S_PORT 6443; }
_k8s_kubectl() { "$K8S_CACHE/bin/kubectl" --kubeconfig "$K8S_KUBECONFIG" --request-timeout=5s "$@"; }
_k8s_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# _k8s_cert <dir> <name> <subject> [extensions...]: an EC key and a certificate signed by <dir>/ca.
_k8s_cert() {
  local dir="$1" name="$2" subj="$3"; shift 3
  local ext="$dir/$name.ext"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$@" >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null &&
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
}

# _k8s_kubeconfig <file> <port> <pki dir> <client cert name>: a self-contained kubeconfig.
_k8s_kubeconfig() {
  local b64="base64 -w0"
  cat >"$1" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: mlplane-peer
  cluster:
    server: https://127.0.0.1:$2
    certificate-authority-data: $($b64 <"$3/ca.crt")
users:
- name: $4
  user:
    client-certificate-data: $($b64 <"$3/$4.crt")
    client-key-data: $($b64 <"$3/$4.key")
contexts:
- name: mlplane-peer
  context: {cluster: mlplane-peer, user: $4, namespace: default}
current-context: mlplane-peer
KUBECONFIG
}

k8s_start() {
  local d bin="$K8S_CACHE/bin" port etcd_port etcd_peer cm_port sched_port kubelet_port p i pki
  d="$(peer_data_dir k8s)"; pki="$d/pki"
  port="$(_k8s_port)"
  etcd_port="$(peer_port MLPLANE_K8S_ETCD_PORT 2379)"
  etcd_peer="$(peer_port MLPLANE_K8S_ETCD_PEER_PORT 2380)"
  cm_port="$(peer_port MLPLANE_K8S_CONTROLLER_MANAGER_PORT 10257)"
  sched_port="$(peer_port MLPLANE_K8S_SCHEDULER_PORT 10259)"
  kubelet_port="$(peer_port MLPLANE_K8S_PROCESS_NODE_PORT 10250)"
  for p in "$port" "$etcd_port" "$etcd_peer" "$cm_port" "$sched_port" "$kubelet_port"; do
    if _k8s_port_busy "$p"; then
      echo "peers: k8s: port $p on 127.0.0.1 is taken (override with MLPLANE_K8S_PORT, MLPLANE_K8S_ETCD_PORT," \
        "MLPLANE_K8S_ETCD_PEER_PORT, MLPLANE_K8S_CONTROLLER_MANAGER_PORT, MLPLANE_K8S_SCHEDULER_PORT," \
        "MLPLANE_K8S_PROCESS_NODE_PORT)" >&2
      return 1
    fi
  done

  # PKI: a CA, the apiserver's serving cert, one client cert per component, the service-account key pair.
  # A restart (scripts/peers restart k8s) keeps the PKI and etcd's data: clients keep their credentials and
  # tokens, and resourceVersions continue, as after a real control-plane restart.
  mkdir -p "$pki" && mkdir -p -m 700 "$d/etcd"
  if [ ! -f "$pki/sa.pub" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj "/CN=mlplane-peer-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null || { peer_fail k8s "openssl (CA)"; return 1; }
    _k8s_cert "$pki" apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" &&
      _k8s_cert "$pki" admin "/O=system:masters/CN=mlplane-admin" "extendedKeyUsage=clientAuth" &&
      _k8s_cert "$pki" kube-controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth" &&
      _k8s_cert "$pki" kube-scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth" &&
      _k8s_cert "$pki" kwok "/O=system:masters/CN=kwok-controller" "extendedKeyUsage=clientAuth" &&
      _k8s_cert "$pki" front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth" &&
      openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null &&
      openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null ||
      { peer_fail k8s "openssl (certificates in $pki)"; return 1; }
  fi
  # The process node's kubelet port: the API server proxies pods/log to it (it verifies no kubelet certificate
  # because the peer sets no --kubelet-certificate-authority).
  if [ ! -f "$pki/process-node.crt" ]; then
    _k8s_cert "$pki" process-node "/CN=system:node:process-node-0" "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1" || { peer_fail k8s "openssl (process node certificate)"; return 1; }
  fi
  for p in admin kube-controller-manager kube-scheduler kwok; do _k8s_kubeconfig "$d/$p.kubeconfig" "$port" "$pki" "$p"; done
  cp "$d/admin.kubeconfig" "$K8S_KUBECONFIG"

  peer_spawn k8s -- "$bin/etcd" --name=peer --data-dir="$d/etcd" --log-level=warn \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="peer=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --quota-backend-bytes=2147483648
  for i in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
    peer_alive k8s || break
    sleep 0.2
  done

  # --endpoint-reconciler-type=none: the "kubernetes" Service can't get 127.0.0.1 as an endpoint
  # (loopback IPs are invalid there), and nothing runs inside this cluster that would use it.
  # The requestheader/proxy-client flags let controller-manager and scheduler delegate authentication.
  peer_spawn k8s -- "$bin/kube-apiserver" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --service-cluster-ip-range=10.96.0.0/12 --allow-privileged=true \
    --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --endpoint-reconciler-type=none --profiling=false --v=0
  for i in $(seq 1 120); do
    _k8s_kubectl get --raw /readyz >/dev/null 2>&1 && break
    peer_alive k8s || break
    sleep 0.5
  done
  _k8s_kubectl get --raw /readyz >/dev/null 2>&1 ||
    { peer_fail k8s "$bin/kube-apiserver --secure-port=$port ... (see scripts/peers.d/k8s.sh)"; return 1; }

  peer_spawn k8s -- "$bin/kube-controller-manager" --kubeconfig="$d/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$d/kube-controller-manager.kubeconfig" --authorization-kubeconfig="$d/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$cm_port" --cert-dir="$d/cm-certs" --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --node-monitor-period=5s --profiling=false --v=0
  peer_spawn k8s -- "$bin/kube-scheduler" --kubeconfig="$d/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$d/kube-scheduler.kubeconfig" --authorization-kubeconfig="$d/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$d/scheduler-certs" --leader-elect=false \
    --profiling=false --v=0
  peer_spawn k8s -- "$K8S_KWOK_BIN" --kubeconfig="$d/kwok.kubeconfig" --config="$K8S_HERE/kwok-stages.yaml" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr=10.244.0.0/16 --node-ip=127.0.0.1 --node-lease-duration-seconds=40

  peer_spawn k8s -- node "$K8S_HERE/process-node.mjs" --kubeconfig="$d/admin.kubeconfig" --node=process-node-0 \
    --port="$kubelet_port" --cert="$pki/process-node.crt" --key="$pki/process-node.key" --work-dir="$d/process-node"

  _k8s_kubectl apply -f "$K8S_HERE/nodes.yaml" >>"$(peer_log k8s)" 2>&1 ||
    { peer_fail k8s "kubectl --kubeconfig $K8S_KUBECONFIG apply -f $K8S_HERE/nodes.yaml"; return 1; }
  if ! peer_wait k8s 90; then
    _k8s_kubectl get nodes -o wide >>"$(peer_log k8s)" 2>&1
    peer_fail k8s "KUBECONFIG=$K8S_KUBECONFIG $bin/kubectl get nodes; scripts/peers up k8s"
    return 1
  fi
}

# Healthy: every process alive, apiserver /readyz ok, the fake nodes Ready and the default
# service account there (pods can be created).
k8s_health() {
  local p out
  [ -f "$K8S_KUBECONFIG" ] && [ -n "$(peer_pids k8s)" ] || return 1
  for p in $(peer_pids k8s); do kill -0 "$p" 2>/dev/null || return 1; done
  [ "$(_k8s_kubectl get --raw /readyz 2>/dev/null)" = "ok" ] || return 1
  out="$(_k8s_kubectl get nodes -l mlplane.dev/peer=k8s \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null)" || return 1
  # The kwok nodes of nodes.yaml plus the process node.
  [ "$(grep -c '^True$' <<<"$out")" -ge "$(($(grep -c '^kind: Node' "$K8S_HERE/nodes.yaml") + 1))" ] && ! grep -qv '^True$' <<<"$out" || return 1
  _k8s_kubectl -n default get serviceaccount default >/dev/null 2>&1
}

k8s_env() { echo "export MLPLANE_KUBECONFIG=$K8S_KUBECONFIG"; }

k8s_stop() { rm -f "$K8S_KUBECONFIG"; }
