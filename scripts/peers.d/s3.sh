# S3-compatible server: versitygw (Apache-2.0, Go), built once with `go install` into the cache, serving its
# posix backend from the data dir. Object metadata lives in xattrs; where the data dir's filesystem has no
# user xattrs (or with MLPLANE_S3_SIDECAR=1), a sidecar directory is used instead. The bucket MLPLANE_S3_BUCKET is created at start.
# Port: MLPLANE_S3_PORT (default 19000; versitygw's own default 7070 is TorchServe's gRPC port).
# Env: MLPLANE_S3_ENDPOINT, MLPLANE_S3_ACCESS_KEY, MLPLANE_S3_SECRET_KEY, MLPLANE_S3_REGION, MLPLANE_S3_BUCKET.
VERSITYGW_VERSION=v1.8.0
S3_PORT="$(peer_port MLPLANE_S3_PORT 19000)"
S3_HOME="$MLPLANE_PEERS_CACHE/s3"
S3_ACCESS_KEY=mlplane S3_SECRET_KEY=mlplane-peer-secret S3_REGION=us-east-1 S3_BUCKET=mlplane-test

s3_install() {
  local marker="$S3_HOME/bin/.complete-$VERSITYGW_VERSION"
  [ -f "$marker" ] && [ -x "$S3_HOME/bin/versitygw" ] && return 0
  command -v go >/dev/null || { echo "peers: s3 needs go to build versitygw" >&2; return 1; }
  mkdir -p "$S3_HOME/bin"
  GOBIN="$S3_HOME/bin" GOPATH="$S3_HOME/gopath" GOMODCACHE="$S3_HOME/gopath/pkg/mod" GOCACHE="$S3_HOME/gocache" \
    GOFLAGS="-buildvcs=false -modcacherw" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" \
    >"$S3_HOME/install.log" 2>&1 || { tail -n 30 "$S3_HOME/install.log" >&2; return 1; }
  # The build cache and module sources are only needed to build; the binary is what we keep.
  chmod -R u+w "$S3_HOME/gopath" 2>/dev/null; rm -rf "$S3_HOME/gopath" "$S3_HOME/gocache"
  touch "$marker"
}

s3_xattrs_ok() { # <dir>: can user xattrs be set there?
  python3 -c 'import os,sys; p=os.path.join(sys.argv[1],".xattr-probe"); open(p,"w").close(); os.setxattr(p,"user.mlplane",b"1"); os.remove(p)' "$1" 2>/dev/null
}

s3_start() {
  local d; d="$(peer_data_dir s3)"
  mkdir -p "$d/data"
  local backend=(posix)
  if [ "${MLPLANE_S3_SIDECAR:-0}" = 1 ] || ! s3_xattrs_ok "$d/data"; then
    echo "peers: s3: no user xattrs on $(df --output=target "$d" | tail -1), using a sidecar metadata dir" >>"$(peer_log s3)"
    mkdir -p "$d/meta"; backend+=(--sidecar "$d/meta")
  fi
  local cmd=("$S3_HOME/bin/versitygw" --port "127.0.0.1:$S3_PORT" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY"
    --region "$S3_REGION" --health /health "${backend[@]}" "$d/data")
  peer_spawn s3 -- "${cmd[@]}"
  peer_wait s3 30 || { peer_fail s3 "${cmd[*]}"; return 1; }
  # 200 = created; 409 = it exists already (a restart on the same data dir).
  local code
  code="$(curl -sS -m 10 -o "$d/create-bucket.xml" -w '%{http_code}' -X PUT -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "http://127.0.0.1:$S3_PORT/$S3_BUCKET" 2>>"$(peer_log s3)")"
  cat "$d/create-bucket.xml" >>"$(peer_log s3)" 2>/dev/null
  [ "$code" = 200 ] || [ "$code" = 409 ] ||
    { peer_fail s3 "curl -X PUT -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 aws:amz:$S3_REGION:s3 --user $S3_ACCESS_KEY:$S3_SECRET_KEY http://127.0.0.1:$S3_PORT/$S3_BUCKET"; return 1; }
}

s3_health() { curl -fsS -m 3 "http://127.0.0.1:$S3_PORT/health" >/dev/null; }

s3_env() {
  cat <<ENV
export MLPLANE_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export MLPLANE_S3_ACCESS_KEY=$S3_ACCESS_KEY
export MLPLANE_S3_SECRET_KEY=$S3_SECRET_KEY
export MLPLANE_S3_REGION=$S3_REGION
export MLPLANE_S3_BUCKET=$S3_BUCKET
ENV
}
