// The example Worker (worker-example/) as wrangler bundles it for deployment, run in Miniflare
// (workerd) with its IMAGES_BACKEND service binding on a fresh imgbind backend's Unix socket and an
// in-memory R2 bucket (IMAGES_BUCKET) seeded with corpus files. Shared by the example-Worker tests.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, sep } from "node:path";
import { Miniflare } from "miniflare";
import { REPO_ROOT, WRANGLER_JS, corpusFile, wranglerCompatibilityDate } from "./paths.js";
import { Child, startBackend } from "./processes.js";

/** `wrangler deploy --dry-run --outdir DIR` in `cwd`: the exact bundle wrangler would upload. */
export async function bundleWithWrangler(outdir, cwd = REPO_ROOT) {
  const child = new Child("wrangler deploy --dry-run", process.execPath, [WRANGLER_JS, "deploy", "--dry-run", "--outdir", outdir], {
    cwd,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
  });
  const timer = setTimeout(() => child.process.kill("SIGKILL"), 120_000);
  const { code } = await child.exit;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`bundling failed (exit ${code})\n${child.describe()}`);
}

/**
 * The bundle as a Miniflare module manifest: every module in `outdir`, named by its path inside
 * it (as the bundle's imports name them), the entry `index.js` first.
 */
export function bundleManifest(outdir) {
  const types = { ".js": "esm", ".mjs": "esm", ".wasm": "wasm", ".bin": "data", ".txt": "text", ".html": "text" };
  const files = readdirSync(outdir, { recursive: true }).filter((file) => types[extname(file)]);
  assert.ok(files.includes("index.js"), `bundle has index.js: ${files}`);
  const modules = {};
  for (const file of files) {
    const type = types[extname(file)];
    const bytes = readFileSync(join(outdir, file));
    modules[file.split(sep).join("/")] = { type, contents: type === "esm" || type === "text" ? bytes.toString("utf8") : new Uint8Array(bytes) };
  }
  return { mainModule: "index.js", modulesRoot: outdir, modules };
}

/** Corpus files the URL-interface, composition and playground tests read from the bucket. */
export const SEEDED = [
  "photo-4mp-twowings.jpg",
  "photo-4mp-eveningglow.jpg",
  "overlay-logo-337x330.png",
  "graphic-3mp-emerald-alpha.png",
  "photo-6mp-life.webp",
];

/**
 * Bundles and starts the example Worker. Resolves with `{ origin, miniflare, backend, bucket, stop }`;
 * the bucket holds `seed` (corpus file names, stored under their names).
 */
export async function startExampleWorker({ seed = SEEDED } = {}) {
  const outdir = mkdtempSync(join(tmpdir(), "imgbind-bundle-"));
  let backend;
  let miniflare;
  const stop = async () => {
    await miniflare?.dispose();
    await backend?.stop();
    rmSync(outdir, { recursive: true, force: true });
  };
  try {
    const [started] = await Promise.all([startBackend(), bundleWithWrangler(outdir)]);
    backend = started;
    // Miniflare 5's own config shape (Miniflare 4's flat options go through convertV4MiniflareOptions).
    miniflare = new Miniflare({
      workers: [
        {
          config: {
            name: "imgbind-example",
            compatibilityDate: wranglerCompatibilityDate(),
            manifest: bundleManifest(outdir),
            env: {
              // As in wrangler.toml; the service binding wins, so this address is never used.
              IMGBIND_URL: { type: "text", value: "http://127.0.0.1:9" },
              IMAGES_BACKEND: { type: "external", address: `unix:${backend.socket}`, http: {} },
              IMAGES_BUCKET: { type: "r2", name: "imgbind-images" },
            },
          },
        },
      ],
    });
    const origin = (await miniflare.ready).origin;
    const bucket = await miniflare.getR2Bucket("IMAGES_BUCKET");
    for (const name of seed) await bucket.put(name, corpusFile(name));
    return { origin, miniflare, backend, bucket, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
