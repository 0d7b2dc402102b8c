// The official TypeScript MCP client against evolink-mcp: one run per transport, driven by
// tests/clients/test_typescript_client.py, which asserts on the JSON this prints (one key per check).
//
// usage: node client_checks.mjs CONFIG_JSON
//   {"transport": "stdio", "command": ..., "args": [...], "env": {...}} or
//   {"transport": "streamable-http", "url": ..., "token": ...},
//   plus "sandbox_url", "upload_path" (a file the server may upload), "missing_path" (no such file).
// A check that throws reports {"threw": "..."} instead of its observations; the run goes on.

import { createHash } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const WAIT_MS = 20_000; // bound on any one wait for the sandbox to see something
const QUIET_MS = 1_500; // see `cancel`
const config = JSON.parse(process.argv[2]);

function transportFor(cfg) {
  if (cfg.transport === "stdio") {
    return new StdioClientTransport({ command: cfg.command, args: cfg.args, env: cfg.env, stderr: "inherit" });
  }
  return new StreamableHTTPClientTransport(new URL(cfg.url), {
    requestInit: { headers: { Authorization: `Bearer ${cfg.token}` } },
  });
}

const describe = (error) => `${error?.name ?? "Error"}: ${error?.message ?? String(error)}`;

function seen(result) {
  const text = result.content.filter((b) => b.type === "text").map((b) => b.text).join("\n");
  const links = result.content.filter((b) => b.type === "resource_link").map(({ uri, mimeType }) => ({ uri, mimeType }));
  return { isError: result.isError === true, text, structuredContent: result.structuredContent ?? null, links };
}

async function sandboxRequests(endpoint) {
  const response = await fetch(`${config.sandbox_url}/_sandbox/requests?endpoint=${endpoint}`);
  return (await response.json()).requests;
}

async function waitFor(what, probe) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const client = new Client({ name: "evolink-mcp-ts-checks", version: "1.0.0" });
// The SDK reports here what it cannot place, e.g. an answer to a request it already gave up on.
const clientErrors = [];
client.onerror = (error) => clientErrors.push(describe(error));
await client.connect(transportFor(config));

const checks = {};
async function check(name, body) {
  try {
    checks[name] = await body();
  } catch (error) {
    checks[name] = { threw: describe(error) };
  }
}

await check("list_tools", async () => {
  const { tools } = await client.listTools(); // also what lets callTool validate results against outputSchema
  return { names: tools.map((t) => t.name), with_output_schema: tools.filter((t) => t.outputSchema).map((t) => t.name) };
});

await check("generate_image", async () => {
  const progress = [];
  const result = await client.callTool(
    { name: "generate_image", arguments: { prompt: "a lighthouse at dusk [sandbox:duration=1]" } },
    undefined,
    { onprogress: ({ progress: value, total, message }) => progress.push({ progress: value, total, message }) },
  );
  return { ...seen(result), progress };
});

const errorCalls = {
  invalid_size: ["generate_image", { prompt: "a lighthouse", size: "7:3" }],
  unknown_task: ["check_task", { task_id: "task-unified-0000000000-nosuchtask" }],
  failed_task: ["generate_image", { prompt: "forbidden [sandbox:fail=content_policy_violation] [sandbox:duration=0]" }],
  missing_file: ["upload_file", { file_path: config.missing_path }],
};
for (const [name, [tool, args]] of Object.entries(errorCalls)) {
  await check(`error_${name}`, async () => seen(await client.callTool({ name: tool, arguments: args })));
}

await check("read_resource", async () => {
  const uri = checks.generate_image?.links?.[0]?.uri;
  if (!uri) throw new Error("generate_image returned no resource_link to read");
  const { contents } = await client.readResource({ uri });
  return contents.map(({ uri: read, mimeType, blob, text }) => ({
    uri: read,
    mimeType,
    blob_sha256: blob === undefined ? null : createHash("sha256").update(Buffer.from(blob, "base64")).digest("hex"),
    text: text ?? null,
  }));
});

await check("upload_file", async () => seen(await client.callTool({ name: "upload_file", arguments: { file_path: config.upload_path } })));

await check("cancel", async () => {
  // Abort once a poll of the running task has reported progress (the first update comes from the submission).
  const controller = new AbortController();
  let updates = 0;
  let abortedAt = 0;
  const call = client.callTool(
    { name: "generate_image", arguments: { prompt: "never mind [sandbox:duration=3]" } },
    undefined,
    {
      signal: controller.signal,
      onprogress: () => {
        updates += 1;
        if (updates === 2) {
          abortedAt = Date.now();
          controller.abort();
        }
      },
    },
  );
  let outcome;
  try {
    outcome = { resolved: seen(await call) };
  } catch (error) {
    outcome = { rejected: describe(error), rejected_after_ms: Date.now() - abortedAt };
  }
  const submissions = (await sandboxRequests("generations")).filter((r) => r.body?.prompt?.startsWith("never mind"));
  const taskId = submissions[0]?.task_id;
  if (!taskId) throw new Error(`the sandbox saw no submission of the cancelled call: ${JSON.stringify(outcome)}`);
  const pollsOf = async () => (await sandboxRequests("tasks")).filter((r) => r.path === `/v1/tasks/${taskId}`);
  // The server keeps following what was paid for and saves it: wait until it has downloaded the image...
  const downloads = await waitFor("the cancelled task's image download", async () => {
    const found = (await sandboxRequests("results")).filter((r) => r.path.startsWith(`/results/${taskId}/`));
    return found.length ? found : null;
  });
  const pollsBySave = (await pollsOf()).length;
  // ...then prove the absence of further polls: no event marks "nothing more will come", so a short quiet
  // period. Any loop still running would poll within it (once the task is over the server polls every 0.2-1 s).
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  return {
    ...outcome,
    task_id: taskId,
    submissions: submissions.length,
    downloads: downloads.length,
    polls_by_save: pollsBySave,
    polls_after_quiet: (await pollsOf()).length,
  };
});

// After everything: the session still answers, and nothing arrived that the client could not place.
await check("session_alive", async () => ({ tools: (await client.listTools()).tools.length }));
checks.client_errors = clientErrors;
await client.close();
process.stdout.write(`${JSON.stringify(checks)}\n`);
