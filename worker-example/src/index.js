// The imgbind example Worker: Cloudflare's Images binding API, served by a self-hosted backend.
// Run it with `scripts/run.sh` (wrangler dev on http://127.0.0.1:8787), then for example:
//   curl --data-binary @photo.jpg 'http://127.0.0.1:8787/transform?width=800&format=image/webp' -o out.webp
//   curl 'http://127.0.0.1:8787/cdn-cgi/image/width=800,fit=cover,format=webp/photo-4mp-twowings.jpg' -o out.webp
//   open http://127.0.0.1:8787/playground
//
//   GET  /cdn-cgi/image/<options>/<source path>   Cloudflare's URL interface; sources from the R2
//        bucket IMAGES_BUCKET, or composed/<recipe> (JPEG + PNG overlays from R2, composed with the
//        binding); results cached with the Cache API (`imgbind-cache: hit|miss`)
//   GET  /playground                              a page to chain transforms/draws and see results
//   GET  /api/images                              the bucket's images (JSON), for the playground
//   POST /api/run                                 the playground's chain runner (multipart)
//   POST /transform?width=&height=&fit=&rotate=&flip=&format=&quality=   body: the image
//   POST /info                                                           body: the image -> JSON
//   POST /composite?top=&left=&bottom=&right=&opacity=&width=&overlayWidth=&format=&quality=
//        body: multipart/form-data with file fields `image` (the canvas) and `overlay`
//
// Errors the SDK throws (`e.code`, `e.message`, Cloudflare's 9xxx codes) become
// `{"error": {"code", "message"}}` with a matching HTTP status.

import { createImages } from "imgbind";
import PLAYGROUND_HTML from "./playground.html";
import { RequestError, STATUS_BY_CODE, errorResponse } from "./errors.js";
import { runChain } from "./playground.js";
import { SourceError, listImages } from "./sources.js";
import { URL_PREFIX } from "./url-options.js";
import { urlInterface } from "./url-interface.js";

/** Default output format when the request names none: keeps alpha, small, widely supported. */
const DEFAULT_FORMAT = "image/webp";

export default {
  async fetch(request, env, ctx) {
    // A service binding (tests) wins over the URL from wrangler.toml [vars] (wrangler dev).
    const images = createImages(env.IMAGES_BACKEND ?? env.IMGBIND_URL);
    const url = new URL(request.url);
    try {
      if (request.method === "GET" || request.method === "HEAD") {
        if (url.pathname === "/") return usage();
        if (url.pathname.startsWith(URL_PREFIX)) return await urlInterface(images, request, env, ctx);
        if (url.pathname === "/playground") {
          return new Response(PLAYGROUND_HTML, { headers: { "content-type": "text/html; charset=utf-8" } });
        }
        if (url.pathname === "/api/images") return Response.json(await listImages(env));
      }
      if (url.pathname === "/api/run" && request.method === "POST") return await runChain(images, request, env);
      const route = ROUTES[url.pathname];
      if (!route) return errorResponse(404, null, `no route ${request.method} ${url.pathname}`);
      if (request.method !== "POST") {
        return errorResponse(405, null, `${url.pathname} takes POST`, { allow: "POST" });
      }
      return await route(images, request, url.searchParams);
    } catch (error) {
      if (error instanceof SourceError) return errorResponse(error.status, null, error.message);
      if (typeof error?.code === "number") {
        return errorResponse(STATUS_BY_CODE[error.code] ?? 500, error.code, error.message);
      }
      throw error;
    }
  },
};

const ROUTES = {
  /** The body image through one transform, streamed back as it is encoded. */
  async "/transform"(images, request, query) {
    const result = await images
      .input(requireBody(request))
      .transform(transformOptions(query, ["width", "height", "fit", "rotate", "flip"]))
      .output(outputOptions(query));
    return result.response();
  },

  /** Format, size in bytes and dimensions of the body image. */
  async "/info"(images, request) {
    return Response.json(await images.info(requireBody(request)));
  },

  /** `overlay` drawn onto `image`, placed by top/left/bottom/right (centred when none is given). */
  async "/composite"(images, request, query) {
    let form;
    try {
      form = await request.formData();
    } catch {
      throw new RequestError(9401, "expected multipart/form-data with file fields `image` and `overlay`");
    }
    const base = formFile(form, "image");
    const overlay = formFile(form, "overlay");

    const overlayTransformer = images
      .input(overlay.stream())
      .transform(transformOptions(query, [], { overlayWidth: "width", overlayHeight: "height" }));
    const result = await images
      .input(base.stream())
      .transform(transformOptions(query, ["width", "height", "fit"]))
      .draw(overlayTransformer, drawOptions(query))
      .output(outputOptions(query));
    return result.response();
  },
};

/**
 * Picks the named query parameters (and renamed ones: `{query name: option name}`) into an options
 * object. Numbers become numbers; anything else is passed on as given, so that the backend's
 * validation (error 9401) is what judges a bad value.
 */
function transformOptions(query, names, renamed = {}) {
  const options = {};
  for (const name of names) {
    if (query.has(name)) options[name] = queryValue(query.get(name));
  }
  for (const [from, to] of Object.entries(renamed)) {
    if (query.has(from)) options[to] = queryValue(query.get(from));
  }
  return options;
}

function drawOptions(query) {
  return transformOptions(query, ["top", "left", "bottom", "right", "opacity"]);
}

function outputOptions(query) {
  const options = { format: query.get("format") ?? DEFAULT_FORMAT };
  if (query.has("quality")) options.quality = queryValue(query.get("quality"));
  return options;
}

function queryValue(text) {
  const number = Number(text);
  return text.trim() !== "" && Number.isFinite(number) ? number : text;
}

// Only the body stream goes on to the backend, never the incoming request or its headers. (A Worker
// that does forward a request must delete `Expect`, which curl sends for bodies over 1 MB.)
function requireBody(request) {
  if (!request.body) throw new RequestError(9401, "the request body must be the image");
  return request.body;
}

function formFile(form, name) {
  const value = form.get(name);
  if (!value || typeof value === "string") {
    throw new RequestError(9401, `multipart field \`${name}\` must be a file`);
  }
  return value;
}

function usage() {
  return new Response(
    [
      "imgbind example Worker",
      "  POST /transform?width=&height=&fit=&rotate=&flip=&format=&quality=   (body: image)",
      "  POST /info                                                           (body: image)",
      "  POST /composite?top=&left=&bottom=&right=&opacity=&width=&overlayWidth=&format=",
      "       (multipart: image=@base, overlay=@logo)",
      "  GET  /cdn-cgi/image/<options>/<R2 key, or composed/sunset-poster.png>",
      "       options: width|w, height|h, fit, gravity|g, quality|q, format|f (auto|avif|webp|jpeg|png|gif),",
      "       rotate, flip, blur, sharpen, brightness, contrast, gamma, saturation, background, trim, dpr, anim",
      "  GET  /playground",
      "",
    ].join("\n"),
    { headers: { "content-type": "text/plain; charset=utf-8" } },
  );
}
