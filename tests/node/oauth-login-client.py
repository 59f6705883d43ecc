#!/usr/bin/env python3
"""A client for the conformance suite's auth scenarios, built from `mcp-bridge login`.

The suite runs `oauth-login-client.py SERVER_URL` (MCP_CONFORMANCE_CONTEXT may carry a
pre-registered client). This writes a gateway config naming that server, runs `mcp-bridge login`
with a $BROWSER that approves at once, then speaks MCP to the server with the stored token
(initialize, tools/list, tools/call), logging in again with the wanted scope after a 403
`insufficient_scope` (at most twice), as a user told to do so by the gateway would.

Environment: MCP_BRIDGE_BIN (the binary; default target/debug/mcp-bridge).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

CIMD_URL = "https://conformance-test.local/client-metadata.json"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(*args):
    print("oauth-login-client:", *args, file=sys.stderr, flush=True)


def write_browser(path):
    with open(path, "w") as f:
        f.write(
            "#!%s\nimport sys, urllib.request\n"
            "o = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
            "try:\n    o.open(sys.argv[1], timeout=20).read()\n"
            "except Exception as e:\n    print('browser:', e, file=sys.stderr)\n" % sys.executable
        )
    os.chmod(path, 0o755)


def login(binary, config, env, scopes):
    cmd = [binary, "login", "srv", "--config", config, "--timeout", "20s"]
    for s in scopes:
        cmd += ["--scope", s]
    log("running", " ".join(cmd))
    done = subprocess.run(cmd, env=env, timeout=60)
    return done.returncode == 0


def token(state):
    with open(os.path.join(state, "tokens", "srv.json")) as f:
        return json.load(f)["access_token"]


def post(url, tok, session, message):
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
        "Authorization": "Bearer " + tok,
    }
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(url, data=json.dumps(message).encode(), headers=headers)
    try:
        resp = OPENER.open(req, timeout=20)
    except urllib.error.HTTPError as e:
        return e.code, e.headers, None
    body = resp.read().decode()
    answer = None
    if "text/event-stream" in resp.headers.get("Content-Type", ""):
        for line in body.splitlines():
            if line.startswith("data:"):
                answer = json.loads(line[5:])
    elif body.strip():
        answer = json.loads(body)
    return resp.status, resp.headers, answer


def main():
    url = sys.argv[-1]
    binary = os.environ.get("MCP_BRIDGE_BIN", "target/debug/mcp-bridge")
    ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    tmp = tempfile.mkdtemp(prefix="oauth-login-client-")
    state = os.path.join(tmp, "state")
    browser = os.path.join(tmp, "browser.py")
    write_browser(browser)
    oauth = {}
    if ctx.get("client_id"):
        oauth["clientId"] = ctx["client_id"]
        if ctx.get("client_secret"):
            oauth["clientSecretEnv"] = "CONFORMANCE_CLIENT_SECRET"
    else:
        oauth["clientMetadataUrl"] = CIMD_URL
    config = os.path.join(tmp, "mcp.json")
    with open(config, "w") as f:
        json.dump({"mcpServers": {"srv": {"url": url}},
                   "mcpBridge": {"servers": {"srv": {"oauth": oauth}}}}, f)
    env = dict(os.environ, MCP_BRIDGE_STATE_DIR=state, BROWSER=browser, NO_PROXY="*")
    env.pop("HTTP_PROXY", None)
    env.pop("http_proxy", None)
    if ctx.get("client_secret"):
        env["CONFORMANCE_CLIENT_SECRET"] = ctx["client_secret"]

    if not login(binary, config, env, []):
        return 1
    logins = 1
    session = None
    steps = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "oauth-login-client", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "test-tool", "arguments": {}}},
    ]
    i = 0
    while i < len(steps):
        status, headers, answer = post(url, token(state), session, steps[i])
        log(steps[i]["method"], "->", status)
        if status == 403 and logins < 3:
            challenge = headers.get("WWW-Authenticate", "")
            m = re.search(r'scope="([^"]*)"', challenge)
            if "insufficient_scope" not in challenge or not m:
                return 1
            if not login(binary, config, env, [m.group(1)]):
                return 1
            logins += 1
            continue
        if status >= 400:
            return 1
        if session is None and headers.get("Mcp-Session-Id"):
            session = headers.get("Mcp-Session-Id")
        i += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
