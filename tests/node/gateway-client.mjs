// Gateway client for mcp-bridge's tests: reads the `.mcp.json` that
// `mcp-bridge serve --config FILE --print-client-config` printed and, as an agent in a sandbox
// would, starts every entry's command (`mcp-bridge connect …`) over stdio with the official
// TypeScript SDK client, then uses the server: `echo` where the server has it, and the memory
// graph's create_entities + read_graph where it has those. Prints one JSON summary line:
//   {"NAME": {"serverName", "tools": [...], "echo"?, "graph"?}, ...}
//
// Usage: node gateway-client.mjs CLIENT-CONFIG.json
// Environment: INTEROP_TIMEOUT_MS (whole run, default 60000).

import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS ?? 60000);
let step = "start";

function fail(message) {
  process.stderr.write(`gateway client failed at step "${step}": ${message}\n`);
  process.exit(1);
}

const watchdog = setTimeout(() => fail(`no result after ${TIMEOUT_MS} ms`), TIMEOUT_MS);

function texts(result) {
  return (result.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}

async function useOne(name, entry) {
  step = `${name}: connect`;
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args ?? [],
    env: { ...process.env, ...(entry.env ?? {}) },
    stderr: "inherit",
  });
  const client = new Client({ name: "gateway-client", version: "1.0.0" });
  await client.connect(transport);
  const out = { serverName: client.getServerVersion()?.name ?? null };
  step = `${name}: tools/list`;
  const tools = (await client.listTools()).tools.map((t) => t.name);
  out.tools = tools;
  if (tools.includes("echo")) {
    step = `${name}: echo`;
    out.echo = texts(await client.callTool({ name: "echo", arguments: { message: `hi ${name}` } }));
  }
  if (tools.includes("create_entities") && tools.includes("read_graph")) {
    step = `${name}: create_entities`;
    await client.callTool({
      name: "create_entities",
      arguments: {
        entities: [{ name: "mcp-bridge", entityType: "project", observations: ["many servers, one socket"] }],
      },
    });
    step = `${name}: read_graph`;
    out.graph = texts(await client.callTool({ name: "read_graph", arguments: {} }));
  }
  step = `${name}: close`;
  await client.close();
  return out;
}

async function main() {
  const path = process.argv[2];
  if (!path) fail("usage: node gateway-client.mjs CLIENT-CONFIG.json");
  const config = JSON.parse(readFileSync(path, "utf8"));
  const summary = {};
  for (const [name, entry] of Object.entries(config.mcpServers ?? {})) {
    summary[name] = await useOne(name, entry);
  }
  clearTimeout(watchdog);
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.exit(0);
}

main().catch((e) => fail(e?.stack ?? String(e)));
