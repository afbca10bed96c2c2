// The Rust example Worker (worker-example/rust/, imgbind-sdk's Rust API on the `worker` crate),
// built by worker-build into worker-example/rust/build/ (scripts/build-rust-worker.sh, run by
// `scripts/build.sh --with-tests`):
// 1. run in Miniflare (workerd) with its IMAGES_BACKEND service binding on the imgbind backend's
//    Unix socket — the whole API surface; answers are decoded in full by sharp;
// 2. run by `wrangler dev --local` in its folder (as `npm run dev:rust-worker`; the build command
//    finds the build up to date) against a backend on TCP through IMGBIND_URL.

import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { extname, join, sep } from "node:path";
import { after, before, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import sharp from "sharp";
import { post } from "./support/http.js";
import { closeTo, imageHeader, isComplete, solidPng } from "./support/images.js";
import { BACKEND_BIN, REPO_ROOT, WRANGLER_JS, corpusFile } from "./support/paths.js";
import { Child, freePort, startBackend, waitFor } from "./support/processes.js";

const TEST_TIMEOUT_MS = 60_000;
const CRATE_DIR = join(REPO_ROOT, "worker-example/rust");
const BUILD_DIR = join(CRATE_DIR, "build");

/** The compatibility date in the Rust Worker's own wrangler.toml. */
function compatibilityDate() {
  const toml = readFileSync(join(CRATE_DIR, "wrangler.toml"), "utf8");
  const match = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml);
  if (!match) throw new Error("worker-example/rust/wrangler.toml has no compatibility_date");
  return match[1];
}

/**
 * worker-build's output as a Miniflare module manifest, as wrangler uploads it (main =
 * build/index.js, `.wasm` as compiled modules). Fails when the build is missing or older than the
 * Worker's source, so a stale build is never what gets tested.
 */
function buildManifest() {
  const wasm = join(BUILD_DIR, "index_bg.wasm");
  if (!existsSync(wasm)) {
    throw new Error(`${wasm} not found: run scripts/build-rust-worker.sh (scripts/build.sh --with-tests does)`);
  }
  const source = join(CRATE_DIR, "src/lib.rs");
  assert.ok(
    statSync(wasm).mtimeMs >= statSync(source).mtimeMs,
    "the Rust Worker build is older than its source: run scripts/build-rust-worker.sh",
  );
  const types = { ".js": "esm", ".mjs": "esm", ".wasm": "wasm" };
  const files = readdirSync(BUILD_DIR, { recursive: true }).filter((file) => types[extname(file)]);
  assert.ok(files.includes("index.js"), `build has index.js: ${files}`);
  const modules = {};
  for (const file of files) {
    const type = types[extname(file)];
    const bytes = readFileSync(join(BUILD_DIR, file));
    modules[file.split(sep).join("/")] = { type, contents: type === "esm" ? bytes.toString("utf8") : new Uint8Array(bytes) };
  }
  return { mainModule: "index.js", modulesRoot: BUILD_DIR, modules };
}

