// localbox console: hash-routed views over the public API. Every value from the server is
// shown as text (see dom.js); nothing here builds markup from strings.

import { ApiError, apiKey, download, enc, events, getJson, listAll, parseMetrics, request }
  from "./api.js";
import {
  ago, base64Bytes, bytes, confirmButton, fill, h, imageFromBytes, imageFromDataUrl, link,
  parseCsv, rasterType, span, stripAnsi, when,
} from "./dom.js";
import { zipEntries, zipMember } from "./zip.js";

const view = document.getElementById("view");
const notice = document.getElementById("notice");
const REFRESH_MS = 5000;
const MEMORY_LIMITS = ["1g", "4g", "16g", "64g"];
const PREVIEW_TEXT_BYTES = 256 * 1024;

// What the current view started (timers, streams) ends when the route changes.
let routeController = new AbortController();
function every(ms, fn) {
  const timer = setInterval(fn, ms);
  routeController.signal.addEventListener("abort", () => clearInterval(timer));
}

function say(message, kind = "error") {
  notice.textContent = message;
  notice.className = kind === "info" ? "info" : "";
  notice.hidden = !message;
}

function failed(error) {
  if (error?.name === "AbortError") return;
  const text = error instanceof ApiError ? error.message : String(error?.message || error);
  say(error?.status === 401 ? `${text} Enter an API key above.` : text);
}

/** Run an action, showing its error in the notice bar instead of throwing. */
async function attempt(fn) {
  try {
    say("");
    return await fn();
  } catch (error) {
    failed(error);
    return undefined;
  }
}

// ---- the key ---------------------------------------------------------------------------

const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  apiKey.set(keyInput.value.trim());
  keyInput.value = "";
  keyInput.placeholder = apiKey.get() ? "key set for this tab" : "kept for this tab only";
  say("");
  route();
});
document.getElementById("forget-key").addEventListener("click", () => {
  apiKey.set("");
  keyInput.placeholder = "kept for this tab only";
  route();
});
if (apiKey.get()) keyInput.placeholder = "key set for this tab";
window.addEventListener("localbox:needkey", () => keyInput.focus());

// ---- containers ------------------------------------------------------------------------

function expiresIn(container) {
  const minutes = container.expires_after?.minutes;
  if (container.status !== "running" || !minutes) return container.status === "running" ? "" : "—";
  const left = (container.last_active_at || container.created_at) + minutes * 60 - Date.now() / 1000;
  return left > 0 ? span(left) : "due";
}

