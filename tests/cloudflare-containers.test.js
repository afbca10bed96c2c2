// deploy/cloudflare-containers (issue #14): the wrangler config with `[[containers]]`, the Container
// class and the Worker that reaches imgbind through the SDK.
//   - `wrangler deploy --dry-run` accepts the config offline and bundles the Worker, and refuses
//     the same config with a container class the Worker does not define (it checks, not just
//     parses). `--containers-rollout=none` because building the image needs Docker, which this
//     machine has not; scripts/test-container.sh proves the image's root filesystem instead.
//   - The Container class agrees with the image and the binary: defaultPort is the
//     Containerfile's EXPOSE, envVars are variables `imgbind serve --help` knows, the ping asks
//     for /readyz.
//   - The bundle runs in workerd (Miniflare) with IMGBIND bound to a Durable Object that plays
//     the container's port (it forwards to a real imgbind backend): requests through the
//     Worker, getRandom's stub and the SDK come back as whole, correct images, and a bad image
//     comes back as the SDK's coded error.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import { bundleManifest } from "./support/example-worker.js";
import { post } from "./support/http.js";
import { imageHeader, isComplete } from "./support/images.js";
import { BACKEND_BIN, REPO_ROOT, WRANGLER_JS, corpusFile } from "./support/paths.js";
import { startBackend } from "./support/processes.js";

const DIR = join(REPO_ROOT, "deploy/cloudflare-containers");
const CONFIG = join(DIR, "wrangler.jsonc");
const WORKER_SOURCE = readFileSync(join(DIR, "src/index.js"), "utf8");
const WRANGLER_ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true", NO_COLOR: "1" };

function dryRun(config, outdir) {
  return spawnSync(
    process.execPath,
    [WRANGLER_JS, "deploy", "--dry-run", "--containers-rollout=none", "--outdir", outdir, "-c", config],
    { cwd: REPO_ROOT, env: WRANGLER_ENV, encoding: "utf8", timeout: 120_000 },
  );
}

/** The runtime stage's EXPOSE ports of deploy/Containerfile. */
function exposedPorts() {
  const stages = readFileSync(join(REPO_ROOT, "deploy/Containerfile"), "utf8").split(/^FROM /m);
  return [...stages.at(-1).matchAll(/^EXPOSE\s+(.+)$/gm)].flatMap((m) => m[1].split(/\s+/).map((p) => Number.parseInt(p, 10)));
}

describe("deploy/cloudflare-containers", () => {
  const outdir = mkdtempSync(join(tmpdir(), "imgbind-containers-"));
  let backend;
  let miniflare;
  after(async () => {
    await miniflare?.dispose();
    await backend?.stop();
    rmSync(outdir, { recursive: true, force: true });
  });

  test("wrangler deploy --dry-run accepts the config and bundles the Worker", { timeout: 150_000 }, () => {
    const result = dryRun(CONFIG, outdir);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /env\.IMGBIND \(ImgbindContainer\)\s+Durable Object/);
    assert.match(result.stdout, /imgbind-containers-imgbindcontainer \(.*deploy\/Containerfile\)/);
    const bundle = readFileSync(join(outdir, "index.js"), "utf8");
    assert.match(bundle, /ImgbindContainer = class extends Container\b/);
    assert.match(bundle, /imgbind_sdk_bg\.wasm/, "the SDK's wasm is in the bundle");
  });

  test("wrangler deploy --dry-run refuses a container class the Worker does not define", { timeout: 150_000 }, () => {
    const broken = join(DIR, `.broken-${process.pid}.jsonc`);
    writeFileSync(broken, readFileSync(CONFIG, "utf8").replace('"class_name": "ImgbindContainer",', '"class_name": "Missing",'));
    try {
      const result = dryRun(broken, mkdtempSync(join(tmpdir(), "imgbind-containers-broken-")));
      assert.notEqual(result.status, 0);
      assert.match(result.stdout + result.stderr, /class_name Missing does not match any durable object/);
    } finally {
      rmSync(broken, { force: true });
    }
  });

  test("the Container class matches the image and the binary's flags", () => {
    const port = Number(/defaultPort = (\d+);/.exec(WORKER_SOURCE)?.[1]);
    assert.deepEqual(exposedPorts(), [port], "defaultPort is the Containerfile's EXPOSE");
    assert.match(WORKER_SOURCE, /pingEndpoint = "localhost\/readyz";/);
    const envBlock = /envVars = \{([^}]*)\}/.exec(WORKER_SOURCE)?.[1] ?? "";
    const names = [...envBlock.matchAll(/\b(IMGBIND_[A-Z_]+):/g)].map((m) => m[1]);
    assert.ok(names.length > 0, "envVars sets imgbind variables");
    const help = spawnSync(BACKEND_BIN, ["serve", "--help"], { encoding: "utf8" }).stdout;
    for (const name of names) assert.ok(help.includes(`[env: ${name}=`), `${name} is a variable imgbind serve knows`);
  });

  test("the bundled Worker serves transforms through getRandom's stub and the SDK", { timeout: 120_000 }, async () => {
    backend = await startBackend();
    miniflare = new Miniflare({
      workers: [
        {
          config: {
            name: "imgbind-containers",
            compatibilityDate: "2026-11-01",
            manifest: bundleManifest(outdir),
            env: {
              IMGBIND_INSTANCES: { type: "text", value: "3" },
              IMGBIND: { type: "durable-object", worker: "container-port", exportName: "Port" },
            },
          },
        },
        {
          // Plays the container: each Durable Object instance forwards to imgbind's socket.
          config: {
            name: "container-port",
            compatibilityDate: "2026-11-01",
            manifest: {
              mainModule: "port.js",
              modules: {
                "port.js": {
                  type: "esm",
                  contents: `export class Port {
                    constructor(state, env) { this.env = env; }
                    fetch(request) { return this.env.BACKEND.fetch(request); }
                  }
                  export default { fetch() { return new Response("not used", { status: 404 }); } };`,
                },
              },
            },
            exports: { Port: { type: "durable-object", storage: "sqlite" } },
            env: { BACKEND: { type: "external", address: `unix:${backend.socket}`, http: {} } },
          },
        },
      ],
    });
    const origin = (await miniflare.ready).origin;
    // Several requests, so getRandom picks more than one instance; WebP's RIFF size shows
    // completeness (AVIF has no end marker to check).
    for (const [width, format] of [[120, "image/avif"], [240, "image/webp"], [360, "image/avif"], [480, "image/webp"], [600, "image/webp"], [720, "image/avif"]]) {
      const answer = await post(`${origin}/transform?width=${width}&format=${format}`, corpusFile("photo-4mp-twowings.jpg"));
      assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${backend.child.describe()}`);
      const header = imageHeader(answer.bytes);
      assert.deepEqual([header.format, header.width], [format, width]);
      assert.ok(isComplete(answer.bytes), `a whole ${format}`);
    }
    const info = await post(`${origin}/info`, corpusFile("overlay-logo-337x330.png"));
    assert.equal(info.status, 200);
    assert.deepEqual(JSON.parse(Buffer.from(info.bytes).toString()), { format: "image/png", fileSize: 15996, width: 337, height: 330 });
    const bad = await post(`${origin}/transform?width=100`, Buffer.from("not an image at all"));
    assert.equal(bad.status, 415, "9412 answers 415, as the backend and the example Worker map it");
    assert.equal(JSON.parse(Buffer.from(bad.bytes).toString()).error.code, 9412);
  });
});
