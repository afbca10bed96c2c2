// A test Worker that imports the built SDK (sdk/js + sdk/dist), run in Miniflare with its
// IMAGES_BACKEND service bound to a backend's Unix socket — the set-up the SDK tests share.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { REPO_ROOT, wranglerCompatibilityDate } from "./paths.js";

/** The SDK's modules, under the names a Worker imports them by (`./sdk/js/index.js`). */
function sdkModules() {
  const text = (path) => ({ type: "esm", contents: readFileSync(join(REPO_ROOT, path)).toString() });
  return {
    "sdk/js/index.js": text("sdk/js/index.js"),
    "sdk/js/api.js": text("sdk/js/api.js"),
    "sdk/js/hosted.js": text("sdk/js/hosted.js"),
    "sdk/dist/imgbind_sdk.js": text("sdk/dist/imgbind_sdk.js"),
    "sdk/dist/imgbind_sdk_bg.wasm": {
      type: "wasm",
      contents: new Uint8Array(readFileSync(join(REPO_ROOT, "sdk/dist/imgbind_sdk_bg.wasm"))),
    },
  };
}

/**
 * Starts Miniflare with one Worker: `worker` is its main module's source; `fixtures` maps further
 * module names it imports to repo-relative files; `env` adds bindings beside IMAGES_BACKEND.
 * Returns the Miniflare (dispose it) and the origin to send requests to.
 */
export async function startSdkWorker({ name, worker, backendSocket, fixtures = {}, env = {} }) {
  const modules = { "worker.js": { type: "esm", contents: worker } };
  for (const [module, path] of Object.entries(fixtures)) {
    modules[module] = { type: "esm", contents: readFileSync(join(REPO_ROOT, path)).toString() };
  }
  const miniflare = new Miniflare({
    workers: [
      {
        config: {
          name,
          compatibilityDate: wranglerCompatibilityDate(),
          manifest: { mainModule: "worker.js", modules: { ...modules, ...sdkModules() } },
          env: {
            IMAGES_BACKEND: { type: "external", address: `unix:${backendSocket}`, http: {} },
            ...env,
          },
        },
      },
    ],
  });
  return { miniflare, origin: (await miniflare.ready).origin };
}