async function containersView() {
  const name = h("input", { name: "name", placeholder: "name", required: true });
  const memory = h("select", { name: "memory_limit" },
    MEMORY_LIMITS.map((m) => h("option", { value: m }, m)));
  const domains = h("input", {
    name: "allowed_domains", placeholder: "allowed domains, comma-separated", class: "hidden",
  });
  const network = h("select", {
    name: "network_policy",
    onchange: () => domains.classList.toggle("hidden", network.value !== "allowlist"),
  }, h("option", { value: "disabled" }, "network disabled"),
  h("option", { value: "allowlist" }, "allowlist"));
  const create = h("form", {
    class: "card row", id: "create-container",
    onsubmit: (event) => {
      event.preventDefault();
      attempt(async () => {
        const policy = network.value === "allowlist"
          ? {
            type: "allowlist",
            allowed_domains: domains.value.split(",").map((d) => d.trim()).filter(Boolean),
          }
          : { type: "disabled" };
        const button = create.querySelector("button");
        button.disabled = true;
        try {
          const container = await getJson("/v1/containers", {
            method: "POST",
            json: { name: name.value, memory_limit: memory.value, network_policy: policy },
          });
          location.hash = `#/containers/${enc(container.id)}`;
        } finally {
          button.disabled = false;
        }
      });
    },
  }, h("strong", {}, "New container"), name, memory, network, domains,
  h("button", { type: "submit", class: "primary" }, "Create"));

  const body = h("tbody");
  const table = h("table", { id: "containers" },
    h("thead", {}, h("tr", {}, ["Name", "Id", "Status", "Memory", "Created", "Last active",
      "Expires in", ""].map((t) => h("th", {}, t)))), body);
  const updated = h("p", { class: "muted" });
  fill(view, h("h1", {}, "Containers"), create, table, updated);

  async function refresh() {
    const containers = await listAll("/v1/containers");
    fill(body, containers.map((c) => h("tr", { "data-id": c.id },
      h("td", {}, link(c.name || c.id, "containers", c.id)),
      h("td", { class: "mono" }, c.id),
      h("td", { class: `status-${c.status}` }, c.status),
      h("td", {}, c.memory_limit || ""),
      h("td", {}, when(c.created_at)),
      h("td", {}, ago(c.last_active_at)),
      h("td", {}, expiresIn(c)),
      h("td", {}, confirmButton("Delete", () => attempt(async () => {
        await request(`/v1/containers/${enc(c.id)}`, { method: "DELETE" });
        await refresh();
      }))),
    )));
    if (!containers.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No containers.")));
    updated.textContent = `${containers.length} containers · refreshed ${new Date().toLocaleTimeString()}`;
  }
  every(REFRESH_MS, () => attempt(refresh));
  await attempt(refresh);
}

// ---- one container: files, preview, cells ------------------------------------------------

// The cells run in each container stay for the tab's session, across views.
const cellsByContainer = new Map();

function fileName(path) {
  return path.replace(/^\/mnt\/data\//, "");
}

/** Show a file's content in `target`: raster or SVG images as <img>, CSV as a table, text. */
async function preview(target, path, name, size) {
  fill(target, h("p", { class: "muted" }, `Loading ${name}…`));
  const response = await request(path);
  const lower = name.toLowerCase();
  const type = rasterType(lower) || (lower.endsWith(".svg") ? "image/svg+xml" : null);
  if (type) {
    const img = imageFromBytes(await response.arrayBuffer(), type, { allowSvg: true });
    fill(target, h("h3", {}, name), img);
    return;
  }
  const buffer = await response.arrayBuffer();
  const head = new Uint8Array(buffer, 0, Math.min(buffer.byteLength, PREVIEW_TEXT_BYTES));
  if (head.includes(0)) {
    fill(target, h("h3", {}, name), h("p", { class: "muted" }, `Binary file, ${bytes(size)}.`));
    return;
  }
  const text = new TextDecoder().decode(head);
  const cut = buffer.byteLength > head.length ? `(first ${bytes(head.length)} shown)` : "";
  if (lower.endsWith(".csv") || lower.endsWith(".tsv")) {
    const rows = parseCsv(text, 201, lower.endsWith(".tsv") ? "\t" : ",");
    const [header = [], ...rest] = rows;
    fill(target, h("h3", {}, name), h("table", { class: "csv" },
      h("thead", {}, h("tr", {}, header.map((cell) => h("th", {}, cell)))),
      h("tbody", {}, rest.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell)))))),
    rows.length > 200 ? h("p", { class: "muted" }, "First 200 rows shown.") : null);
    return;
  }
  fill(target, h("h3", {}, name), h("pre", { class: "text" }, text), cut && h("p", { class: "muted" }, cut));
}