describe("Rust example Worker (worker-build output in Miniflare) against the imgbind backend", () => {
  let backend;
  let miniflare;
  let origin;

  before(async () => {
    const manifest = buildManifest();
    backend = await startBackend();
    miniflare = new Miniflare({
      workers: [
        {
          config: {
            name: "imgbind-example-rust",
            compatibilityDate: compatibilityDate(),
            manifest,
            env: {
              // As in wrangler.toml; the service binding wins, so this address is never used.
              IMGBIND_URL: { type: "text", value: "http://127.0.0.1:9" },
              IMAGES_BACKEND: { type: "external", address: `unix:${backend.socket}`, http: {} },
            },
          },
        },
      ],
    });
    origin = (await miniflare.ready).origin;
  });

  after(async () => {
    await miniflare?.dispose();
    await backend?.stop();
  });

  function details(answer) {
    return `status ${answer.status}: ${answer.bytes.subarray(0, 500).toString()}\n${backend.child.describe()}`;
  }

  /** A 200 answer whose header says `format` `width`×`height`, complete, and decodable in full. */
  async function expectImage(path, body, { format, width, height }) {
    const answer = await post(origin + path, body);
    assert.equal(answer.status, 200, details(answer));
    assert.equal(answer.headers["content-type"], format);
    assert.deepEqual(imageHeader(answer.bytes), { format, width, height });
    assert.ok(isComplete(answer.bytes), `${format} answer is complete`);
    if (answer.headers["content-length"] !== undefined) {
      assert.equal(Number(answer.headers["content-length"]), answer.bytes.length);
    }
    // sharp's default failOn ("warning") rejects truncated or corrupt data anywhere in the file.
    const { data, info } = await sharp(answer.bytes).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [width, height]);
    assert.equal(data.length, width * height * info.channels);
    return { answer, pixels: data, channels: info.channels };
  }

  async function expectError(path, body, status, code) {
    const answer = await post(origin + path, body);
    assert.equal(answer.status, status, details(answer));
    assert.match(answer.headers["content-type"], /^application\/json/);
    const { error } = JSON.parse(answer.bytes);
    assert.equal(error.code, code, JSON.stringify(error));
    assert.match(error.message, new RegExp(`^IMAGES_(TRANSFORM|INFO)_ERROR ${code}: `), error.message);
    return error;
  }

  test("POST /transform: JPEG photo to WebP, width 800", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage("/transform?width=800&format=image/webp", corpusFile("photo-4mp-twowings.jpg"), {
      format: "image/webp",
      width: 800,
      height: 500,
    });
  });

  test("POST /transform: rotate 90 to PNG, fit=cover JPEG with quality, flip", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage("/transform?rotate=90&format=image/png", corpusFile("overlay-logo-337x330.png"), {
      format: "image/png",
      width: 330,
      height: 337,
    });
    await expectImage(
      "/transform?width=300&height=300&fit=cover&quality=70&format=image/jpeg",
      corpusFile("photo-6mp-life.webp"),
      { format: "image/jpeg", width: 300, height: 300 },
    );
    // flip=h mirrors: a PNG red on the left half comes back red on the right half.
    const left = solidPng(8, 4, [255, 0, 0, 255]);
    const half = await sharp(left)
      .composite([{ input: solidPng(4, 4, [0, 0, 255, 255]), left: 4, top: 0 }])
      .png()
      .toBuffer();
    const { pixels, channels } = await expectImage("/transform?flip=h&format=image/png", half, {
      format: "image/png",
      width: 8,
      height: 4,
    });
    const at = (x, y) => Array.from(pixels.subarray((y * 8 + x) * channels, (y * 8 + x) * channels + 3));
    assert.ok(closeTo(at(0, 0), [0, 0, 255]), `left is blue: ${at(0, 0)}`);
    assert.ok(closeTo(at(7, 3), [255, 0, 0]), `right is red: ${at(7, 3)}`);
  });

  test("POST /transform: the backend's Content-Length reaches the client; a streamed PNG goes on chunked", { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = await post(origin + "/transform?width=640&format=image/jpeg", corpusFile("photo-4mp-twowings.jpg"));
    assert.equal(answer.status, 200, details(answer));
    assert.equal(answer.headers["content-length"], String(answer.bytes.length));
    // The backend streams a PNG as it encodes (no length known up front): whole, chunked.
    const png = await post(origin + "/transform?width=640&format=image/png", corpusFile("photo-4mp-twowings.jpg"));
    assert.equal(png.status, 200, details(png));
    assert.equal(png.headers["content-length"], undefined);
    assert.deepEqual(imageHeader(png.bytes), { format: "image/png", width: 640, height: 400 });
    assert.ok(isComplete(png.bytes), "PNG ends with IEND");
  });

  test("POST /info: JSON with format, fileSize, width, height", { timeout: TEST_TIMEOUT_MS }, async () => {
    const image = corpusFile("photo-6mp-life.webp");
    const answer = await post(origin + "/info", image);
    assert.equal(answer.status, 200, details(answer));
    assert.match(answer.headers["content-type"], /^application\/json/);
    assert.deepEqual(JSON.parse(answer.bytes), {
      format: "image/webp",
      fileSize: image.length,
      width: 3088,
      height: 2056,
    });
  });

  test("POST /composite: a resized overlay drawn bottom-right onto a resized photo", { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = new FormData();
    form.append("image", new Blob([corpusFile("photo-4mp-twowings.jpg")]), "photo.jpg");
    form.append("overlay", new Blob([solidPng(40, 40, [0, 255, 0, 255])]), "green.png");
    const { pixels } = await expectImage(
      "/composite?width=400&bottom=0&right=0&overlayWidth=20&format=image/png",
      form,
      { format: "image/png", width: 400, height: 250 },
    );
    const channels = pixels.length / (400 * 250);
    const at = (x, y) => Array.from(pixels.subarray((y * 400 + x) * channels, (y * 400 + x) * channels + 3));
    assert.ok(closeTo(at(390, 240), [0, 255, 0]), `overlay corner is green: ${at(390, 240)}`);
    assert.ok(!closeTo(at(370, 220), [0, 255, 0]), `outside the 20 px overlay is the photo: ${at(370, 220)}`);
  });

  test("POST /caption: images.text() drawn onto the image by the backend", { timeout: TEST_TIMEOUT_MS }, async () => {
    const white = solidPng(240, 80, [255, 255, 255, 255]);
    const { pixels, channels } = await expectImage("/caption?text=IMGBIND&size=40&color=%23000000&format=image/png", white, {
      format: "image/png",
      width: 240,
      height: 80,
    });
    let dark = 0;
    for (let i = 0; i < pixels.length; i += channels) if (pixels[i] < 128) dark++;
    // Seven 40 px capitals in black: hundreds of dark pixels on a white canvas that had none.
    assert.ok(dark > 300, `text was drawn (${dark} dark pixels)`);
    assert.ok(dark < 240 * 80 / 2, `not a filled canvas (${dark} dark pixels)`);
    await expectError("/caption", white, 400, 9401); // no text
  });

  test("errors: corrupt input 9412, truncated JPEG, bad options 9401, as JSON with the code and status", { timeout: TEST_TIMEOUT_MS }, async () => {
    const text = corpusFile("SOURCES.md");
    await expectError("/transform?width=100", text, 415, 9412);
    await expectError("/info", text, 415, 9412);
    const photo = corpusFile("photo-4mp-twowings.jpg");
    // A real JPEG cut in half: an error, never a partial image.
    await expectError("/transform?width=100&format=image/png", photo.subarray(0, photo.length >> 1), 415, 9412);
    const logo = corpusFile("overlay-logo-337x330.png");
    // Rejected by the Rust Worker's own typed parsing, before any request.
    await expectError("/transform?fit=sideways", logo, 400, 9401);
    await expectError("/transform?rotate=45", logo, 400, 9401);
    await expectError("/transform?format=image/bmp", logo, 400, 9401);
    await expectError("/composite", logo, 400, 9401); // not multipart
    // Accepted by the Worker, rejected by the backend's validation.
    await expectError("/transform?width=0", logo, 400, 9401);
  });

  test("routing: unknown path 404, GET on a POST route 405, usage on /", { timeout: TEST_TIMEOUT_MS }, async () => {
    const missing = await fetch(origin + "/nope", { method: "POST", body: "x" });
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
    const get = await fetch(origin + "/transform");
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    await get.arrayBuffer();
    const usage = await fetch(origin + "/");
    assert.equal(usage.status, 200);
    assert.match(await usage.text(), /imgbind example Worker \(Rust\)/);
  });
});

