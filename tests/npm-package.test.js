// The npm package as a user gets it: `npm pack` of this repo, installed offline from the tarball
// into a fresh Worker project (no registry), bundled by wrangler, run in Miniflare against a real
// backend. Proves package.json's "files"/"exports" carry the wasm, the JS and the types.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import { bundleManifest, bundleWithWrangler } from "./support/example-worker.js";
import { post } from "./support/http.js";
import { imageHeader, isComplete } from "./support/images.js";
import { REPO_ROOT, corpusFile, wranglerCompatibilityDate } from "./support/paths.js";
import { startBackend } from "./support/processes.js";

const run = promisify(execFile);
const TEST_TIMEOUT_MS = 120_000;

/** The fresh project's Worker: nothing but the package's public entry. */
const WORKER = `import { createImages } from "imgbind";

export default {
  async fetch(request, env) {
    const images = createImages(env.IMAGES_BACKEND ?? env.IMGBIND_URL);
    try {
      const result = await images.input(await request.arrayBuffer()).transform({ width: 64 }).output({ format: "image/png" });
      return result.response();
    } catch (error) {
      return Response.json({ code: error.code, message: error.message }, { status: 400 });
    }
  },
};
`;

describe("npm pack → offline install in a fresh Worker project → wrangler bundle → Miniflare", () => {
  let dir;
  let backend;
  let miniflare;
  let origin;
  let tarball;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "imgbind-pack-"));
    backend = await startBackend();
  });

  after(async () => {
    await miniflare?.dispose();
    await backend?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("npm pack carries the wasm, the JS entry, the types and the Miniflare plugin", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: REPO_ROOT });
    const [packed] = JSON.parse(stdout);
    const files = packed.files.map((file) => file.path);
    for (const needed of ["sdk/js/index.js", "sdk/js/api.js", "sdk/js/index.d.ts", "sdk/js/miniflare-plugin.mjs", "sdk/dist/imgbind_sdk.js", "sdk/dist/imgbind_sdk_bg.wasm"]) {
      assert.ok(files.includes(needed), `${needed} in the package: ${files}`);
    }
    assert.ok(!files.some((file) => file.startsWith("sdk/js/test/")), "no SDK tests in the package");
    tarball = join(dir, packed.filename);
    assert.ok(existsSync(tarball));
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
    assert.equal(manifest.dependencies, undefined, "no runtime dependencies to fetch");
    assert.equal(manifest.optionalDependencies, undefined, "no optional dependencies to fetch");
  });

  test("a fresh project installs it offline, wrangler bundles it, and it transforms an image", { timeout: TEST_TIMEOUT_MS }, async () => {
    assert.ok(tarball, "packed by the previous test");
    const app = join(dir, "app");
    mkdirSync(join(app, "src"), { recursive: true });
    writeFileSync(
      join(app, "package.json"),
      JSON.stringify({ name: "fresh-worker", private: true, type: "module", dependencies: { imgbind: `file:${tarball}` } }, null, 2),
    );
    writeFileSync(
      join(app, "wrangler.toml"),
      `name = "fresh-worker"\nmain = "src/index.js"\ncompatibility_date = "${wranglerCompatibilityDate()}"\n\n[vars]\nIMGBIND_URL = "http://127.0.0.1:9100"\n`,
    );
    writeFileSync(join(app, "src/index.js"), WORKER);
    // Only the tarball is installed; --offline forbids any registry request.
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: app });
    assert.ok(existsSync(join(app, "node_modules/imgbind/sdk/dist/imgbind_sdk_bg.wasm")), "wasm installed");

    // The plugin subpath resolves from the project (what a wrangler config's dev.plugin names).
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", "const m = await import('imgbind/miniflare-plugin'); console.log(Object.keys(m.plugins))"], { cwd: app });
    assert.match(stdout, /imgbind-images/);

    const outdir = join(dir, "bundle");
    await bundleWithWrangler(outdir, app);
    miniflare = new Miniflare({
      workers: [
        {
          config: {
            name: "fresh-worker",
            compatibilityDate: wranglerCompatibilityDate(),
            manifest: bundleManifest(outdir),
            env: {
              IMGBIND_URL: { type: "text", value: "http://127.0.0.1:9" },
              IMAGES_BACKEND: { type: "external", address: `unix:${backend.socket}`, http: {} },
            },
          },
        },
      ],
    });
    origin = (await miniflare.ready).origin;
    const answer = await post(origin + "/", corpusFile("overlay-logo-337x330.png"));
    assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${backend.child.describe()}`);
    assert.deepEqual(imageHeader(answer.bytes), { format: "image/png", width: 64, height: 63 });
    assert.ok(isComplete(answer.bytes));
  });
});