async function containerView(id) {
  const base = `/v1/containers/${enc(id)}`;
  const title = h("h1", {}, id);
  const facts = h("p", { class: "muted" });
  const files = h("tbody");
  const previewBox = h("div", { class: "preview card", id: "preview" },
    h("p", { class: "muted" }, "Pick a file to preview it."));
  const picker = h("input", { type: "file", multiple: true, id: "upload" });
  const drop = h("div", { class: "dropzone", id: "dropzone" }, "Drop files here, or ", picker);
  const cells = h("div", { id: "cells" });
  const deleteButton = confirmButton("Delete container", () => attempt(async () => {
    await request(base, { method: "DELETE" });
    location.hash = "#/containers";
  }));
  fill(view, h("p", {}, link("← Containers", "containers")),
    h("div", { class: "row" }, title, deleteButton), facts,
    h("div", { class: "split" },
      h("section", {}, h("h2", {}, "Files in /mnt/data"), drop,
        h("table", { id: "files" }, h("thead", {}, h("tr", {},
          ["Path", "Size", "Source", "Created", ""].map((t) => h("th", {}, t)))), files)),
      h("section", {}, h("h2", {}, "Preview"), previewBox)),
    h("h2", {}, "Run code"), cells);

  async function loadContainer() {
    const c = await getJson(base);
    title.textContent = c.name || c.id;
    facts.textContent = `${c.id} · ${c.status} · memory ${c.memory_limit || "?"} · network ` +
      `${c.network_policy?.type || "disabled"} · created ${when(c.created_at)} · expires in ${expiresIn(c)}`;
  }

  async function loadFiles() {
    const list = await listAll(`${base}/files`);
    fill(files, list.map((f) => {
      const name = fileName(f.path);
      const content = `${base}/files/${enc(f.id)}/content`;
      return h("tr", { "data-path": f.path },
        h("td", {}, h("a", {
          href: "#", class: "preview-link",
          onclick: (event) => {
            event.preventDefault();
            attempt(() => preview(previewBox, content, name, f.bytes));
          },
        }, name)),
        h("td", { class: "num" }, bytes(f.bytes)),
        h("td", {}, f.source),
        h("td", {}, when(f.created_at)),
        h("td", { class: "row" },
          h("button", { type: "button", class: "download", onclick: () => attempt(() => download(content, name.split("/").pop())) }, "Download"),
          confirmButton("Delete", () => attempt(async () => {
            await request(`${base}/files/${enc(f.id)}`, { method: "DELETE" });
            await loadFiles();
          }))));
    }));
    if (!list.length) files.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No files.")));
  }

  async function upload(fileList) {
    for (const file of fileList) {
      const form = new FormData();
      form.append("file", file, file.name);
      say(`Uploading ${file.name}…`, "info");
      await request(`${base}/files`, { method: "POST", body: form });
    }
    say("");
    await loadFiles();
  }
  picker.addEventListener("change", () => attempt(async () => {
    await upload([...picker.files]);
    picker.value = "";
  }));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    attempt(() => upload([...event.dataTransfer.files]));
  });

  if (!cellsByContainer.has(id)) cellsByContainer.set(id, []);
  const history = cellsByContainer.get(id);
  for (const cell of history) cells.append(cell);
  cells.append(newCell(base, history, cells, () => attempt(loadFiles)));

  await attempt(async () => {
    await loadContainer();
    await loadFiles();
  });
}

/** An editor cell; Run streams the exec call's events into an output area under it. */
function newCell(base, history, cells, afterRun) {
  const code = h("textarea", { class: "code", spellcheck: "false", placeholder: "print('hello')" });
  const language = h("select", { class: "language" },
    h("option", { value: "python" }, "Python"), h("option", { value: "bash" }, "bash"));
  const run = h("button", { type: "button", class: "primary run" }, "Run");
  const cell = h("div", { class: "cell editing" }, code, h("div", { class: "row" }, language, run,
    h("span", { class: "muted" }, "Ctrl+Enter runs")));
  code.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run.click();
    }
  });
  run.addEventListener("click", () => {
    if (!code.value.trim()) return;
    const done = runCell(base, code.value, language.value);
    history.push(done.element);
    cell.before(done.element);
    code.value = "";
    done.finished.then(afterRun);
  });
  return cell;
}

function runCell(base, source, language) {
  const status = h("span", { class: "status" }, "running…");
  const output = h("div", { class: "output" });
  const element = h("div", { class: "cell ran running" },
    h("div", { class: "meta" }, `${language} · `, status),
    h("pre", { class: "source" }, source), output);
  let stream = null;
  function text(kind, chunk) {
    // Consecutive chunks of one stream grow one block, so output reads as it was printed.
    if (!stream || stream.dataset.kind !== kind) {
      stream = h("pre", { class: kind, "data-kind": kind });
      output.append(stream);
    }
    stream.append(chunk);
  }
  const finished = (async () => {
    try {
      const response = await request(`${base}/exec`, {
        method: "POST", json: { code: source, language, stream: true },
      });
      for await (const event of events(response)) {
        if (event.type === "stdout" || event.type === "stderr") text(event.type, event.text);
        else if (event.type === "image") {
          stream = null;
          let img = null;
          try {
            img = imageFromBytes(base64Bytes(event.data), event.media_type);
          } catch {
            img = null;
          }
          output.append(img ? h("div", { class: "figure" }, img)
            : h("p", { class: "muted" }, `(an image of type ${event.media_type} is not shown)`));
        } else if (event.type === "done") {
          stream = null;
          finish(event);
        }
      }
    } catch (error) {
      status.textContent = "failed";
      output.append(h("pre", { class: "traceback" }, String(error?.message || error)));
      failed(error);
    } finally {
      element.classList.remove("running");
    }
  })();

  function finish(result) {
    status.textContent = `${result.status} · ${result.duration_ms} ms` +
      (result.exit_code !== null && result.exit_code !== undefined ? ` · exit ${result.exit_code}` : "") +
      (result.state_preserved === false ? " · state lost" : "");
    element.classList.add(`status-${result.status}`);
    if (result.error) {
      const err = result.error;
      const trace = err.traceback ? stripAnsi(err.traceback) : `${err.name}: ${err.value}`;
      output.append(h("pre", { class: "traceback" }, trace));
    }
    if (result.files?.length) {
      output.append(h("p", { class: "muted files" }, "Files written: ",
        result.files.map((f) => fileName(f.path || f.id || "")).join(", ")));
    }
  }
  return { element, finished };
}

