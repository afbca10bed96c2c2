// A Worker that serves image transforms from imgbind running as a Cloudflare Container.
// Deploy: `npx wrangler deploy -c deploy/cloudflare-containers/wrangler.jsonc` (docs/DEPLOY.md).
//   curl --data-binary @photo.jpg 'https://<worker>/transform?width=800&format=image/avif' -o out.avif
//   curl --data-binary @photo.jpg 'https://<worker>/info'
//
// The container is a Durable Object class (`ImgbindContainer`) running deploy/Containerfile's
// image; the Worker hands the SDK a backend whose `fetch` goes to one of IMGBIND_INSTANCES
// instances, and uses the SDK exactly as it would use `env.IMAGES`.

import { Container, getRandom } from "@cloudflare/containers";
import { createImages } from "imgbind";
// The code → HTTP status mapping the example Worker and the backend use (wire/src/error.rs).
import { STATUS_BY_CODE, errorResponse } from "../../../worker-example/src/errors.js";

export class ImgbindContainer extends Container {
  // deploy/Containerfile: IMGBIND_LISTEN=0.0.0.0:8790.
  defaultPort = 8790;
  // Ready when imgbind answers /readyz (the default ping, `/`, would be a 404).
  pingEndpoint = "localhost/readyz";
  // A stopped instance costs nothing; the next request starts it again (a cold start of ~1 s).
  sleepAfter = "10m";
  // imgbind fetches nothing: fonts are bundled or in --font-dir, sources come in the request.
  enableInternet = false;
  envVars = {
    IMGBIND_LOG_FORMAT: "json",
    // Cloudflare stops an instance only when it is idle (sleepAfter): no balancer to wait for.
    IMGBIND_SHUTDOWN_DELAY: "0",
  };
}

/** The SDK's backend: any object with `fetch`. Each job goes to a random instance. */
function containerBackend(env) {
  const instances = Math.max(1, Number.parseInt(env.IMGBIND_INSTANCES ?? "1", 10) || 1);
  return {
    async fetch(input, init) {
      const container = await getRandom(env.IMGBIND, instances);
      return container.fetch(input, init);
    },
  };
}

export default {
  async fetch(request, env) {
    const images = createImages(containerBackend(env));
    const url = new URL(request.url);
    if (request.method !== "POST" || !request.body) {
      return new Response("POST an image to /transform?width=&height=&fit=&format=&quality= or /info\n", {
        status: 405,
        headers: { allow: "POST" },
      });
    }
    try {
      if (url.pathname === "/info") {
        return Response.json(await images.info(request.body));
      }
      if (url.pathname === "/transform") {
        const q = url.searchParams;
        const number = (name) => (q.has(name) ? Number(q.get(name)) : undefined);
        const transform = Object.fromEntries(
          Object.entries({
            width: number("width"),
            height: number("height"),
            fit: q.get("fit") ?? undefined,
            rotate: number("rotate"),
          }).filter(([, v]) => v !== undefined),
        );
        const result = await images
          .input(request.body)
          .transform(transform)
          .output({ format: q.get("format") ?? "image/webp", quality: number("quality") });
        return result.response();
      }
      return new Response("not found\n", { status: 404 });
    } catch (error) {
      // The SDK's errors carry Cloudflare's codes (9xxx); anything else is ours.
      return errorResponse(STATUS_BY_CODE[error.code] ?? 500, error.code ?? 9523, error.message);
    }
  },
};
