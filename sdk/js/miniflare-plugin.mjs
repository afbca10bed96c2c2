// A Miniflare plugin that serves a Worker's native Images binding (`env.IMAGES`) with the imgbind
// backend. The binding is workerd's own `cloudflare-internal:images-api` wrapped binding, exactly
// as Cloudflare and Miniflare build it; only its inner `fetcher` goes to the imgbind backend (an
// external service on a Unix socket or a TCP address) instead of Miniflare's sharp-based stand-in.
// So Worker code typed and written for `env.IMAGES` runs unchanged, with Cloudflare's own client.
//
// Used by scripts/run-worker.mjs, which gives `unstable_startWorker` a binding
//   { type: "unsafe_imgbind_images", dev: { plugin: { package: <this file>, name: "imgbind-images" },
//                                          options: { socket: "/path/to/imgbind.sock" } } }
// A wrangler config can say the same under [[unsafe.bindings]] (package "imgbind/miniflare-plugin").
// Options: `socket` (a Unix socket path) or `address` (host:port, e.g. "127.0.0.1:9100").

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

/** One external service per Worker and binding: names are global in workerd's config. */
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
    return imagesBindings(workerOptions).map(([name, options]) => ({
      name: serviceName(workerOptions, name),
      external: { address: backendAddress(name, options), http: {} },
    }));
  },
};

/** What Miniflare's external-plugin loader looks for. */
export const plugins = { [PLUGIN_NAME]: imagesPlugin };