// ---- Files API -------------------------------------------------------------------------

async function filesView() {
  const body = h("tbody");
  const picker = h("input", { type: "file", id: "file-upload" });
  const purpose = h("select", { id: "purpose" },
    ["assistants", "user_data", "batch", "fine-tune", "vision", "evals"]
      .map((p) => h("option", { value: p }, p)));
  const form = h("form", {
    class: "card row",
    onsubmit: (event) => {
      event.preventDefault();
      attempt(async () => {
        if (!picker.files.length) return;
        const data = new FormData();
        data.append("purpose", purpose.value);
        data.append("file", picker.files[0], picker.files[0].name);
        await request("/v1/files", { method: "POST", body: data });
        picker.value = "";
        await refresh();
      });
    },
  }, h("strong", {}, "Upload"), picker, purpose, h("button", { type: "submit", class: "primary" }, "Upload"));
  fill(view, h("h1", {}, "Files"), form, h("table", { id: "files-api" },
    h("thead", {}, h("tr", {}, ["Name", "Id", "Purpose", "Size", "Created", "Expires", ""]
      .map((t) => h("th", {}, t)))), body));

  async function refresh() {
    const { data } = await getJson("/v1/files");
    fill(body, data.map((f) => h("tr", { "data-id": f.id },
      h("td", {}, f.filename),
      h("td", { class: "mono" }, f.id),
      h("td", {}, f.purpose),
      h("td", { class: "num" }, bytes(f.bytes)),
      h("td", {}, when(f.created_at)),
      h("td", {}, f.expires_at ? when(f.expires_at) : "never"),
      h("td", { class: "row" },
        h("button", { type: "button", onclick: () => attempt(() => download(`/v1/files/${enc(f.id)}/content`, f.filename)) }, "Download"),
        confirmButton("Delete", () => attempt(async () => {
          await request(`/v1/files/${enc(f.id)}`, { method: "DELETE" });
          await refresh();
        }))))));
    if (!data.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No files.")));
  }
  await attempt(refresh);
}

// ---- skills ----------------------------------------------------------------------------

async function skillsView() {
  const body = h("tbody");
  const folder = h("input", { type: "file", id: "skill-folder", webkitdirectory: true });
  const zip = h("input", { type: "file", id: "skill-zip", accept: ".zip,application/zip" });
  async function upload(form) {
    await request("/v1/skills", { method: "POST", body: form });
    folder.value = "";
    zip.value = "";
    await refresh();
  }
  folder.addEventListener("change", () => attempt(() => {
    const form = new FormData();
    for (const file of folder.files) form.append("files[]", file, file.webkitRelativePath || file.name);
    return upload(form);
  }));
  zip.addEventListener("change", () => attempt(() => {
    const form = new FormData();
    form.append("files", zip.files[0], zip.files[0].name);
    return upload(form);
  }));
  fill(view, h("h1", {}, "Skills"),
    h("div", { class: "card row" }, h("strong", {}, "Upload a skill"),
      h("label", {}, "folder ", folder), h("label", {}, "or zip ", zip)),
    h("table", { id: "skills" }, h("thead", {}, h("tr", {},
      ["Name", "Description", "Id", "Default", "Latest", "Created", ""].map((t) => h("th", {}, t)))), body));

  async function refresh() {
    const skills = await listAll("/v1/skills");
    fill(body, skills.map((s) => h("tr", { "data-id": s.id },
      h("td", {}, link(s.name, "skills", s.id)),
      h("td", {}, s.description),
      h("td", { class: "mono" }, s.id),
      h("td", {}, s.default_version),
      h("td", {}, s.latest_version),
      h("td", {}, when(s.created_at)),
      h("td", {}, confirmButton("Delete", () => attempt(async () => {
        await request(`/v1/skills/${enc(s.id)}`, { method: "DELETE" });
        await refresh();
      }))))));
    if (!skills.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No skills.")));
  }
  await attempt(refresh);
}

async function skillView(id) {
  const base = `/v1/skills/${enc(id)}`;
  const versions = h("tbody");
  const filesBox = h("div", { class: "card", id: "skill-files" },
    h("p", { class: "muted" }, "Pick a version to see its files."));
  const title = h("h1", {}, id);
  const about = h("p", {});
  fill(view, h("p", {}, link("← Skills", "skills")), title, about,
    h("h2", {}, "Versions"),
    h("table", { id: "versions" }, h("thead", {}, h("tr", {},
      ["Version", "Name", "Description", "Created", ""].map((t) => h("th", {}, t)))), versions),
    h("h2", {}, "Files"), filesBox);

  async function showFiles(version) {
    const path = `${base}/versions/${enc(version)}/content`;
    const buffer = await (await request(path)).arrayBuffer();
    const entries = zipEntries(buffer).filter((e) => !e.name.endsWith("/"));
    const shown = h("div", { class: "preview" });
    fill(filesBox, h("div", { class: "row" }, h("strong", {}, `Version ${version}`),
      h("button", { type: "button", onclick: () => attempt(() => download(path, `${id}-${version}.zip`)) }, "Download zip")),
    h("table", {}, h("tbody", {}, entries.map((e) => h("tr", {},
      h("td", {}, h("a", {
        href: "#", onclick: (event) => {
          event.preventDefault();
          attempt(async () => {
            const data = await zipMember(buffer, e);
            const type = rasterType(e.name);
            const img = type && imageFromBytes(data, type);
            fill(shown, h("h3", {}, e.name), img || (data.slice(0, 4096).includes(0)
              ? h("p", { class: "muted" }, "Binary file.")
              : h("pre", {}, new TextDecoder().decode(data.slice(0, PREVIEW_TEXT_BYTES)))));
          });
        },
      }, e.name)),
      h("td", { class: "num" }, bytes(e.size)))))), shown);
  }

  async function refresh() {
    const skill = await getJson(base);
    title.textContent = skill.name;
    about.textContent = `${skill.description} · ${skill.id} · default version ${skill.default_version}`;
    const list = await listAll(`${base}/versions`);
    fill(versions, list.map((v) => h("tr", {},
      h("td", {}, v.version, v.version === skill.default_version ? " (default)" : ""),
      h("td", {}, v.name), h("td", {}, v.description), h("td", {}, when(v.created_at)),
      h("td", { class: "row" },
        h("button", { type: "button", onclick: () => attempt(() => showFiles(v.version)) }, "Files"),
        v.version === skill.default_version ? null : h("button", {
          type: "button",
          onclick: () => attempt(async () => {
            await request(base, { method: "POST", json: { default_version: v.version } });
            await refresh();
          }),
        }, "Make default")))));
  }
  await attempt(refresh);
}

// ---- responses -------------------------------------------------------------------------

// There is no list route for responses (the hosted API has none): the console shows the ones
// whose ids it was given in this tab.
const RESPONSES = "localbox.responses";
function knownResponses() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(RESPONSES) || "[]");
    return Array.isArray(ids) ? ids.filter((i) => typeof i === "string") : [];
  } catch {
    return [];
  }
}
function rememberResponse(id) {
  const ids = [id, ...knownResponses().filter((i) => i !== id)].slice(0, 50);
  sessionStorage.setItem(RESPONSES, JSON.stringify(ids));
}

