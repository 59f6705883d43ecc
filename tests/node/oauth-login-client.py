#!/usr/bin/env python3
"""A client for the conformance suite's auth scenarios, built from `mcp-bridge login`.

The suite runs `oauth-login-client.py SERVER_URL` (MCP_CONFORMANCE_CONTEXT may carry a
pre-registered client). This writes a gateway config naming that server, runs `mcp-bridge login`
with a $BROWSER that approves at once, then speaks MCP to the server with the stored token
(initialize, tools/list, tools/call), logging in again with the wanted scope after a 403
`insufficient_scope` (at most twice), as a user told to do so by the gateway would.

With MCP_BRIDGE_VIA_GATEWAY=1 the MCP part goes the way a sandbox's does instead: `mcp-bridge
serve --config` on 127.0.0.1 relays the server with the stored tokens, and the messages go through
`mcp-bridge connect URL/servers/srv/mcp` on its stdio, which holds no token; a `login-required`
answer to a 403 step-up means: log in again (the store remembers the wanted scope), then resend.

Environment: MCP_BRIDGE_BIN (the binary; default target/debug/mcp-bridge).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import queue
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


def start_gateway(binary, config, env):
    """serve --config on a free port; returns (process, base URL). Its stderr is echoed."""
    serve = subprocess.Popen(
        [binary, "serve", "--config", config, "--listen", "127.0.0.1:0"],
        env=dict(env, MCP_BRIDGE_LOG_LEVEL="info"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = queue.Queue()

    def echo():
        for line in serve.stderr:
            print("[serve]", line.rstrip(), file=sys.stderr, flush=True)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                found.put(m.group(1))
        found.put(None)

    threading.Thread(target=echo, daemon=True).start()
    try:
        base = found.get(timeout=20)
    except queue.Empty:
        base = None
    return serve, base


def via_gateway(binary, config, env, steps):
    serve, base = start_gateway(binary, config, env)
    if not base:
        serve.kill()
        return 1
    # The sandbox's side: no token store, no token anywhere.
    sandbox_env = {k: v for k, v in env.items() if k != "MCP_BRIDGE_STATE_DIR"}
    connect = subprocess.Popen(
        [binary, "connect", base + "/servers/srv/mcp"], env=sandbox_env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    answers = queue.Queue()

    def read():
        for line in connect.stdout:
            answers.put(json.loads(line))
        answers.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        logins, i = 1, 0
        while i < len(steps):
            step = steps[i]
            connect.stdin.write(json.dumps(step) + "\n")
            connect.stdin.flush()
            if "id" not in step:
                i += 1
                continue
            while True:
                answer = answers.get(timeout=30)
                if answer is None:
                    return 1
                if answer.get("id") == step["id"] and "method" not in answer:
                    break
            log(step["method"], "->", json.dumps(answer)[:300])
            err = answer.get("error")
            if err and err.get("data", {}).get("reason") == "login-required" and logins < 3:
                if not login(binary, config, env, []):
                    return 1
                logins += 1
                continue
            if err:
                return 1
            i += 1
        return 0
    finally:
        connect.stdin.close()
        try:
            connect.wait(timeout=10)
        except subprocess.TimeoutExpired:
            connect.kill()
        serve.terminate()
        try:
            serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()


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
    if os.environ.get("MCP_BRIDGE_VIA_GATEWAY") == "1":
        return via_gateway(binary, config, env, steps)
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
