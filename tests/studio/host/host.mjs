// A small MCP Apps host for tests: the official AppBridge (@modelcontextprotocol/ext-apps) and MCP client in Node,
// the view in a sandboxed iframe of headless Chromium (Debian's, driven by playwright-core), our real server over
// stdio. It plays a person's session in the studio and writes what happened to <out>/report.json.
//
//   node host.mjs config.json   with config {server: {command, args, env, cwd}, out, secret, chromium}
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { AppBridge, getToolUiResourceUri } from "@modelcontextprotocol/ext-apps/app-bridge";
import { chromium } from "playwright-core";

const APPS = "io.modelcontextprotocol/ui";
const APP_MIME = "text/html;profile=mcp-app";
const STEP_MS = 60_000; // bound on any one wait; the sandbox's tasks take about a second
const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(config.out, { recursive: true });

const report = { steps: [], appCalls: [], resourceReads: 0, toApp: [], console: [], requests: [], screenshots: {} };
const step = (name) => {
  report.steps.push(name);
  console.error(`studio host: ${name}`);
};

// -- the MCP client, as a host that renders MCP Apps ----------------------------------------------------------
const client = new Client(
  { name: "evolink-studio-test-host", version: "1.0.0" },
  { capabilities: { extensions: { [APPS]: { mimeTypes: [APP_MIME] } } } },
);
await client.connect(new StdioClientTransport({ ...config.server, stderr: "inherit" }));
const { tools } = await client.listTools();
const uris = new Set(tools.map((tool) => getToolUiResourceUri(tool)).filter(Boolean));
if (uris.size !== 1) throw new Error(`expected one studio view, tools name ${[...uris]}`);
const [viewUri] = uris;
const view = (await client.readResource({ uri: viewUri })).contents[0];
if (view.mimeType !== APP_MIME) throw new Error(`the view is served as ${view.mimeType}`);
report.viewMeta = view._meta;
report.secretInView = view.text.includes(config.secret);

