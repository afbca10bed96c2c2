// `imgbind/vitest`: env.IMAGES served by imgbind in Worker tests run with Cloudflare's Vitest
// integration (`@cloudflare/vitest-plugin`, formerly `@cloudflare/vitest-pool-workers`), through
// Cloudflare's own client — the Worker under test is unchanged. In vitest.config.js:
//
//   import { cloudflareTest } from "@cloudflare/vitest-plugin";
//   import { imagesBinding } from "imgbind/vitest";
//   export default defineConfig({
//     plugins: [cloudflareTest(({ inject }) => ({
//       wrangler: { configPath: "./wrangler.toml" },
//       miniflare: imagesBinding({ socket: inject("imgbindSocket") }),
//     }))],
//     test: { globalSetup: ["imgbind/vitest/global-setup"] },
//   });
//
// The global setup starts one imgbind backend for the test run (the package's prebuilt binary, or
// IMGBIND_BINARY) and provides its socket as "imgbindSocket"; it is stopped when the run ends.

import { fileURLToPath } from "node:url";
import { startBackend } from "../../cli/backend.mjs";

const PLUGIN = fileURLToPath(new URL("./miniflare-plugin.mjs", import.meta.url));

/**
 * Miniflare worker options that make `binding` (default "IMAGES") the native Images binding with
 * its fetcher on the imgbind backend at `socket` (a Unix socket path) or `address` (host:port).
 * Merge into the `miniflare` options of `cloudflareTest(...)` (or `new Miniflare(...)`'s worker).
 */
export function imagesBinding({ binding = "IMAGES", socket, address } = {}) {
  if (!socket === !address) throw new TypeError('imagesBinding needs exactly one of "socket" or "address"');
  return {
    // The wrangler config's own `[images]` binding is served by Miniflare's stand-in, and Miniflare
    // binds it after unsafe bindings, so under the same name it would win over ours. The Vitest
    // integration merges these options over the config's: move the stand-in to a name of its own.
    images: { binding: `${binding}_MINIFLARE_STAND_IN` },
    unsafeBindings: [
      {
        name: binding,
        type: "imgbind_images",
        plugin: { package: PLUGIN, name: "imgbind-images" },
        options: socket ? { socket } : { address },
      },
    ],
  };
}

/** Starts an imgbind backend on a temporary Unix socket: `{ socket, stop() }`. */
export function startImgbind({ dataDir } = {}) {
  return startBackend({ dataDir, echo: false });
}