function responsesView() {
  const input = h("input", { id: "response-id", placeholder: "resp_…", size: 40 });
  const known = knownResponses();
  fill(view, h("h1", {}, "Responses"),
    h("form", {
      class: "card row",
      onsubmit: (event) => {
        event.preventDefault();
        if (input.value.trim()) location.hash = `#/responses/${enc(input.value.trim())}`;
      },
    }, h("strong", {}, "Open a stored response"), input, h("button", { type: "submit", class: "primary" }, "Open")),
    h("p", { class: "muted" }, "localbox has no route that lists responses (nor has the hosted API); " +
      "the ones opened in this tab are kept below."),
    known.length ? h("ul", { id: "known-responses" }, known.map((id) => h("li", {}, link(id, "responses", id))))
      : h("p", { class: "muted" }, "None yet."));
}

function contentText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => (typeof part.text === "string" ? part.text : `[${part.type}]`)).join("\n");
}

function containerLink(containerId) {
  return containerId ? link(containerId, "containers", containerId) : "";
}

function citations(annotations) {
  const cited = (annotations || []).filter((a) => a.type === "container_file_citation");
  if (!cited.length) return null;
  return h("ul", { class: "citations" }, cited.map((a) => h("li", {},
    h("button", {
      type: "button",
      onclick: () => attempt(() => download(
        `/v1/containers/${enc(a.container_id)}/files/${enc(a.file_id)}/content`,
        String(a.filename).split("/").pop())),
    }, a.filename), " in ", containerLink(a.container_id))));
}

