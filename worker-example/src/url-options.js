// Cloudflare's URL interface, `/cdn-cgi/image/<options>/<source path>`, parsed into the same
// transform and output options the binding takes. Options are `key=value` pairs separated by
// commas, with Cloudflare's short names (w, h, q, f, g). Grammar and values as documented at
// developers.cloudflare.com/images/transform-images/transform-via-url/ (see docs/WORKERS.md).
//
// The URL interface applies its options in a fixed order (trim → flip → rotate → resize → filters →
// border), which is the order the backend applies the keys of one transform object in, so every
// option goes into a single `transform()`.

/** Path prefix of the URL interface. */
export const URL_PREFIX = "/cdn-cgi/image/";

/** Short names Cloudflare accepts. */
const ALIASES = { w: "width", h: "height", q: "quality", f: "format", g: "gravity" };

/** Output formats by their URL names. `auto` is resolved from the Accept header. */
const FORMATS = {
  avif: "image/avif",
  webp: "image/webp",
  jpeg: "image/jpeg",
  jpg: "image/jpeg",
  "baseline-jpeg": "image/jpeg",
  png: "image/png",
  gif: "image/gif",
};

/**
 * Cloudflare's named qualities. Cloudflare does not publish the numbers behind them; these are
 * imgbind's choice, spaced like the names (85 is Cloudflare's documented default).
 */
const NAMED_QUALITY = { high: 90, "medium-high": 80, "medium-low": 65, low: 50 };

/** Options that are plain numbers, passed to transform() as given. */
const NUMBER_OPTIONS = ["blur", "sharpen", "brightness", "contrast", "gamma", "saturation", "rotate"];

/** Options passed to transform() as strings; the backend validates their values (9401). */
const STRING_OPTIONS = ["fit", "background", "flip"];

/** A bad URL: 9401 with a message naming the option. */
export class UrlOptionsError extends Error {
  constructor(message) {
    super(message);
    this.code = 9401;
  }
}

/** Known URL options that imgbind does not implement: answered 9520, never ignored. */
const UNSUPPORTED = new Set(["segment", "upscale", "onerror", "compression", "slow-connection-quality", "scq", "zoom", "face-zoom"]);

/**
 * Splits `/cdn-cgi/image/<options>/<source>` into the options text and the source path.
 * Returns null when the path is not a URL-interface path.
 */
export function splitImagePath(pathname) {
  if (!pathname.startsWith(URL_PREFIX)) return null;
  const rest = pathname.slice(URL_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash <= 0) throw new UrlOptionsError("expected /cdn-cgi/image/<options>/<source path>");
  const source = decodeURIComponent(rest.slice(slash + 1)).replace(/^\/+/, "");
  if (!source) throw new UrlOptionsError("the source path is empty");
  return { optionsText: decodeURIComponent(rest.slice(0, slash)), source };
}

/**
 * Parses the options text. Returns `{ transform, output, autoFormat, canonical }`:
 * `transform` for `transform()`, `output` for `output()` (format left null for `auto` or when
 * none was given), and `canonical`, the options sorted and with full names (for cache keys).
 */
