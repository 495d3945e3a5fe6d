// The console's only way to the server: the public /v1 API (and /metrics, /health), with the
// key the user typed, kept in this tab's sessionStorage only (never a cookie or localStorage).

const KEY = "localbox.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (key) => (key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY)),
};

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** fetch with the key; JSON bodies in and out; an ApiError carrying the server's message. */
export async function request(path, { method = "GET", json, body, signal } = {}) {
  const headers = {};
  const key = apiKey.get();
  if (key) headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  const response = await fetch(path, {
    method, headers, body, signal, credentials: "omit", cache: "no-store",
  });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = null;
    try {
      const error = (await response.json()).error;
      if (error && typeof error.message === "string") message = error.message;
      code = error?.code ?? null;
    } catch {
      // not JSON: keep the status line
    }
    if (response.status === 401) window.dispatchEvent(new CustomEvent("localbox:needkey"));
    throw new ApiError(response.status, message, code);
  }
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

/** Every item of a cursor-paged list (bounded, so a huge list cannot hang the tab). */
export async function listAll(path, { limit = 100, maxPages = 20 } = {}) {
  const items = [];
  let after = null;
  for (let page = 0; page < maxPages; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const url = `${path}${sep}limit=${limit}` + (after ? `&after=${encodeURIComponent(after)}` : "");
    const body = await getJson(url);
    items.push(...body.data);
    if (!body.has_more || !body.data.length) break;
    after = body.last_id;
  }
  return items;
}

export const enc = encodeURIComponent;

/**
 * Server-sent events from a fetch response (EventSource cannot POST or send a key):
 * yields the JSON data of each event; comment lines (keepalives) are skipped.
 */
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

/** Save a response's bytes under a name, through a blob: URL (the key never goes in a URL). */
export async function download(path, name) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Prometheus text format: {'name{labels}': value}. */
export function parseMetrics(text) {
  const values = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return values;
}
