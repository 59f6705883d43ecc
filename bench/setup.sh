#!/usr/bin/env bash
# Installs the peer bridges the benchmark compares against into bench/.peers (git-ignored):
# npm mcp-remote and supergateway, PyPI mcp-proxy (in a venv). Versions are pinned so tables
# from different days compare. Safe to rerun: an install that is already there is kept.
set -euo pipefail

MCP_REMOTE_VERSION=0.15.1
SUPERGATEWAY_VERSION=4.0.0
MCP_PROXY_VERSION=0.13.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="$here/.peers"
mkdir -p "$peers"
status=0

npm_peer() {
    local name=$1 version=$2 dir="$peers/$1"
    if [ -f "$dir/node_modules/$name/package.json" ] &&
        grep -q "\"version\": \"$version\"" "$dir/node_modules/$name/package.json"; then
        echo "setup: $name@$version already installed"
        return
    fi
    if ! command -v npm >/dev/null; then
        echo "setup: npm not found: $name will be n/a" >&2
        status=1
        return
    fi
    mkdir -p "$dir"
    echo "setup: installing $name@$version"
    if ! (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --prefix "$dir" "$name@$version" >"$dir/install.log" 2>&1); then
        echo "setup: npm install $name@$version failed (see $dir/install.log)" >&2
        status=1
    fi
}

npm_peer mcp-remote "$MCP_REMOTE_VERSION"
npm_peer supergateway "$SUPERGATEWAY_VERSION"

venv="$peers/mcp-proxy"
if [ -x "$venv/bin/mcp-proxy" ] && "$venv/bin/pip" show mcp-proxy 2>/dev/null | grep -qx "Version: $MCP_PROXY_VERSION"; then
    echo "setup: mcp-proxy==$MCP_PROXY_VERSION already installed"
elif command -v python3 >/dev/null; then
    echo "setup: installing mcp-proxy==$MCP_PROXY_VERSION"
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp-proxy==$MCP_PROXY_VERSION"; } >"$peers/mcp-proxy-install.log" 2>&1; then
        echo "setup: pip install mcp-proxy==$MCP_PROXY_VERSION failed (see $peers/mcp-proxy-install.log)" >&2
        status=1
    fi
else
    echo "setup: python3 not found: mcp-proxy will be n/a" >&2
    status=1
fi
exit $status