// The CSP a host builds from the view's _meta.ui.csp: its domains, else nothing beyond inline code and data: images.
function cspFor(csp = {}) {
  const list = (domains, fallback) => (domains && domains.length ? domains.join(" ") : fallback);
  const resources = list(csp.resourceDomains, "");
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${resources}`.trim(),
    `style-src 'unsafe-inline' ${resources}`.trim(),
    `img-src data: blob: ${resources}`.trim(),
    `connect-src ${list(csp.connectDomains, "'none'")}`,
    `frame-src ${list(csp.frameDomains, "'none'")}`,
    `base-uri ${list(csp.baseUriDomains, "'none'")}`,
  ].join("; ");
}

const HOST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>studio test host</title><style>
body { margin: 0; background: #dfe2ea; font: 14px system-ui, sans-serif; }
.frame { width: 1160px; margin: 20px auto; border-radius: 16px; overflow: hidden; background: #fff;
  box-shadow: 0 10px 40px rgba(20, 22, 40, 0.18); }
iframe { display: block; width: 100%; height: 420px; border: 0; }
</style></head><body><div id="slot"></div><script>
window.mountApp = (id) => {
  const frame = document.createElement("iframe");
  frame.id = id;
  frame.setAttribute("sandbox", "allow-scripts");
  frame.src = "/app";
  const wrap = document.createElement("div");
  wrap.className = "frame";
  wrap.append(frame);
  document.getElementById("slot").replaceChildren(wrap);
};
window.toApp = (id, message) => document.getElementById(id).contentWindow.postMessage(message, "*");
window.resizeApp = (id, height) => { document.getElementById(id).style.height = Math.min(height, 1600) + "px"; };
window.addEventListener("message", (event) => {
  for (const frame of document.querySelectorAll("iframe")) {
    if (event.source === frame.contentWindow) window.fromApp(frame.id, event.data);
  }
});
</script></body></html>`;

const http = createServer((request, response) => {
  if (request.url === "/") {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(HOST_PAGE);
  } else if (request.url === "/app") {
    response
      .writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": cspFor(view._meta?.ui?.csp) })
      .end(view.text);
  } else {
    response.writeHead(204).end(); // the browser's own asks (a favicon): nothing
  }
});
await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${http.address().port}`;

// -- the browser --------------------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: config.chromium,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1200, height: 1700 }, deviceScaleFactor: 1 });
const page = await context.newPage();
page.on("console", (message) => {
  if (message.type() === "error" || message.type() === "warning") report.console.push(message.text());
});
page.on("pageerror", (error) => report.console.push(`page error: ${error.message}`));
page.on("request", (request) => {
  // Anything a view asks for beyond its own document: there should be nothing.
  const url = request.url();
  if (request.frame() !== page.mainFrame() && !url.startsWith("data:") && url !== `${origin}/app`) report.requests.push(url);
});

// One AppBridge per mounted view, its transport relaying through the page: the view's postMessage reaches
// window.fromApp, the bridge's messages go back through window.toApp.
const transports = new Map();
await page.exposeFunction("fromApp", (id, message) => {
  if (message && message.method === "tools/call") report.appCalls.push({ view: id, ...message.params });
  if (message && message.method === "resources/read") report.resourceReads++;
  transports.get(id)?.onmessage?.(message);
});
await page.goto(`${origin}/`);

async function mount(id, toolArguments, toolResult) {
  const transport = {
    async start() {},
    async send(message) {
      const text = JSON.stringify(message);
      if (text.includes(config.secret)) report.secretToApp = true;
      report.toApp.push(message.method || "response");
      await page.evaluate(([target, m]) => window.toApp(target, m), [id, message]);
    },
    async close() {},
  };
  transports.set(id, transport);
  const bridge = new AppBridge(
    client,
    { name: "evolink-studio-test-host", version: "1.0.0" },
    { serverTools: {}, serverResources: {}, logging: {} },
    { hostContext: { theme: "light", displayMode: "inline", platform: "web", containerDimensions: { width: 1160 } } },
  );
  bridge.addEventListener("sizechange", ({ height }) => {
    if (height) page.evaluate(([target, h]) => window.resizeApp(target, h), [id, height]);
  });
  const initialized = new Promise((resolve) => bridge.addEventListener("initialized", resolve));
  await bridge.connect(transport);
  await page.evaluate((target) => window.mountApp(target), id);
  await initialized;
  await bridge.sendToolInput({ arguments: toolArguments });
  await bridge.sendToolResult(toolResult);
  const frame = await (await page.$(`#${id}`)).contentFrame();
  return { bridge, frame };
}

async function shot(name, id) {
  const path = join(config.out, `${name}.png`);
  await page.waitForTimeout(250); // let the last resize and transition settle before the picture
  await page.locator(`#${id}`).screenshot({ path });
  report.screenshots[name] = path;
}

const imagesLoaded = (selector, count) => (frame) =>
  frame.waitForFunction(
    ([sel, n]) => {
      const found = [...document.querySelectorAll(sel)];
      return found.length >= n && found.every((img) => img.complete && img.naturalWidth > 0);
    },
    [selector, count],
    { timeout: STEP_MS },
  );

async function callAsModel(name, args) {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  return result;
}