function renderItem(item) {
  const kind = String(item.type);
  const box = h("div", { class: `item ${kind.replace(/[^a-z_]/g, "")}` }, h("strong", {}, kind),
    item.status ? h("span", { class: "muted" }, ` · ${item.status}`) : null);
  if (kind === "message") {
    box.append(h("span", { class: "muted" }, ` · ${item.role}`));
    for (const part of Array.isArray(item.content) ? item.content : [item.content]) {
      box.append(h("pre", {}, contentText([part].flat())));
      if (part && typeof part === "object") {
        const list = citations(part.annotations);
        if (list) box.append(h("p", { class: "muted" }, "Files cited:"), list);
      }
    }
  } else if (kind === "code_interpreter_call") {
    box.append(h("span", { class: "muted" }, " · container "), containerLink(item.container_id),
      h("pre", { class: "source" }, item.code || ""));
    for (const output of item.outputs || []) {
      if (output.type === "logs") box.append(h("pre", {}, output.logs));
      else if (output.type === "image") {
        box.append(imageFromDataUrl(output.url) || h("p", { class: "muted" }, "(an image not shown)"));
      }
    }
  } else if (kind === "shell_call") {
    const env = item.environment || {};
    box.append(h("span", { class: "muted" }, " · container "), containerLink(env.container_id),
      h("pre", { class: "source" }, (item.action?.commands || []).join("\n")));
  } else if (kind === "shell_call_output") {
    for (const out of item.output || []) {
      if (out.stdout) box.append(h("pre", { class: "stdout" }, out.stdout));
      if (out.stderr) box.append(h("pre", { class: "stderr" }, out.stderr));
      if (out.outcome) {
        box.append(h("p", { class: "muted" }, out.outcome.type === "exit"
          ? `exit ${out.outcome.exit_code}` : String(out.outcome.type)));
      }
    }
  } else if (kind === "function_call") {
    box.append(h("span", {}, ` ${item.name}`), h("pre", {}, item.arguments));
  } else if (kind === "function_call_output") {
    box.append(h("pre", {}, typeof item.output === "string" ? item.output : JSON.stringify(item.output, null, 2)));
  } else {
    box.append(h("pre", {}, JSON.stringify(item, null, 2)));
  }
  return box;
}

