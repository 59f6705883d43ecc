#!/usr/bin/env python3
"""Test MCP client for mcp-bridge interop tests (Python SDK `mcp==2.3.0`).

Runs a fixed scenario against the fixtures of stateless_server.py and prints one JSON
line per check on stdout, then a summary line; exit code 0 only if every check passed.

Usage:
  stateless_client.py URL              [--mode auto|legacy|2026-07-28] [--trace] [--only a,b]
  stateless_client.py --stdio -- CMD [ARGS...]   (same scenario over stdio, e.g. `python stateless_server.py stdio`)

  --mode auto        (default) the SDK's discovery: server/discover probe, fall back to initialize
  --mode legacy      initialize handshake (2025-11-25 offered)
  --mode 2026-07-28  no probe at all; every request carries the 2026-07-28 envelope
  --trace            log every HTTP exchange (method, MCP headers, body, status) to stderr
  --only             comma-separated subset of: discover,list,header,header_b64,add,resource,prompt,progress,cancel

Checks:
  discover    negotiated protocol version (printed; "2026-07-28" expected for auto against a 2026 server)
  list        tools/list contains echo_region, add, slow, stats
  header      tools/call echo_region(region="us-west1") -> "region=us-west1 text=hi"
  header_b64  tools/call echo_region(region="Hello, 世界") (header goes base64: =?base64?SGVsbG8sIOS4lueVjA==?=)
  add         tools/call add(a=40, b=2) -> 42 (integer x-mcp-header)
  resource    resources/read demo://greeting -> "hello from the stateless server"
  prompt      prompts/get greet(name=Ada)
  progress    tools/call slow(steps=4, delay=0.1) with a progress callback: >=1 progress, result "done 4"
  cancel      tools/call slow(steps=100, delay=0.1) abandoned after 0.7 s; then stats() must show the
              server's cancelled counter went up (2026 HTTP: the POST stream is closed; stdio and
              handshake eras: notifications/cancelled is sent)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio
import httpx2

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

ALL = ["discover", "list", "header", "header_b64", "add", "resource", "prompt", "progress", "cancel"]
_T0 = time.monotonic()


def _trace_client() -> httpx2.AsyncClient:
    client = create_mcp_http_client()

    async def on_request(request: httpx2.Request) -> None:
        hdrs = {k: v for k, v in request.headers.items() if k.lower().startswith("mcp") or k.lower() == "accept"}
        body = request.content.decode("utf-8", "replace") if request.content else ""
        print(f"[{time.monotonic() - _T0:7.3f}] >> {request.method} {hdrs} {body[:400]}", file=sys.stderr, flush=True)

    async def on_response(response: httpx2.Response) -> None:
        ct = response.headers.get("content-type", "")
        sid = response.headers.get("mcp-session-id")
        print(
            f"[{time.monotonic() - _T0:7.3f}] << {response.status_code} {ct}" + (f" session={sid}" if sid else ""),
            file=sys.stderr,
            flush=True,
        )

    client.event_hooks = {"request": [on_request], "response": [on_response]}
    return client


def _text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def _stats(client: Client) -> dict:
    return json.loads(_text(await client.call_tool("stats", {})))


async def scenario(client: Client, only: list[str]) -> list[dict]:
    out: list[dict] = []

    def record(name: str, ok: bool, **detail) -> None:
        line = {"check": name, "ok": bool(ok), **detail}
        out.append(line)
        print(json.dumps(line, ensure_ascii=False), flush=True)

    async def check(name: str, fn) -> None:
        if name not in only:
            return
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - report and carry on
            record(name, False, error=f"{type(exc).__name__}: {exc}")

    async def discover() -> None:
        record("discover", True, protocol_version=client.protocol_version,
               server_info=client.server_info.model_dump() if client.server_info else None)

    async def list_tools() -> None:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        record("list", {"echo_region", "add", "slow", "stats"} <= set(names), tools=names)

    async def header() -> None:
        text = _text(await client.call_tool("echo_region", {"region": "us-west1", "text": "hi"}))
        record("header", text == "region=us-west1 text=hi", text=text)

    async def header_b64() -> None:
        text = _text(await client.call_tool("echo_region", {"region": "Hello, 世界", "text": "hi"}))
        record("header_b64", text == "region=Hello, 世界 text=hi", text=text)

    async def add() -> None:
        text = _text(await client.call_tool("add", {"a": 40, "b": 2}))
        record("add", text == "42", text=text)

    async def resource() -> None:
        res = await client.read_resource("demo://greeting")
        text = "".join(getattr(c, "text", "") for c in res.contents)
        record("resource", text == "hello from the stateless server", text=text)

    async def prompt() -> None:
        res = await client.get_prompt("greet", {"name": "Ada"})
        text = "".join(getattr(m.content, "text", "") for m in res.messages)
        record("prompt", "Ada" in text, text=text)

    async def progress() -> None:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            seen.append((p, total, message))

        text = _text(await client.call_tool("slow", {"steps": 4, "delay": 0.1}, progress_callback=on_progress))
        record("progress", text == "done 4" and len(seen) >= 1, text=text, progress_events=len(seen))

    async def cancel() -> None:
        before = (await _stats(client))["cancelled"]
        with anyio.move_on_after(0.7):
            await client.call_tool("slow", {"steps": 100, "delay": 0.1})
            record("cancel", False, error="slow() finished before the cancel")
            return
        after = before
        for _ in range(30):  # the server notices the close / notification asynchronously
            after = (await _stats(client))["cancelled"]
            if after > before:
                break
            await anyio.sleep(0.1)
        record("cancel", after == before + 1, cancelled_before=before, cancelled_after=after)

    for name, fn in [("discover", discover), ("list", list_tools), ("header", header), ("header_b64", header_b64),
                     ("add", add), ("resource", resource), ("prompt", prompt), ("progress", progress),
                     ("cancel", cancel)]:
        await check(name, fn)
    return out


async def amain(args: argparse.Namespace) -> int:
    only = args.only.split(",") if args.only else ALL
    if args.stdio:
        if not args.cmd:
            print("--stdio needs a command after --", file=sys.stderr)
            return 2
        target = StdioServerParameters(command=args.cmd[0], args=args.cmd[1:])
    elif args.trace:
        target = streamable_http_client(args.url, http_client=_trace_client())
    else:
        target = args.url
    async with Client(target, mode=args.mode, cache=None, read_timeout_seconds=30) as client:
        results = await scenario(client, only)
        version = client.protocol_version
    failed = [r["check"] for r in results if not r["ok"]]
    print(json.dumps({"summary": "PASS" if not failed else "FAIL", "failed": failed,
                      "protocol_version": version}), flush=True)
    return 0 if not failed else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", nargs="?")
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--only")
    ap.add_argument("--stdio", action="store_true")
    argv = sys.argv[1:]
    cmd: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1 :]
    args = ap.parse_args(argv)
    args.cmd = cmd
    if not args.stdio and not args.url:
        ap.error("URL required (or --stdio -- CMD ...)")
    sys.exit(anyio.run(amain, args))


if __name__ == "__main__":
    main()