try {
  // What a model would have done earlier in the conversation.
  step("generating five images as the model would");
  const seeds = [
    { prompt: "A lighthouse on a cliff at dusk, watercolor", model: "gpt-image-2", size: "1:1" },
    { prompt: "A red fox asleep in fresh snow, morning light", model: "doubao-seedream-4.5", size: "4:3" },
    { prompt: "Neon city street in the rain, cinematic", model: "z-image-turbo", size: "16:9" },
    { prompt: "A bowl of ramen on a wooden table, studio photo", model: "qwen-image-3.0", size: "1:1" },
    { prompt: "A vintage bicycle against a sunny yellow wall", model: "gemini-2.5-flash-image", size: "3:4" },
  ];
  await Promise.all(seeds.map((args) => callAsModel("generate_image", args)));

  step("the model opens the studio (show_images)");
  const galleryArgs = { limit: 12 };
  const gallery = await callAsModel("show_images", galleryArgs);
  const lighthouse = gallery.structuredContent.tasks.find((task) => task.prompt === seeds[0].prompt);
  report.lighthousePath = lighthouse.images[0].path; // what "Edit with this as reference" should send
  const { frame } = await mount("studio", galleryArgs, gallery);
  await imagesLoaded(".card .media img", seeds.length)(frame);
  await shot("gallery", "studio");

  step("opening the lighthouse at full size");
  await frame.locator(".card", { hasText: "lighthouse" }).click();
  await imagesLoaded("#full", 1)(frame);
  report.fullSize = await frame.evaluate(() => [document.getElementById("full").naturalWidth, document.getElementById("full").naturalHeight]);
  await frame.locator("#zoom-in").click();
  report.zoomLabel = await frame.locator("#zoom-level").textContent();
  await frame.locator("#zoom-fit").click();
  await shot("detail", "studio");

  step("variations");
  await frame.locator('[data-action="variations"]').click();
  await frame.locator("#panel button.primary").click();
  await imagesLoaded(".run[data-status=completed] .media img", 1)(frame);

  step("editing with the image as reference");
  await frame.locator('[data-action="edit"]').click();
  await frame.locator('#panel textarea[name="prompt"]').fill("the same lighthouse under a starry night sky");
  await frame.locator("#panel button.primary").click();
  await imagesLoaded(".run[data-status=completed] .media img", 2)(frame);

  step("painting a mask");
  await frame.locator('[data-action="mask"]').click();
  const canvas = frame.locator("#mask");
  await canvas.waitFor({ state: "visible", timeout: STEP_MS });
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.35);
  await page.mouse.down();
  for (const [x, y] of [[0.45, 0.3], [0.6, 0.4], [0.7, 0.35], [0.55, 0.5]]) {
    await page.mouse.move(box.x + box.width * x, box.y + box.height * y, { steps: 8 });
  }
  await page.mouse.up();
  await frame.locator('#panel textarea[name="prompt"]').fill("a red hot-air balloon drifting in the sky");
  await shot("mask", "studio");
  await frame.locator("#panel button.primary").click();
  await imagesLoaded(".run[data-status=completed] .media img", 3)(frame);

  step("comparing models");
  await frame.locator('[data-action="compare"]').click();
  await frame.locator('#panel input[value="z-image-turbo"]').check();
  await frame.locator('#panel input[name="cap"]').fill("50");
  const picked = await frame.locator('#panel input[name="models"]:checked').count();
  report.comparePicked = picked;
  await frame.locator("#panel button.primary").click();
  await imagesLoaded(".run[data-status=completed] .media img", 3 + picked)(frame);
  await frame.locator("#back").click();
  await shot("studio-runs", "studio");

  step("a generation still running when its result arrives: live status");
  const liveArgs = { prompt: "A paper boat on a calm lake, soft light", model: "gpt-image-2", wait_seconds: 0 };
  const live = await mount("live", liveArgs, await callAsModel("generate_image", liveArgs));
  report.liveFirstStatus = await live.frame.locator("#stage-note").textContent({ timeout: STEP_MS });
  await shot("live-running", "live");
  await imagesLoaded("#full", 1)(live.frame);
  report.liveFacts = await live.frame.locator("#facts").textContent();
  await shot("live-done", "live");
  report.ok = true;
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
  try {
    await page.screenshot({ path: join(config.out, "failure.png"), fullPage: true });
  } catch {}
} finally {
  writeFileSync(join(config.out, "report.json"), JSON.stringify(report, null, 2));
  await browser.close();
  await client.close();
  http.close();
}
process.exit(report.ok ? 0 : 1);
