// A Miniflare plugin that serves a Worker's native Images binding (`env.IMAGES`) with the imgbind
// backend. The binding is workerd's own `cloudflare-internal:images-api` wrapped binding, exactly
// as Cloudflare and Miniflare build it; only its inner `fetcher` is ours instead of Miniflare's
// stand-in: a small Worker (sdk/js/hosted-entrypoint.mjs) that passes info()/output() requests to
// the imgbind backend (an external service on a Unix socket or a TCP address) and turns the
// `hosted.*` RPC calls into the backend's HTTP API. So Worker code typed and written for
// `env.IMAGES` runs unchanged, with Cloudflare's own client, transforms and stored images alike.
//
// Used by scripts/run-worker.mjs, which gives `unstable_startWorker` a binding
//   { type: "unsafe_imgbind_images", dev: { plugin: { package: <this file>, name: "imgbind-images" },
//                                          options: { socket: "/path/to/imgbind.sock" } } }
// A wrangler config can say the same under [[unsafe.bindings]] (package "imgbind/miniflare-plugin").
// Options: `socket` (a Unix socket path) or `address` (host:port, e.g. "127.0.0.1:9100"), and
// `token`: the backend's --api-token, which hosted calls need over TCP (not on a Unix socket).

import { readFileSync } from "node:fs";

/** The entrypoint Worker's modules (read once, when a binding first needs them). */
let entrypointModules;
function entrypointWorkerModules() {
  entrypointModules ??= ["hosted-entrypoint.mjs", "hosted.js"].map((name) => ({
    name,
    esModule: readFileSync(new URL(`./${name}`, import.meta.url), "utf8"),
  }));
  return entrypointModules;
}

/**
 * The entrypoint's compatibility date: from 2026-04-21 workerd serializes an error's own
 * properties over RPC (enhanced_error_serialization), so `code` reaches the calling Worker.
 */
const ENTRYPOINT_COMPATIBILITY_DATE = "2026-04-21";

/** The binding type Miniflare sees (wrangler's `unsafe_imgbind_images`). */
export const BINDING_TYPE = "unsafe:imgbind_images";

/** The plugin's name, as `dev.plugin.name` must give it. */
export const PLUGIN_NAME = "imgbind-images";

/** This Worker's imgbind Images bindings: `[name, options]` pairs. */
function imagesBindings(workerOptions) {
  return Object.entries(workerOptions.config?.env ?? {})
    .filter(([, binding]) => binding?.type === BINDING_TYPE)
    .map(([name, binding]) => [name, binding.dev?.options ?? {}]);
}

/** One entrypoint Worker (and one backend service) per Worker and binding: names are global in workerd's config. */
function serviceName(workerOptions, bindingName) {
  return `${PLUGIN_NAME}:${workerOptions.config?.name ?? "worker"}:${bindingName}`;
}

/** workerd's address form for the backend: `unix:/path` or `host:port`. */
function backendAddress(bindingName, options) {
  if (typeof options.socket === "string" && options.socket !== "") return `unix:${options.socket}`;
  if (typeof options.address === "string" && options.address !== "") return options.address;
  throw new Error(
    `imgbind Images binding ${bindingName}: dev.options needs "socket" (a Unix socket path) or "address" (host:port)`,
  );
}

const imagesPlugin = {
  bindingTypeDescription: "Images (imgbind)",

  getBindings(workerOptions) {
    return imagesBindings(workerOptions).map(([name]) => ({
      name,
      wrapped: {
        moduleName: "cloudflare-internal:images-api",
        innerBindings: [{ name: "fetcher", service: { name: serviceName(workerOptions, name) } }],
      },
    }));
  },

  // Not reachable from Node (getPlatformProxy): the binding lives inside workerd only.
  getNodeBindings() {
    return {};
  },

  getServices({ options: workerOptions }) {
    return imagesBindings(workerOptions).flatMap(([name, options]) => {
      const entrypoint = serviceName(workerOptions, name);
      const backend = `${entrypoint}:backend`;
      if (options.token !== undefined && (typeof options.token !== "string" || options.token === "")) {
        throw new Error(`imgbind Images binding ${name}: dev.options.token must be a non-empty string`);
      }
      return [
        { name: backend, external: { address: backendAddress(name, options), http: {} } },
        {
          name: entrypoint,
          worker: {
            compatibilityDate: ENTRYPOINT_COMPATIBILITY_DATE,
            modules: entrypointWorkerModules(),
            bindings: [
              { name: "BACKEND", service: { name: backend } },
              ...(options.token ? [{ name: "API_TOKEN", text: options.token }] : []),
            ],
          },
        },
      ];
    });
  },
};

/** What Miniflare's external-plugin loader looks for. */
export const plugins = { [PLUGIN_NAME]: imagesPlugin };
