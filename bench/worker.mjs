// The Worker path of the bench: the example Worker bundled by wrangler (`deploy --dry-run`), run in
// Miniflare's workerd with its IMAGES_BACKEND service binding on the backend's Unix socket — as
// tests/worker-example.test.js runs it.
//
// Two ways in: `direct` is a workerd socket served by the user Worker itself (Miniflare's
// `unsafeDirectSockets`), which is the production shape (one Worker between the client and the
// binding); `origin` is Miniflare's usual URL, which first goes through its entry worker (a
// dev-only proxy Worker in the same workerd that re-issues each request to the user Worker).

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, sep } from "node:path";
import { Miniflare } from "miniflare";
import { REPO_ROOT, WRANGLER_JS, wranglerCompatibilityDate } from "../tests/support/paths.js";

/** Bundles the Worker and starts it; resolves with `{ direct, origin, stop() }` (two URLs). */
export async function startWorker(socket) {
  const outdir = mkdtempSync(join(tmpdir(), "imgbind-bench-bundle-"));
  const bundled = spawnSync(process.execPath, [WRANGLER_JS, "deploy", "--dry-run", "--outdir", outdir], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
  });
  if (bundled.status !== 0) throw new Error(`wrangler bundle failed:\n${bundled.stdout}\n${bundled.stderr}`);
  const miniflare = new Miniflare({
    workers: [
      {
        config: {
          name: "imgbind-example",
          compatibilityDate: wranglerCompatibilityDate(),
          manifest: manifest(outdir),
          env: {
            IMGBIND_URL: { type: "text", value: "http://127.0.0.1:9" },
            IMAGES_BACKEND: { type: "external", address: `unix:${socket}`, http: {} },
          },
        },
        dev: { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] },
      },
    ],
  });
  const origin = (await miniflare.ready).origin;
  const direct = (await miniflare.unsafeGetDirectURL("imgbind-example")).origin;
  return {
    direct,
    origin,
    async stop() {
      await miniflare.dispose();
      rmSync(outdir, { recursive: true, force: true });
    },
  };
}

/** Every module of the bundle, named by its path inside it, `index.js` first. */
function manifest(outdir) {
  const types = { ".js": "esm", ".mjs": "esm", ".wasm": "wasm", ".bin": "data", ".txt": "text", ".html": "text" };
  const modules = {};
  for (const file of readdirSync(outdir, { recursive: true }).filter((f) => types[extname(f)])) {
    const type = types[extname(file)];
    const bytes = readFileSync(join(outdir, file));
    modules[file.split(sep).join("/")] = { type, contents: type === "esm" || type === "text" ? bytes.toString("utf8") : new Uint8Array(bytes) };
  }
  return { mainModule: "index.js", modulesRoot: outdir, modules };
}