export function parseOptions(optionsText) {
  const values = new Map();
  for (const part of optionsText.split(",")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UrlOptionsError(`option "${part}" is not key=value`);
    const rawKey = part.slice(0, eq).trim().toLowerCase();
    const key = ALIASES[rawKey] ?? rawKey;
    const value = part.slice(eq + 1).trim();
    if (values.has(key)) throw new UrlOptionsError(`option "${key}" is given twice`);
    values.set(key, value);
  }

  const transform = {};
  const output = { format: null };
  let autoFormat = false;
  let dpr = 1;
  const trim = {};

  for (const [key, value] of values) {
    if (UNSUPPORTED.has(key)) {
      throw Object.assign(new Error(`URL option "${key}" is not supported by imgbind`), { code: 9520 });
    }
    if (key === "width" || key === "height") {
      if (value === "auto") {
        throw Object.assign(new Error(`${key}=auto (client hints) is not supported by imgbind`), { code: 9520 });
      }
      transform[key] = positiveNumber(key, value);
    } else if (NUMBER_OPTIONS.includes(key)) {
      transform[key] = number(key, value);
    } else if (STRING_OPTIONS.includes(key)) {
      transform[key] = value;
    } else if (key === "gravity") {
      transform.gravity = gravity(value);
    } else if (key === "trim") {
      if (value === "border") transform.trim = "border";
      else Object.assign(trim, trimSides(value));
    } else if (key.startsWith("trim.")) {
      trimOption(trim, key.slice("trim.".length), value);
    } else if (key === "border") {
      // border=<width>;<color> is not in Cloudflare's URL grammar; Workers-only. Kept out.
      throw new UrlOptionsError("border is a Workers-only option (cf.image / binding), not a URL option");
    } else if (key === "quality") {
      output.quality = NAMED_QUALITY[value] ?? positiveNumber(key, value);
    } else if (key === "format") {
      if (value === "auto") autoFormat = true;
      else if (FORMATS[value]) output.format = FORMATS[value];
      else throw new UrlOptionsError(`format "${value}": expected auto, avif, webp, jpeg, baseline-jpeg, png or gif`);
    } else if (key === "anim") {
      if (value !== "true" && value !== "false") throw new UrlOptionsError(`anim "${value}": expected true or false`);
      output.anim = value === "true";
    } else if (key === "dpr") {
      dpr = positiveNumber(key, value);
      if (dpr > 2) throw new UrlOptionsError(`dpr ${value}: at most 2`);
    } else if (key === "metadata") {
      // imgbind never copies metadata into its output (what `none` asks for); the other policies
      // cannot be honoured, so they are refused rather than ignored.
      if (value !== "none") {
        throw Object.assign(new Error(`metadata=${value} is not supported by imgbind (its output carries none)`), { code: 9520 });
      }
    } else {
      throw new UrlOptionsError(`unknown URL option "${key}"`);
    }
  }
  if (Object.keys(trim).length) {
    if (transform.trim === "border") throw new UrlOptionsError("trim=border and trim sides together");
    transform.trim = trim;
  }
  // dpr multiplies the requested size, as Cloudflare does.
  if (dpr !== 1) {
    for (const key of ["width", "height"]) if (transform[key] !== undefined) transform[key] = Math.round(transform[key] * dpr);
  }

  const canonical = [...values.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return { transform, output, autoFormat, canonical };
}

/**
 * The format for `format=auto` (or no format): AVIF, then WebP when the client's Accept header
 * lists them, else JPEG, or PNG for a source that may have alpha (PNG, GIF, WebP).
 */
export function negotiateFormat(accept, sourceType) {
  const accepts = (type) => (accept ?? "").split(",").some((item) => item.trim().split(";")[0].trim() === type);
  if (accepts("image/avif")) return "image/avif";
  if (accepts("image/webp")) return "image/webp";
  return ["image/png", "image/gif", "image/webp"].includes(sourceType) ? "image/png" : "image/jpeg";
}

function number(key, text) {
  const value = Number(text);
  if (text === "" || !Number.isFinite(value)) throw new UrlOptionsError(`${key} "${text}" is not a number`);
  return value;
}

function positiveNumber(key, text) {
  const value = number(key, text);
  if (value <= 0) throw new UrlOptionsError(`${key} ${text}: must be above 0`);
  return value;
}

/** `auto|face|left|right|top|bottom|center|entropy`, or `XxY` (fractions 0–1) as a point. */
function gravity(text) {
  const point = /^(\d*\.?\d+)x(\d*\.?\d+)$/.exec(text);
  if (point) return { x: Number(point[1]), y: Number(point[2]), mode: "remainder" };
  return text;
}

/** `trim=top;right;bottom;left` (pixels, CSS order). */
function trimSides(text) {
  const sides = text.split(";").map((side) => number("trim", side));
  if (sides.length !== 4) throw new UrlOptionsError(`trim "${text}": expected top;right;bottom;left`);
  const [top, right, bottom, left] = sides;
  return { top, right, bottom, left };
}

/** `trim.width`, `trim.height`, `trim.left`, `trim.top`, `trim.border.color|tolerance|keep`. */
function trimOption(trim, name, value) {
  if (["width", "height", "left", "top", "right", "bottom"].includes(name)) {
    trim[name] = number(`trim.${name}`, value);
  } else if (name === "border" && (value === "true" || value === "false")) {
    trim.border = value === "true";
  } else if (["border.color", "border.tolerance", "border.keep"].includes(name)) {
    const field = name.slice("border.".length);
    trim.border = typeof trim.border === "object" ? trim.border : {};
    trim.border[field] = field === "color" ? value : number(`trim.${name}`, value);
  } else {
    throw new UrlOptionsError(`unknown URL option "trim.${name}"`);
  }
}
