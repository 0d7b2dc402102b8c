"use strict";
// The Evolink studio view. It talks to nothing but its host (MCP Apps: JSON-RPC over postMessage): every image
// comes from resources/read, every action is a tools/call the host forwards to the evolink-mcp server.
(() => {
  const PROTOCOL_VERSION = "2026-01-26";
  const RUNNING = new Set(["pending", "processing", "submitting"]);
  const MAX_COMPARE = 4;
  const $ = (id) => document.getElementById(id);

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) if (child != null && child !== false) node.append(child);
    return node;
  }

  // -- the host: requests with ids, notifications without ----------------------------------------------------
  const host = (() => {
    let next = 1;
    const pending = new Map();
    const listeners = new Map();
    const post = (message) => window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
    window.addEventListener("message", (event) => {
      const m = event.data;
      if (event.source !== window.parent || !m || m.jsonrpc !== "2.0") return;
      if (m.method === undefined) {
        const waiting = pending.get(m.id);
        if (!waiting) return;
        pending.delete(m.id);
        if (m.error) waiting.reject(new Error(m.error.message || "The host refused the request."));
        else waiting.resolve(m.result);
      } else if (m.id !== undefined) {
        if (m.method === "ping" || m.method === "ui/resource-teardown") post({ id: m.id, result: {} });
        else post({ id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } });
      } else {
        for (const listener of listeners.get(m.method) || []) listener(m.params || {});
      }
    });
    return {
      request(method, params) {
        const id = next++;
        return new Promise((resolve, reject) => {
          pending.set(id, { resolve, reject });
          post({ id, method, params });
        });
      },
      notify: (method, params) => post({ method, params }),
      on(method, listener) {
        listeners.set(method, [...(listeners.get(method) || []), listener]);
      },
    };
  })();

  class ToolFailure extends Error {
    constructor(message, data) {
      super(message);
      this.data = data;
    }
  }

  async function callTool(name, args) {
    const result = await host.request("tools/call", { name, arguments: args });
    const data = result.structuredContent || {};
    if (result.isError) {
      const error = data.error || {};
      const text = (result.content || []).find((block) => block.type === "text");
      throw new ToolFailure(error.message || (text && text.text) || `${name} failed.`, data);
    }
    return data;
  }

  // -- images: read through the host, a few at a time, each once --------------------------------------------
  const images = new Map();
  const queue = [];
  let reading = 0;
  function imageData(uri) {
    if (!images.has(uri)) {
      images.set(
        uri,
        new Promise((resolve, reject) => {
          queue.push({ uri, resolve, reject });
          pump();
        }),
      );
    }
    return images.get(uri);
  }
  function pump() {
    while (reading < 4 && queue.length) {
      const { uri, resolve, reject } = queue.shift();
      reading++;
      host
        .request("resources/read", { uri })
        .then((answer) => {
          const content = answer.contents[0];
          if (!content || !content.blob) throw new Error(`No image in ${uri}.`);
          resolve(`data:${content.mimeType || "image/png"};base64,${content.blob}`);
        })
        .catch((error) => {
          images.delete(uri);
          reject(error);
        })
        .finally(() => {
          reading--;
          pump();
        });
    }
  }
  function showImage(img, image) {
    if (!image || !image.resource_uri) return Promise.resolve(false);
    return imageData(image.resource_uri).then(
      (src) => {
        img.src = src;
        return img.decode().then(() => true, () => true);
      },
      () => false,
    );
  }

  // -- what the studio knows ----------------------------------------------------------------------------------
  const state = {
    tasks: new Map(),
    order: [],
    current: null,
    index: 0,
    zoom: null, // null: fit the stage
    models: null,
    cap: null,
    runs: [],
    pendingArgs: null,
    panel: null,
  };

  function remember(task) {
    if (!task || !task.task_id) return task;
    const known = state.tasks.get(task.task_id) || {};
    const merged = { ...known, ...Object.fromEntries(Object.entries(task).filter(([, v]) => v != null)) };
    if (!(task.images || []).length && known.images) merged.images = known.images;
    state.tasks.set(task.task_id, merged);
    return merged;
  }

  // A generate_image / check_task result as the studio's task shape (show_images / studio_tasks give it whole).
  function fromResult(data, args = {}) {
    return {
      task_id: data.task_id,
      status: data.status,
      progress: data.progress,
      eta: data.estimated_seconds_left,
      model: data.model || args.model,
      prompt: args.prompt,
      credits: data.credits_reserved,
      images: (data.images || [])
        .filter((image) => image.path)
        .map((image) => ({ path: image.path, resource_uri: image.resource_uri, mime_type: image.mime_type })),
      failure: data.error ? data.error.message : null,
    };
  }

  async function details(taskIds) {
    const ids = taskIds.filter(Boolean);
    if (!ids.length) return;
    try {
      const found = await callTool("studio_tasks", { task_ids: ids });
      for (const task of found.tasks) remember(task);
    } catch (error) {
      setStatus(`Could not read the task details: ${error.message}`, true);
    }
  }

  async function models() {
    if (!state.models) {
      state.models = callTool("list_models", {}).then(
        (answer) => answer.models,
        (error) => {
          state.models = null;
          throw error;
        },
      );
    }
    return state.models;
  }

  // -- status line ------------------------------------------------------------------------------------------
  function setStatus(text, bad = false) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("bad", bad);
  }
  const credits = (value) => (value == null ? null : `${+value.toFixed(2)} credits`);
  const seconds = (value) => (value == null ? null : `${value < 10 ? value.toFixed(1) : Math.round(value)} s`);
  function statusChip(task) {
    const status = task.status || "unknown";
    const kind = status === "completed" ? "ok" : status === "failed" ? "bad" : "plain";
    const progress = RUNNING.has(status) && task.progress != null ? ` ${Math.round(task.progress)}%` : "";
    return el("span", { class: `chip ${kind}`, text: status + progress });
  }
  function progressBar(task) {
    const bar = el("span");
    bar.style.width = `${Math.max(4, Math.min(100, task.progress || 0))}%`;
    return el("div", { class: "progress" }, bar);
  }

  // -- gallery ----------------------------------------------------------------------------------------------
  function card(task, extra = []) {
    const img = el("img", { alt: task.prompt || "generated image" });
    const media = el("div", { class: "media" });
    const first = (task.images || [])[0];
    if (first) {
      media.append(img);
      showImage(img, first).then((shown) => {
        if (!shown) media.append(el("div", { class: "placeholder", text: "Image not readable" }));
      });
      if (task.images.length > 1) media.append(el("span", { class: "count", text: `${task.images.length}` }));
    } else {
      const note = RUNNING.has(task.status) ? "Generating…" : task.failure ? "Failed" : "No saved image";
      media.append(el("div", { class: "placeholder", text: note }));
    }
    const chips = el(
      "div",
      { class: "chips" },
      task.model && el("span", { class: "chip", text: task.model }),
      task.status !== "completed" && statusChip(task),
      task.credits != null && el("span", { class: "chip plain", text: credits(task.credits) }),
    );
    return el(
      "button",
      {
        type: "button",
        class: "card",
        "data-task": task.task_id,
        "data-status": task.status,
        onclick: () => task.task_id && openTask(task.task_id),
      },
      media,
      el(
        "div",
        { class: "meta" },
        el("p", { class: "text", text: task.prompt || "(no prompt recorded)" }),
        chips,
        RUNNING.has(task.status) && progressBar(task),
        extra,
      ),
    );
  }

  function renderGallery() {
    const grid = $("grid");
    grid.replaceChildren(...state.order.map((id) => card(state.tasks.get(id))));
    $("empty").hidden = state.order.length > 0;
  }

  function show(view) {
    // What the studio started sits above the gallery, and below the image being looked at.
    $("gallery").before($("runs"));
    if (view === "detail") $("detail").after($("runs"));
    $("gallery").hidden = view !== "gallery";
    $("detail").hidden = view !== "detail";
    $("to-gallery").classList.toggle("on", view === "gallery");
    if (view === "gallery") renderGallery();
  }

  async function loadGallery() {
    setStatus("Loading recent generations…");
    try {
      takeGallery(await callTool("show_images", { limit: 24 }));
      show("gallery");
      setStatus(`${state.order.length} generation(s)`);
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  function takeGallery(data) {
    if (data.spending_cap != null) state.cap = data.spending_cap;
    const ids = data.tasks.map((task) => remember(task).task_id).filter(Boolean);
    const started = state.runs.map((run) => run.task && run.task.task_id).filter(Boolean);
    state.order = [...new Set([...started, ...ids])];
  }

  // -- one task, full size ------------------------------------------------------------------------------------
  function openTask(taskId, index = 0) {
    state.current = taskId;
    state.index = index;
    state.zoom = null;
    closePanel();
    renderDetail();
    show("detail");
  }

  function renderDetail() {
    const task = state.tasks.get(state.current);
    if (!task) return;
    $("prompt").textContent = task.prompt || "(no prompt recorded)";
    const facts = [
      ["Model", task.model],
      ["Status", statusChip(task)],
      ["Credits", credits(task.credits)],
      ...Object.entries(task.params || {})
        .filter(([key]) => key !== "image_urls" && key !== "mask_url")
        .map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]),
      ["References", (task.params && task.params.image_urls || []).length || null],
      ["Mask", task.params && task.params.mask_url ? "yes" : null],
      ["Task", task.task_id && el("code", { text: task.task_id })],
      ["Saved", (task.images || []).map((image) => el("div", {}, el("code", { text: image.path })))],
      ["Created", task.created && new Date(task.created).toLocaleString()],
      ["Failure", task.failure],
    ].filter(([, value]) => value != null && !(Array.isArray(value) && !value.length));
    $("facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", {}, value)]));

    const hasImage = (task.images || []).length > 0;
    for (const button of document.querySelectorAll("[data-action]")) {
      button.disabled = button.dataset.action !== "compare" && button.dataset.action !== "variations" ? !hasImage : false;
      button.disabled = button.disabled || !task.prompt;
    }

    const thumbs = $("thumbs");
    thumbs.replaceChildren(
      ...(task.images.length > 1 ? task.images : []).map((image, i) => {
        const img = el("img", { alt: `image ${i + 1}` });
        showImage(img, image);
        return el(
          "button",
          { type: "button", class: i === state.index ? "on" : "", onclick: () => openTask(task.task_id, i) },
          img,
        );
      }),
    );
    renderStage(task);
  }

  function renderStage(task) {
    const img = $("full");
    const note = $("stage-note");
    const image = (task.images || [])[state.index];
    $("mask").hidden = true;
    if (!image) {
      img.hidden = true;
      img.removeAttribute("src");
      const text = RUNNING.has(task.status)
        ? `${task.status}${task.progress != null ? ` · ${Math.round(task.progress)}%` : ""}${
            task.eta ? ` · about ${Math.round(task.eta)} s left` : ""
          }`
        : task.failure || "No saved image for this task.";
      note.replaceChildren(el("div", { text }), RUNNING.has(task.status) && progressBar(task));
      note.hidden = false;
      return;
    }
    note.hidden = true;
    img.hidden = false;
    if (img.dataset.uri !== image.resource_uri) {
      img.dataset.uri = image.resource_uri || "";
      img.removeAttribute("src");
      showImage(img, image).then(() => applyZoom());
    } else {
      applyZoom();
    }
  }

  function fitZoom() {
    const img = $("full");
    const stage = $("stage");
    if (!img.naturalWidth) return 1;
    return Math.min(1, (stage.clientWidth - 24) / img.naturalWidth, (stage.clientHeight - 24) / img.naturalHeight);
  }
  function applyZoom() {
    const img = $("full");
    if (!img.naturalWidth) return;
    const zoom = state.zoom ?? fitZoom();
    img.style.width = `${Math.round(img.naturalWidth * zoom)}px`;
    img.style.height = `${Math.round(img.naturalHeight * zoom)}px`;
    $("zoom-level").textContent = state.zoom == null ? `Fit ${Math.round(zoom * 100)}%` : `${Math.round(zoom * 100)}%`;
  }
  function zoomBy(factor) {
    state.zoom = Math.max(0.05, Math.min(8, (state.zoom ?? fitZoom()) * factor));
    applyZoom();
  }

  // -- running tasks from the studio: live status, time and cost ------------------------------------------------
  const done = (status) => !RUNNING.has(status);

  async function follow(task, args, onUpdate) {
    let current = task;
    while (current.task_id && !done(current.status)) {
      const data = await callTool("check_task", { task_id: current.task_id, wait_seconds: 15 });
      current = remember(fromResult(data, args));
      onUpdate(current);
    }
    return current;
  }

  function requestId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return `studio-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  async function run(label, args, group) {
    const job = { label, args, group, started: performance.now(), task: null, error: null, elapsed: null };
    state.runs.unshift(job);
    renderRuns();
    const update = (task) => {
      job.task = task;
      renderRuns();
      if (state.current === task.task_id && !$("detail").hidden) renderDetail();
    };
    try {
      // A click is a new image on purpose: its own request id, so the server's guard against an agent's
      // accidental repeat (the same request within EVOLINK_DEDUPE_SECONDS) does not hand back the earlier task.
      const data = await callTool("generate_image", { ...args, client_request_id: requestId(), wait_seconds: 20 });
      update(remember(fromResult(data, args)));
      await follow(job.task, args, update);
    } catch (error) {
      job.error = error.message;
      if (error.data && error.data.task_id) job.task = remember(fromResult(error.data, args));
    }
    job.elapsed = (performance.now() - job.started) / 1000;
    if (job.task) {
      await details([job.task.task_id]);
      job.task = state.tasks.get(job.task.task_id);
      state.order = [job.task.task_id, ...state.order.filter((id) => id !== job.task.task_id)];
    }
    renderRuns();
    if (!$("gallery").hidden) renderGallery();
    return job;
  }

  function runCard(job) {
    const task = job.task || { status: job.error ? "failed" : "submitting", model: job.args.model, prompt: job.args.prompt };
    const time = job.elapsed ?? (performance.now() - job.started) / 1000;
    const facts = el(
      "div",
      { class: "chips" },
      el("span", { class: "chip plain", text: job.elapsed == null ? `${seconds(time)} so far` : seconds(time) }),
    );
    const node = card({ ...task, model: task.model || job.args.model }, [facts, job.error && el("p", { class: "error", text: job.error })]);
    node.classList.add("run");
    return node;
  }

  function renderRuns() {
    const groups = [];
    for (const job of state.runs) {
      const group = groups.find((g) => g.key === job.group);
      if (group && job.group) group.jobs.push(job);
      else groups.push({ key: job.group, label: job.label, jobs: [job] });
    }
    $("run-list").replaceChildren(
      ...groups.slice(0, 6).map((group) => {
        const spent = group.jobs.reduce((sum, job) => sum + ((job.task && job.task.credits) || 0), 0);
        const label = group.key ? `${group.label} · ${group.jobs.length} models · ${credits(spent)}` : group.label;
        return el(
          "div",
          { class: "run-group" },
          el("div", { class: "label", text: label }),
          el("div", { class: "run-row" }, ...group.jobs.map(runCard)),
        );
      }),
    );
    $("runs").hidden = state.runs.length === 0;
  }

  // -- actions ------------------------------------------------------------------------------------------------
  function closePanel() {
    state.panel = null;
    $("panel").hidden = true;
    $("panel").replaceChildren();
    $("mask").hidden = true;
    for (const button of document.querySelectorAll("[data-action]")) button.classList.remove("on");
  }

  function modelSelect(list, selected) {
    const ids = list.map((model) => model.id);
    const chosen = ids.includes(selected) ? selected : ids[0];
    return el(
      "select",
      { name: "model" },
      list.map((model) => el("option", { value: model.id, selected: model.id === chosen, text: model.id })),
    );
  }

  // The task's own size and quality carry over when the model stays the same; a seed is new each time.
  function sameSettings(task, model, spec) {
    const args = {};
    if (model === task.model) {
      for (const key of ["size", "quality", "resolution"]) {
        if (typeof (task.params || {})[key] === "string") args[key] = task.params[key];
      }
    }
    if (spec && (spec.extra || []).includes("seed")) {
      args.extra = JSON.stringify({ seed: Math.floor(Math.random() * 2147483647) });
    }
    return args;
  }

  function submitButton(text) {
    return el("button", { type: "button", class: "primary", text });
  }

  async function openPanel(action) {
    const task = state.tasks.get(state.current);
    if (!task) return;
    if (state.panel === action) return closePanel();
    closePanel();
    state.panel = action;
    document.querySelector(`[data-action="${action}"]`).classList.add("on");
    const panel = $("panel");
    panel.hidden = false;
    panel.replaceChildren(el("p", { class: "hint", text: "Loading the models…" }));
    let list;
    try {
      list = await models();
    } catch (error) {
      panel.replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    if (state.panel !== action) return;
    const byId = new Map(list.map((model) => [model.id, model]));
    const image = task.images[state.index];
    const error = el("p", { class: "error" });
    // Not a <form>: a sandboxed view without allow-forms gets no submit event.
    const form = {
      get: (name) => (panel.querySelector(`[name="${name}"]`) || {}).value || "",
      getAll: (name) => [...panel.querySelectorAll(`[name="${name}"]:checked`)].map((input) => input.value),
      text(name, what) {
        const value = form.get(name).trim();
        if (!value) throw new Error(`Say ${what} first.`);
        return value;
      },
    };
    const go = (handler) => {
      const button = panel.querySelector("button.primary");
      button.onclick = async () => {
        button.disabled = true;
        error.textContent = "";
        try {
          await handler(form);
        } catch (failure) {
          error.textContent = failure.message;
        } finally {
          button.disabled = false;
        }
      };
    };

    if (action === "variations") {
      const choices = list.filter((model) => model.modes.includes("text-to-image"));
      panel.replaceChildren(
        el("label", {}, "Model", modelSelect(choices, task.model)),
        el("p", { class: "hint", text: "Same prompt; a new seed where the model takes one." }),
        submitButton("Make a variation"),
        error,
      );
      go(async (form) => {
        const model = form.get("model");
        run(`Variation · ${model}`, { prompt: task.prompt, model, ...sameSettings(task, model, byId.get(model)) });
      });
    } else if (action === "edit") {
      const choices = list.filter((model) => model.max_reference_images > 0);
      panel.replaceChildren(
        el("label", {}, "What to change", el("textarea", { name: "prompt", placeholder: task.prompt })),
        el("label", {}, "Model", modelSelect(choices, task.model)),
        submitButton("Edit with this image"),
        error,
      );
      go(async (form) => {
        const model = form.get("model");
        run(`Edit · ${model}`, { prompt: form.text("prompt", "what to change"), model, image_urls: [image.path] });
      });
    } else if (action === "compare") {
      const choices = list.filter((model) => model.modes.includes("text-to-image") && !model.beta);
      const picked = new Set([task.model, ...choices.filter((m) => m.default).map((m) => m.id)]);
      for (const model of choices) if (picked.size < 2) picked.add(model.id);
      const checks = el(
        "div",
        { class: "checks" },
        choices.map((model) =>
          el("label", {}, el("input", { type: "checkbox", name: "models", value: model.id, checked: picked.has(model.id) }), model.id),
        ),
      );
      panel.replaceChildren(
        el("p", { class: "hint", text: `The same prompt on up to ${MAX_COMPARE} models, side by side.` }),
        checks,
        el(
          "label",
          {},
          "Credit cap per call",
          el("input", { type: "number", name: "cap", min: "0.01", step: "any", value: state.cap ?? "", placeholder: "no cap" }),
        ),
        submitButton("Compare"),
        error,
      );
      go(async (form) => {
        const chosen = form.getAll("models");
        if (chosen.length < 2 || chosen.length > MAX_COMPARE) throw new Error(`Pick 2 to ${MAX_COMPARE} models.`);
        const cap = parseFloat(form.get("cap"));
        const group = `compare-${Date.now()}`;
        for (const model of chosen) {
          const args = { prompt: task.prompt, model, ...sameSettings(task, model, byId.get(model)) };
          if (cap > 0) args.max_credits = cap;
          run(`Compare “${task.prompt.slice(0, 48)}”`, args, group);
        }
      });
    } else if (action === "mask") {
      const choices = list.filter((model) => model.mask);
      const brush = el("input", { type: "range", name: "brush", min: "4", max: "160", value: "48" });
      panel.replaceChildren(
        el("p", { class: "hint", text: "Paint over what should change, then describe it." }),
        el("div", { class: "row" }, el("label", {}, "Brush", brush), el("button", { type: "button", class: "ghost", text: "Clear", onclick: () => startMask(brush) })),
        el("label", {}, "What to paint in", el("textarea", { name: "prompt" })),
        el("label", {}, "Model", modelSelect(choices, task.model)),
        submitButton("Apply masked edit"),
        error,
      );
      startMask(brush);
      go(async (form) => {
        if (!state.maskPainted) throw new Error("Paint over part of the image first.");
        const prompt = form.text("prompt", "what to paint in");
        const mask = maskPng();
        setStatus("Uploading the mask…");
        const upload = await callTool("upload_file", { base64_data: mask, file_name: `mask-${task.task_id}.png` });
        setStatus("");
        const model = form.get("model");
        run(`Masked edit · ${model}`, {
          prompt,
          model,
          image_urls: [image.path],
          mask_url: upload.file_url,
        });
      });
    }
  }

  // -- mask painting: strokes on a canvas the image's own size -------------------------------------------------
  function startMask(brush) {
    const img = $("full");
    const canvas = $("mask");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.hidden = false;
    state.maskPainted = false;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    let last = null;
    const at = (event) => {
      const box = canvas.getBoundingClientRect();
      return [((event.clientX - box.left) * canvas.width) / box.width, ((event.clientY - box.top) * canvas.height) / box.height];
    };
    const paint = (event) => {
      if (last == null) return;
      const point = at(event);
      const scale = canvas.width / canvas.getBoundingClientRect().width;
      ctx.strokeStyle = "#ff3b6b";
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.lineWidth = Number(brush.value) * scale;
      ctx.beginPath();
      ctx.moveTo(...last);
      ctx.lineTo(...point);
      ctx.stroke();
      last = point;
      state.maskPainted = true;
    };
    canvas.onpointerdown = (event) => {
      canvas.setPointerCapture(event.pointerId);
      last = at(event);
      paint(event);
    };
    canvas.onpointermove = paint;
    canvas.onpointerup = canvas.onpointercancel = () => {
      last = null;
    };
  }

  // The edit-mask convention: opaque where the image stays, transparent where the model paints.
  function maskPng() {
    const strokes = $("mask");
    const out = el("canvas");
    out.width = strokes.width;
    out.height = strokes.height;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.globalCompositeOperation = "destination-out";
    ctx.drawImage(strokes, 0, 0);
    return out.toDataURL("image/png");
  }

  // -- what the host sends -----------------------------------------------------------------------------------
  function onToolInput(params) {
    state.pendingArgs = params.arguments || {};
    if (state.pendingArgs.prompt) setStatus(`Generating: ${state.pendingArgs.prompt.slice(0, 60)}…`);
  }

  async function onToolResult(result) {
    const data = result.structuredContent || {};
    if (Array.isArray(data.tasks)) {
      takeGallery(data);
      show("gallery");
      setStatus(`${state.order.length} generation(s)`);
      return;
    }
    if (!data.task_id) {
      const text = (result.content || []).find((block) => block.type === "text");
      setStatus(text ? text.text.split("\n")[0] : "Nothing to show.", true);
      return;
    }
    const args = state.pendingArgs || {};
    let task = remember(fromResult(data, args));
    state.order = [task.task_id, ...state.order.filter((id) => id !== task.task_id)];
    openTask(task.task_id);
    setStatus(done(task.status) ? "" : "Following the task…");
    try {
      task = await follow(task, args, () => renderDetail());
      await details([task.task_id]);
      setStatus("");
    } catch (error) {
      setStatus(error.message, true);
    }
    if (state.current === task.task_id) renderDetail();
  }

  function applyContext(context) {
    if (context.theme) document.documentElement.classList.toggle("dark", context.theme === "dark");
  }

  // -- wiring -------------------------------------------------------------------------------------------------
  $("to-gallery").onclick = () => (state.order.length ? show("gallery") : loadGallery());
  $("refresh").onclick = loadGallery;
  $("back").onclick = () => show("gallery");
  $("zoom-in").onclick = () => zoomBy(1.25);
  $("zoom-out").onclick = () => zoomBy(0.8);
  $("zoom-fit").onclick = () => {
    state.zoom = null;
    applyZoom();
  };
  $("zoom-actual").onclick = () => {
    state.zoom = 1;
    applyZoom();
  };
  $("stage").addEventListener(
    "wheel",
    (event) => {
      if (!event.ctrlKey || $("full").hidden) return;
      event.preventDefault();
      zoomBy(event.deltaY < 0 ? 1.1 : 0.9);
    },
    { passive: false },
  );
  $("full").ondblclick = () => {
    state.zoom = state.zoom == null ? 1 : null;
    applyZoom();
  };
  for (const button of document.querySelectorAll("[data-action]")) {
    button.onclick = () => openPanel(button.dataset.action);
  }
  setInterval(() => state.runs.some((job) => job.elapsed == null) && renderRuns(), 1000);

  let reported = 0;
  new ResizeObserver(() => {
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== reported) {
      reported = height;
      host.notify("ui/notifications/size-changed", { height });
    }
  }).observe(document.documentElement);

  host.on("ui/notifications/tool-input", onToolInput);
  host.on("ui/notifications/tool-result", onToolResult);
  host.on("ui/notifications/host-context-changed", applyContext);
  host.on("ui/notifications/tool-cancelled", () => setStatus("The call was cancelled.", true));
  host
    .request("ui/initialize", {
      appInfo: { name: "evolink-studio", version: "1.0.0" },
      appCapabilities: { availableDisplayModes: ["inline"] },
      protocolVersion: PROTOCOL_VERSION,
    })
    .then((answer) => {
      applyContext(answer.hostContext || {});
      host.notify("ui/notifications/initialized", {});
    })
    .catch((error) => setStatus(`The host did not start the studio: ${error.message}`, true));
})();