async function responseView(id) {
  const base = `/v1/responses/${enc(id)}`;
  const signal = routeController.signal;
  fill(view, h("p", {}, link("← Responses", "responses")), h("h1", {}, id));
  await attempt(async () => {
    const response = await getJson(`${base}?include[]=code_interpreter_call.outputs`);
    rememberResponse(response.id);
    const inputs = await getJson(`${base}/input_items?order=asc&limit=100`);
    if (signal.aborted) return;
    view.append(
      h("p", { class: "muted" }, `${response.status} · model ${response.model} · ` +
        `created ${when(response.created_at)}` +
        (response.usage ? ` · ${response.usage.input_tokens} in, ${response.usage.output_tokens} out tokens` : "")),
      response.error ? h("pre", { class: "traceback" }, `${response.error.code}: ${response.error.message}`) : null,
      h("h2", {}, "Input"), h("div", { id: "input-items" }, inputs.data.map(renderItem)),
      h("h2", {}, "Output"), h("div", { id: "output-items" }, (response.output || []).map(renderItem)));
  });
}

// ---- status ----------------------------------------------------------------------------

function tile(title, big, detail, meter) {
  return h("div", { class: "card tile" }, h("div", { class: "muted" }, title),
    h("div", { class: "big" }, big), detail ? h("div", { class: "muted" }, detail) : null, meter || null);
}

function meterOf(value, max, low) {
  if (!max) return null;
  return h("meter", { min: 0, max, value, low, high: max * 0.9, optimum: 0 });
}

async function statusView() {
  const tiles = h("div", { class: "tiles", id: "status" });
  const updated = h("p", { class: "muted" });
  fill(view, h("h1", {}, "Status"), tiles, updated);
  async function refresh() {
    const healthResponse = await fetch("/health", { cache: "no-store", credentials: "omit" });
    const health = await healthResponse.json();
    const m = parseMetrics(await (await request("/metrics")).text());
    const get = (name) => m[name] ?? 0;
    const running = get('localbox_containers{status="running"}');
    const available = get("localbox_memory_available_bytes");
    const minFree = get("localbox_min_free_memory_bytes");
    const diskFree = get("localbox_disk_free_bytes");
    const minDisk = get("localbox_min_free_disk_bytes");
    const budget = get("localbox_memory_budget_bytes");
    const held = get("localbox_memory_limit_bytes");
    const filesBytes = get("localbox_files_bytes");
    const maxFiles = get("localbox_max_files_bytes");
    const maxContainers = get("localbox_max_containers");
    fill(tiles,
      tile("Health", health.status, Object.entries(health.checks || {}).map(([k, v]) => `${k} ${v}`).join(" · ")),
      tile("Running containers", String(running),
        `of ${maxContainers || "?"} allowed · ${get("localbox_sandboxes")} sandboxes on the engine`,
        meterOf(running, maxContainers)),
      tile("Warm pool", `${get("localbox_warm_pool_ready")} / ${get("localbox_warm_pool_size")}`,
        "spares ready / wanted"),
      tile("Memory headroom", bytes(Math.max(0, available - minFree)),
        `${bytes(available)} available, creates stop below ${bytes(minFree)}` +
          (budget ? ` · limits held ${bytes(held)} of ${bytes(budget)} budget` : ` · limits held ${bytes(held)}`)),
      tile("Disk headroom", bytes(Math.max(0, diskFree - minDisk)),
        `${bytes(diskFree)} free, uploads stop below ${bytes(minDisk)}`),
      tile("Files API", bytes(filesBytes), `of ${bytes(maxFiles)} allowed`, meterOf(filesBytes, maxFiles)));
    updated.textContent = `refreshed ${new Date().toLocaleTimeString()}`;
  }
  every(REFRESH_MS, () => attempt(refresh));
  await attempt(refresh);
}

// ---- routing ---------------------------------------------------------------------------

const ROUTES = [
  [/^#\/containers\/([^/]+)$/, containerView, "containers"],
  [/^#\/containers$/, containersView, "containers"],
  [/^#\/files$/, filesView, "files"],
  [/^#\/skills\/([^/]+)$/, skillView, "skills"],
  [/^#\/skills$/, skillsView, "skills"],
  [/^#\/responses\/([^/]+)$/, responseView, "responses"],
  [/^#\/responses$/, responsesView, "responses"],
  [/^#\/status$/, statusView, "status"],
];

function route() {
  routeController.abort();
  routeController = new AbortController();
  say("");
  const hash = location.hash || "#/containers";
  for (const [pattern, render, section] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("active", a.dataset.view === section);
    }
    const args = match.slice(1).map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
    render(...args);
    return;
  }
  location.hash = "#/containers";
}

window.addEventListener("hashchange", route);
route();