describe("Rust example Worker under wrangler dev, backend over TCP (IMGBIND_URL)", () => {
  let backend;
  let wrangler;
  let origin;

  before(async () => {
    buildManifest(); // fails early, with the hint, when the build is missing or stale
    const backendPort = await freePort();
    backend = new Child("imgbind backend (tcp)", BACKEND_BIN, ["serve", "--listen", `127.0.0.1:${backendPort}`], {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    await waitFor("backend", async () => (await fetch(`http://127.0.0.1:${backendPort}/healthz`)).status === 200, {
      child: backend,
    });
    const port = await freePort();
    wrangler = new Child(
      "wrangler dev",
      process.execPath,
      [
        WRANGLER_JS, "dev", "--local", "--ip", "127.0.0.1", "--port", String(port),
        "--inspector-port", String(await freePort()), // not the default 9229, which may be taken
        "--var", `IMGBIND_URL:http://127.0.0.1:${backendPort}`,
      ],
      {
        cwd: CRATE_DIR, // as `npm run dev:rust-worker`: the build command is relative to it
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" },
      },
    );
    origin = `http://127.0.0.1:${port}`;
    await waitFor("wrangler dev", async () => (await fetch(origin + "/")).status === 200, {
      child: wrangler,
      timeoutMs: 90_000,
    });
    assert.match(wrangler.output, /build-rust-worker\] worker-example\/rust\/build is up to date/, "the build command ran");
  });

  after(async () => {
    await wrangler?.stop(10_000);
    await backend?.stop();
  });

  test("POST /transform and /info through wrangler dev", { timeout: TEST_TIMEOUT_MS }, async () => {
    const photo = corpusFile("photo-4mp-twowings.jpg");
    const answer = await post(origin + "/transform?width=320&format=image/jpeg", photo);
    assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${wrangler.describe()}`);
    assert.equal(answer.headers["content-type"], "image/jpeg");
    assert.deepEqual(imageHeader(answer.bytes), { format: "image/jpeg", width: 320, height: 200 });
    const { info } = await sharp(answer.bytes).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [320, 200]);
    const meta = await post(origin + "/info", photo);
    assert.equal(meta.status, 200);
    assert.deepEqual(JSON.parse(meta.bytes), { format: "image/jpeg", fileSize: photo.length, width: 2560, height: 1600 });
    const bad = await post(origin + "/info", Buffer.from("not an image"));
    assert.equal(bad.status, 415);
    assert.equal(JSON.parse(bad.bytes).error.code, 9412);
  });
});
