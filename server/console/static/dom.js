// DOM helpers. Everything shown may come from sandbox code or clients, so text goes in as
// text nodes (never markup), and images only as blob: URLs of raster types we name ourselves.

/** An element: h("td", {class: "num"}, "42"). Strings become text nodes; on* are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value" || name === "checked" || name === "disabled") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the console (hash route); the parts are encoded, so data cannot leave it. */
export function link(text, ...parts) {
  return h("a", { href: "#/" + parts.map(encodeURIComponent).join("/") }, text);
}

const RASTER = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const BY_EXTENSION = {
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp",
};

/** The raster type a file name claims, or null. */
export function rasterType(name) {
  const ext = name.split(".").pop().toLowerCase();
  return BY_EXTENSION[ext] || null;
}

/**
 * An <img> showing bytes as the given type, from a blob: URL. Only PNG, JPEG, GIF and WebP,
 * and SVG when asked for (an <img> never runs an SVG's scripts and loads nothing it links).
 */
export function imageFromBytes(bytes, mediaType, { allowSvg = false } = {}) {
  const type = String(mediaType).toLowerCase();
  if (!RASTER.has(type) && !(allowSvg && type === "image/svg+xml")) return null;
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const img = h("img", { alt: "" });
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  img.addEventListener("error", () => URL.revokeObjectURL(url), { once: true });
  img.src = url;
  return img;
}

/** base64 text to bytes (atob throws on anything else). */
export function base64Bytes(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** An <img> for a data: URL of a raster type, decoded here into a blob; null otherwise. */
export function imageFromDataUrl(url) {
  const match = /^data:(image\/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=\s]*)$/i.exec(String(url));
  if (!match) return null;
  try {
    return imageFromBytes(base64Bytes(match[2].replace(/\s/g, "")), match[1]);
  } catch {
    return null;
  }
}

/** Terminal colour codes (IPython's tracebacks carry them) removed. */
export function stripAnsi(text) {
  // eslint-disable-next-line no-control-regex
  return String(text).replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, "");
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function when(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}

export function ago(seconds) {
  if (!seconds) return "";
  return span(Date.now() / 1000 - seconds) + " ago";
}

export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Parse CSV (RFC 4180 quoting) into rows, up to maxRows. */
export function parseCsv(text, maxRows = 200, separator = ",") {
  const rows = [];
  let row = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === separator) { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if ((field || row.length) && rows.length < maxRows) { row.push(field); rows.push(row); }
  return rows;
}

/** A button that asks to be pressed twice (no dialogs), then runs action. */
export function confirmButton(label, action) {
  let armed = null;
  const button = h("button", { type: "button", class: "danger" }, label);
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = "Confirm";
      button.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
        button.classList.remove("armed");
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      button.textContent = label;
      button.classList.remove("armed");
    }
  });
  return button;
}
