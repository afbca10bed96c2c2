// GET /cdn-cgi/image/<options>/<source path>: Cloudflare's URL interface on top of the binding,
// with results kept in the Workers Cache API. The cache key is the source's version (R2 etag, or
// the etags of a composed image's parts), the canonical options and, for format=auto, the format
// chosen from Accept. Answers carry `imgbind-cache: hit|miss`.

import { negotiateFormat, parseOptions, splitImagePath } from "./url-options.js";
import { openSource, sourceVersion } from "./sources.js";

/** Host of the synthetic cache-key URLs (never fetched). */
const CACHE_KEY_ORIGIN = "https://imgbind-cache.invalid";

/** Results are immutable for their key (which holds the source version): cache them long. */
const CACHE_CONTROL = "public, max-age=31536000, immutable";

export async function urlInterface(images, request, env, ctx) {
  const url = new URL(request.url);
  const { optionsText, source } = splitImagePath(url.pathname);
  const { transform, output, autoFormat, canonical } = parseOptions(optionsText);
  const version = await sourceVersion(env, source);

  // The format: as asked, or chosen from Accept (auto, or none given: Cloudflare keeps the source
  // format then; a transcode to what the client accepts is the useful reading for a demo).
  const accept = request.headers.get("accept");
  const negotiated = output.format === null;
  const key = (format) =>
    new Request(`${CACHE_KEY_ORIGIN}/${encodeURIComponent(canonical)}/${encodeURIComponent(source)}?v=${encodeURIComponent(version)}&f=${format}`);

  const cache = caches.default;
  let format = output.format ?? negotiateFormat(accept, typeFromName(source));
  const cached = await cache.match(key(format));
  if (cached) return tagged(cached, "hit", negotiated);

  let response;
  try {
    response = await run(images, env, source, transform, { ...output, format });
  } catch (error) {
    // AVIF may be refused (9520) by a backend built without it: fall back to WebP, as Cloudflare
    // falls back when AVIF is not possible.
    if (!(negotiated && format === "image/avif" && error?.code === 9520)) throw error;
    format = "image/webp";
    const fallback = await cache.match(key(format));
    if (fallback) return tagged(fallback, "hit", negotiated);
    response = await run(images, env, source, transform, { ...output, format });
  }
  response.headers.set("cache-control", CACHE_CONTROL);
  if (negotiated || autoFormat) response.headers.set("vary", "accept");
  ctx.waitUntil(cache.put(key(format), response.clone()));
  return tagged(response, "miss", negotiated);
}

/** One binding call: the source (R2 or composed) through the parsed transform and output. */
async function run(images, env, source, transform, output) {
  const { stream } = await openSource(env, images, source);
  const result = await images.input(stream).transform(transform).output(output);
  return result.response();
}

function tagged(response, state, negotiated) {
  const answer = new Response(response.body, response);
  answer.headers.set("imgbind-cache", state);
  if (negotiated) answer.headers.set("vary", "accept");
  return answer;
}

/** The source's type from its name (composed sources are named with their format too). */
function typeFromName(path) {
  const extension = path.split(".").pop().toLowerCase();
  return { png: "image/png", gif: "image/gif", webp: "image/webp" }[extension] ?? "image/jpeg";
}
