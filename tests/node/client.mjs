// Interop client for mcp-bridge's tests: the official TypeScript SDK client runs one scripted MCP
// session over the transport named on the command line and prints a JSON summary on stdout.
//
// Usage:
//   node client.mjs stdio -- CMD [ARGS...]     spawn CMD (e.g. `mcp-bridge connect URL`) over stdio
//   node client.mjs streamable URL             Streamable HTTP (e.g. http://127.0.0.1:PORT/mcp)
//   node client.mjs sse URL                    HTTP+SSE, 2024-11-05 (e.g. http://127.0.0.1:PORT/sse)
//
// Environment: INTEROP_TIMEOUT_MS (whole session, default 60000), INTEROP_LONG_STEPS (default 4).
// Exit code 0 with the summary on stdout, or non-zero with a message on stderr naming the step
// that failed. The session targets @modelcontextprotocol/server-everything.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS ?? 60000);
const LONG_STEPS = Number(process.env.INTEROP_LONG_STEPS ?? 4);
const SAMPLING_REPLY = "interop-sampling-reply-42";
const ELICIT_NAME = "Interop Tester";

let step = "start";

function fail(message) {
  process.stderr.write(`interop client failed at step "${step}": ${message}\n`);
  process.exit(1);
}

// The bound on the whole session: a hang anywhere becomes a clear failure, not a stuck test.
const watchdog = setTimeout(
  () => fail(`no result after ${TIMEOUT_MS} ms`),
  TIMEOUT_MS,
);

function makeTransport(argv) {
  const [mode, ...rest] = argv;
  switch (mode) {
    case "stdio": {
      const cmd = rest[0] === "--" ? rest.slice(1) : rest;
      if (cmd.length === 0) fail("stdio mode needs `-- CMD [ARGS...]`");
      return new StdioClientTransport({
        command: cmd[0],
        args: cmd.slice(1),
        env: process.env,
        stderr: "inherit",
      });
    }
    case "streamable":
      if (!rest[0]) fail("streamable mode needs a URL");
      return new StreamableHTTPClientTransport(new URL(rest[0]));
    case "sse":
      if (!rest[0]) fail("sse mode needs a URL");
      return new SSEClientTransport(new URL(rest[0]));
    default:
      fail(`unknown mode ${JSON.stringify(mode)} (use stdio, streamable or sse)`);
  }
}

function texts(result) {
  return (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

async function main() {
  const summary = {
    mode: process.argv[2],
    serverName: null,
    protocolVersion: null,
    tools: [],
    echo: null,
    sum: null,
    resourceText: false,
    promptMessages: 0,
    samplingRequests: 0,
    samplingRoundTrip: false,
    elicitationRequests: 0,
    elicitationRoundTrip: false,
    rootsRequests: 0,
    logMessages: 0,
    progressNotifications: 0,
    progressCallbacks: 0,
    longResult: null,
    ping: false,
  };

  const client = new Client(
    { name: "mcp-bridge-interop", version: "1.0.0" },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    summary.samplingRequests += 1;
    return {
      model: "interop-test-model",
      role: "assistant",
      stopReason: "endTurn",
      content: { type: "text", text: `${SAMPLING_REPLY} for ${req.params.messages.length} message(s)` },
    };
  });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    summary.elicitationRequests += 1;
    return { action: "accept", content: { name: ELICIT_NAME, check: true } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    summary.rootsRequests += 1;
    return { roots: [{ uri: "file:///tmp/interop-root", name: "interop" }] };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, () => {
    summary.logMessages += 1;
  });

  const transport = makeTransport(process.argv.slice(2));

  step = "initialize";
  await client.connect(transport);
  // Count progress on the wire: the SDK may run a notification handler after the response that
  // ends the request, and then drops the last progress callback (an SDK quirk, not the bridge's).
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    if (message?.method === "notifications/progress") summary.progressNotifications += 1;
    deliver?.(message, extra);
  };
  summary.serverName = client.getServerVersion()?.name ?? null;
  // The SSE and stdio transports do not record it; the HTTP one does.
  summary.protocolVersion = transport.protocolVersion ?? null;

  step = "ping";
  await client.ping();
  summary.ping = true;

  step = "tools/list";
  const tools = await client.listTools();
  summary.tools = tools.tools.map((t) => t.name).sort();

  step = "tools/call echo";
  const echo = await client.callTool({ name: "echo", arguments: { message: "héllo through the bridge ✓" } });
  summary.echo = texts(echo);

  step = "tools/call get-sum";
  const sum = await client.callTool({ name: "get-sum", arguments: { a: 19, b: 23 } });
  summary.sum = texts(sum);

  step = "resources/read";
  const res = await client.readResource({ uri: "demo://resource/dynamic/text/1" });
  summary.resourceText = res.contents.length > 0 && typeof res.contents[0].text === "string";

  step = "prompts/get";
  const prompt = await client.getPrompt({ name: "simple-prompt" });
  summary.promptMessages = prompt.messages.length;

  step = "sampling round trip";
  if (summary.tools.includes("trigger-sampling-request")) {
    const r = await client.callTool({
      name: "trigger-sampling-request",
      arguments: { prompt: "say something", maxTokens: 5 },
    });
    summary.samplingRoundTrip = texts(r).includes(SAMPLING_REPLY);
  }

  step = "elicitation round trip";
  if (summary.tools.includes("trigger-elicitation-request")) {
    const r = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
    summary.elicitationRoundTrip = texts(r).includes(ELICIT_NAME);
  }

  step = "long call with progress";
  const long = await client.callTool(
    { name: "trigger-long-running-operation", arguments: { duration: LONG_STEPS * 0.25, steps: LONG_STEPS } },
    undefined,
    {
      onprogress: () => {
        summary.progressCallbacks += 1;
      },
      timeout: TIMEOUT_MS,
    },
  );
  summary.longResult = texts(long);

  step = "close";
  await client.close();
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.exit(0);
}

main().catch((err) => fail(err?.stack ?? String(err)));
