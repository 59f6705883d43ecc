"""Interop client for mcp-bridge's tests: the official Python `mcp` SDK (2.x high-level `Client`)
runs one scripted session against server-everything behind `mcp-bridge serve` and prints a JSON
summary on stdout (exit 1 with the failing step on stderr otherwise).

Usage: python client.py streamable URL | python client.py sse URL
The session uses the handshake revisions (`mode="legacy"`): it exercises what only they have
(ping, server-to-client sampling and elicitation requests, sessions). In `auto` mode the SDK would
pick the stateless 2026-07-28 revision, which serve also answers; tests/serve_2026.rs covers that.
"""

import asyncio
import json
import os
import sys

import warnings

import mcp_types as types
from mcp import Client
from mcp.client.sse import sse_client

TIMEOUT_S = float(os.environ.get("INTEROP_TIMEOUT_MS", "60000")) / 1000
LONG_STEPS = int(os.environ.get("INTEROP_LONG_STEPS", "4"))
SAMPLING_REPLY = "interop-sampling-reply-42"
ELICIT_NAME = "Interop Tester"

step = "start"
# ping is a 2025-era method; this session is 2025-era (the server has no server/discover).
warnings.filterwarnings("ignore", message="ping is removed")


def texts(result) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def session(mode: str, url: str) -> dict:
    global step
    summary = {
        "mode": mode,
        "protocolVersion": None,
        "serverName": None,
        "tools": [],
        "echo": None,
        "sum": None,
        "resourceText": False,
        "promptMessages": 0,
        "samplingRequests": 0,
        "samplingRoundTrip": False,
        "elicitationRequests": 0,
        "elicitationRoundTrip": False,
        "progressNotifications": 0,
        "longResult": None,
        "ping": False,
    }

    async def on_sampling(_ctx, params):
        summary["samplingRequests"] += 1
        return types.CreateMessageResult(
            role="assistant",
            model="interop-test-model",
            stop_reason="endTurn",
            content=types.TextContent(type="text", text=f"{SAMPLING_REPLY} for {len(params.messages)} message(s)"),
        )

    async def on_elicit(_ctx, _params):
        summary["elicitationRequests"] += 1
        return types.ElicitResult(action="accept", content={"name": ELICIT_NAME, "check": True})

    async def on_progress(_progress, _total, _message):
        summary["progressNotifications"] += 1

    target = url if mode == "streamable" else sse_client(url)
    step = "initialize"
    async with Client(
        target, mode="legacy", sampling_callback=on_sampling, elicitation_callback=on_elicit
    ) as client:
        summary["protocolVersion"] = client.protocol_version
        info = client.server_info
        summary["serverName"] = info.name if info else None
        step = "ping"
        await client.send_ping()
        summary["ping"] = True
        step = "tools/list"
        summary["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        step = "tools/call echo"
        summary["echo"] = texts(await client.call_tool("echo", {"message": "héllo through the bridge ✓"}))
        step = "tools/call get-sum"
        summary["sum"] = texts(await client.call_tool("get-sum", {"a": 19, "b": 23}))
        step = "resources/read"
        res = await client.read_resource("demo://resource/dynamic/text/1")
        summary["resourceText"] = bool(res.contents) and isinstance(getattr(res.contents[0], "text", None), str)
        step = "prompts/get"
        summary["promptMessages"] = len((await client.get_prompt("simple-prompt")).messages)
        step = "sampling round trip"
        if "trigger-sampling-request" in summary["tools"]:
            r = await client.call_tool("trigger-sampling-request", {"prompt": "say something", "maxTokens": 5})
            summary["samplingRoundTrip"] = SAMPLING_REPLY in texts(r)
        step = "elicitation round trip"
        if "trigger-elicitation-request" in summary["tools"]:
            r = await client.call_tool("trigger-elicitation-request", {})
            summary["elicitationRoundTrip"] = ELICIT_NAME in texts(r)
        step = "long call with progress"
        r = await client.call_tool(
            "trigger-long-running-operation",
            {"duration": LONG_STEPS * 0.25, "steps": LONG_STEPS},
            progress_callback=on_progress,
        )
        summary["longResult"] = texts(r)
        step = "close"
    return summary


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("streamable", "sse"):
        print("usage: client.py streamable|sse URL", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(asyncio.wait_for(session(sys.argv[1], sys.argv[2]), TIMEOUT_S))
    except BaseException as e:  # noqa: BLE001 - report any failure with the step it happened in
        print(f"python interop client failed at step {step!r}: {type(e).__name__}: {e!r}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
