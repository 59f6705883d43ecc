#!/usr/bin/env python3
"""Test MCP server for mcp-bridge interop tests (Python SDK `mcp==2.3.0`).

Serves the 2026-07-28 stateless revision AND the handshake revisions
(2024-11-05 .. 2025-11-25) on one endpoint / one process, as the SDK does.

Usage:
  stateless_server.py http  [--port N] [--json]   Streamable HTTP on 127.0.0.1:N/mcp
                                               (N=0 or omitted: pick a free port).
                                               Prints "LISTENING http://127.0.0.1:PORT/mcp"
                                               on stdout (one line, flushed) once bound.
  stateless_server.py stdio                    stdio server (dual-era: the first request
                                               of the process decides the era).
  --handshake-only (either transport)          emulate a 2025-era (handshake-only) server:
                                               http: requests whose MCP-Protocol-Version is not a
                                               handshake revision are served as if the header were
                                               absent (-> 400 "Missing session ID", as mcp 1.x does);
                                               stdio: handshake-only loop (server/discover before
                                               initialize -> error, like any 2025 server).

Fixtures:
  tool  echo_region(region: str [x-mcp-header "Region"], text: str) -> "region=<region> text=<text>"
  tool  add(a: int [x-mcp-header "A"], b: int) -> a + b
  tool  slow(steps: int = 5, delay: float = 0.2) -> reports progress each step, returns "done <steps>"
  tool  stats() -> JSON {"cancelled": n, "completed": n, "protocol_versions": [...]} (observes cancellation)
  resource demo://greeting (text/plain) -> "hello from the stateless server"
  prompt  greet(name) -> one user message
Logs go to stderr only.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from typing import Annotated

import anyio
from pydantic import Field

from mcp.server.mcpserver import Context, MCPServer

mcp = MCPServer("stateless-test-server", version="1.0.0", log_level="WARNING")

STATS = {"cancelled": 0, "completed": 0, "protocol_versions": []}


def _note_version(ctx: Context) -> None:
    v = ctx.protocol_version
    if v and v not in STATS["protocol_versions"]:
        STATS["protocol_versions"].append(v)


@mcp.tool(description="Echo text; `region` is mirrored into the Mcp-Param-Region header (2026-07-28).")
def echo_region(
    region: Annotated[str, Field(description="region", json_schema_extra={"x-mcp-header": "Region"})],
    text: str,
    ctx: Context,
) -> str:
    _note_version(ctx)
    return f"region={region} text={text}"


@mcp.tool(description="Add two integers; `a` is mirrored into Mcp-Param-A.")
def add(
    a: Annotated[int, Field(json_schema_extra={"x-mcp-header": "A"})],
    b: int,
) -> int:
    return a + b


@mcp.tool(description="Slow tool: one progress notification per step, then 'done <steps>'.")
async def slow(ctx: Context, steps: int = 5, delay: float = 0.2) -> str:
    _note_version(ctx)
    try:
        for i in range(steps):
            await ctx.report_progress(i + 1, steps, f"step {i + 1}/{steps}")
            await anyio.sleep(delay)
    except anyio.get_cancelled_exc_class():
        STATS["cancelled"] += 1
        print(f"stateless_server: slow() cancelled after step {i + 1}", file=sys.stderr, flush=True)
        raise
    STATS["completed"] += 1
    return f"done {steps}"


@mcp.tool(description="Counters: how many slow() calls were cancelled / completed, eras seen.")
def stats() -> str:
    return json.dumps(STATS)


@mcp.resource("demo://greeting", name="greeting", mime_type="text/plain")
def greeting() -> str:
    return "hello from the stateless server"


@mcp.prompt()
def greet(name: str) -> str:
    return f"Say hello to {name}."


class _LegacyOnly:
    """ASGI wrapper: hide a non-handshake MCP-Protocol-Version so the SDK's handshake path answers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

            keep = [(k, v) for k, v in scope["headers"]
                    if k != b"mcp-protocol-version" or v.decode("latin-1") in HANDSHAKE_PROTOCOL_VERSIONS]
            scope = {**scope, "headers": keep}
        await self.app(scope, receive, send)


async def _handshake_stdio() -> None:
    from mcp.server.runner import serve_loop
    from mcp.server.stdio import stdio_server

    low = mcp._lowlevel_server
    async with stdio_server() as (read_stream, write_stream):
        async with low.lifespan(low) as lifespan_state:
            await serve_loop(low, read_stream, write_stream, lifespan_state=lifespan_state,
                             init_options=low.create_initialization_options())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("transport", choices=["http", "stdio"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--json", action="store_true",
                    help="json_response=True: no SSE on POST responses, so no progress and no cancel-on-close")
    ap.add_argument("--handshake-only", action="store_true", help="behave as a 2025-era handshake-only server")
    args = ap.parse_args()

    if args.transport == "stdio":
        if args.handshake_only:
            anyio.run(_handshake_stdio)
        else:
            mcp.run("stdio")
        return

    if args.handshake_only:
        _serve_http(_LegacyOnly(mcp.streamable_http_app(json_response=args.json, host="127.0.0.1")), args.port)
        return

    if args.port:
        print(f"LISTENING http://127.0.0.1:{args.port}/mcp", flush=True)
        mcp.run("streamable-http", host="127.0.0.1", port=args.port, json_response=args.json)
        return

    # Port 0: bind first (no race), then hand the socket to uvicorn. Same app as run("streamable-http").
    _serve_http(mcp.streamable_http_app(json_response=args.json, host="127.0.0.1"), 0)


def _serve_http(app, port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    print(f"LISTENING http://127.0.0.1:{port}/mcp", flush=True)
    anyio.run(lambda: server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
