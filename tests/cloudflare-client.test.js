// Cloudflare's OWN Images binding client against the imgbind backend: the `workerd` binary from
// npm runs a Worker whose `env.IMAGES` is workerd's built-in `cloudflare-internal:images-api`
// wrapped binding, with its `fetcher` pointed at our backend's Unix socket. If imgbind speaks the
// wire format Cloudflare's client speaks, these pass.

import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Child, startBackend, waitFor } from "./support/processes.js";
import { REPO_ROOT, WORKERD_BIN, corpusFile, wranglerCompatibilityDate } from "./support/paths.js";
import { closeTo, imageHeader, isComplete, rgbaPixel, solidPng } from "./support/images.js";
import { IMAGE_SCENES, checkScene, sceneForm } from "./support/text-checks.js";

const TEST_TIMEOUT_MS = 60_000;
const BUNDLED_FONT = join(REPO_ROOT, "engine/fonts/DejaVuSans.ttf");

/** workerd config: the test Worker on an ephemeral loopback port, IMAGES → backend socket. */
function workerdConfig(backendSocket) {
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .testWorker),
    (name = "backend", external = (address = "unix:${backendSocket}", http = ())),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);

const testWorker :Workerd.Worker = (
  modules = [
    (name = "worker", esModule = embed "worker.js"),
    (name = "text-scenes.js", esModule = embed "text-scenes.js"),
  ],
  compatibilityDate = "${wranglerCompatibilityDate()}",
  bindings = [
    (name = "IMAGES", wrapped = (
      moduleName = "cloudflare-internal:images-api",
      innerBindings = [(name = "fetcher", service = "backend")],
    )),
  ],
);
`;
}

/**
 * Starts workerd with `config` and resolves with the port of its `http` socket, which workerd
 * reports as `{"event":"listen","socket":"http","port":N}` on the control fd (fd 3).
 */
async function startWorkerd(dir) {
  const child = new Child("workerd", WORKERD_BIN, ["serve", join(dir, "config.capnp"), "--control-fd=3"], {
    stdio: ["ignore", "pipe", "pipe", "pipe"],
    cwd: dir,
  });
  let control = "";
  child.process.stdio[3].setEncoding("utf8");
  child.process.stdio[3].on("data", (text) => (control += text));
  const port = await waitFor(
    "workerd",
    () => {
      for (const line of control.split("\n")) {
        if (!line.trim()) continue;
        const message = JSON.parse(line);
        if (message.event === "listen" && message.socket === "http") return message.port;
      }
      return undefined;
    },
    { child },
  );
  return { child, port };
}

describe("Cloudflare's images-api client (workerd) against the imgbind backend", () => {
  let backend;
  let workerd;
  let dir;
  let origin;

  before(async () => {
    backend = await startBackend();
    dir = mkdtempSync(join(tmpdir(), "imgbind-workerd-"));
    copyFileSync(join(REPO_ROOT, "tests/fixtures/cloudflare-client-worker.js"), join(dir, "worker.js"));
    copyFileSync(join(REPO_ROOT, "tests/fixtures/text-scenes.js"), join(dir, "text-scenes.js"));
    writeFileSync(join(dir, "config.capnp"), workerdConfig(backend.socket));
    workerd = await startWorkerd(dir);
    origin = `http://127.0.0.1:${workerd.port}`;
  });

  after(async () => {
    await workerd?.child.stop();
    await backend?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** POST to the test Worker; resolves with `{ response, bytes }`. Bounded by a timeout. */
  async function post(path, body) {
    const response = await fetch(origin + path, { method: "POST", body, signal: AbortSignal.timeout(45_000) });
    const bytes = Buffer.from(await response.arrayBuffer());
    return { response, bytes };
  }

  function failureDetails(response, bytes) {
    return `status ${response.status}: ${bytes.subarray(0, 500).toString()}\n${backend.child.describe()}`;
  }

  function composeForm(image, overlay) {
    const form = new FormData();
    form.set("image", new Blob([image]), "image");
    form.set("overlay", new Blob([overlay]), "overlay");
    return form;
  }

  test("transform({width, rotate}).draw(transformed input, {bottom, right}).output(png)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = composeForm(corpusFile("photo-4mp-twowings.jpg"), corpusFile("overlay-logo-337x330.png"));
    const { response, bytes } = await post(
      "/compose?width=800&rotate=90&overlayWidth=100&bottom=20&right=20&format=image/png",
      form,
    );
    assert.equal(response.status, 200, failureDetails(response, bytes));
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.equal(response.headers.get("x-content-type"), "image/png");
    // 2560x1600 rotated 90° is 1600x2560; width 800 (of the rotated axes) gives 800x1280.
    assert.deepEqual(imageHeader(bytes), { format: "image/png", width: 800, height: 1280 });
    assert.ok(isComplete(bytes), "PNG ends with IEND");
  });

  test("a PNG the backend streams chunked (as it encodes) arrives whole through Cloudflare's client", { timeout: TEST_TIMEOUT_MS }, async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    // Straight to the backend, the wire body workerd's client writes: chunked, no content-length.
    const boundary = "imgbind-test-boundary-0123456789";
    const part = (name, body, file) => [
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"${file ? `; filename="${name}"` : ""}\r\n\r\n`),
      Buffer.from(body),
      Buffer.from("\r\n"),
    ];
    const wire = Buffer.concat([
      ...part("image", photo, true),
      ...part("transforms", JSON.stringify([{ imageIndex: 0, width: 1600 }])),
      ...part("output_format", "image/png"),
      Buffer.from(`--${boundary}--\r\n`),
    ]);
    const direct = await new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: backend.socket,
          path: "/transform",
          method: "POST",
          headers: { "content-type": `multipart/form-data; boundary=${boundary}`, "content-length": wire.length },
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => resolve({ headers: res.headers, complete: res.complete, bytes: Buffer.concat(chunks) }));
        },
      );
      req.on("error", reject);
      req.end(wire);
    });
    assert.equal(direct.headers["transfer-encoding"], "chunked");
    assert.equal(direct.headers["content-length"], undefined);
    assert.ok(direct.complete && isComplete(direct.bytes), "direct answer complete");
    // Through env.IMAGES (workerd's images-api client): the same bytes.
    const { response, bytes } = await post("/transform?width=1600&format=image/png", photo);
    assert.equal(response.status, 200, failureDetails(response, bytes));
    assert.deepEqual(imageHeader(bytes), { format: "image/png", width: 1600, height: 1000 });
    assert.ok(bytes.equals(direct.bytes), `identical PNG (${bytes.length} vs ${direct.bytes.length} bytes)`);
  });

  test("draw places the overlay at {bottom, right} (raw rgba output)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const blue = [0, 0, 255, 255];
    const red = [255, 0, 0, 255];
    // Canvas 200x100 rotated 90° -> 100x200; overlay 40x20 scaled to width 20 -> 20x10.
    const form = composeForm(solidPng(200, 100, blue), solidPng(40, 20, red));
    const { response, bytes } = await post("/compose?rotate=90&overlayWidth=20&bottom=5&right=7&format=rgba", form);
    assert.equal(response.status, 200, failureDetails(response, bytes));
    const width = 100;
    const height = 200;
    assert.equal(bytes.length, width * height * 4, "rgba is width*height*4 bytes");
    const at = (x, y) => rgbaPixel(bytes, width, x, y);
    // Overlay occupies x in [100-7-20, 100-7) = [73, 93), y in [200-5-10, 200-5) = [185, 195).
    assert.ok(closeTo(at(83, 190), red), `overlay centre is red, got ${at(83, 190)}`);
    assert.ok(closeTo(at(74, 186), red), `overlay top-left corner is red, got ${at(74, 186)}`);
    assert.ok(closeTo(at(91, 193), red), `overlay bottom-right corner is red, got ${at(91, 193)}`);
    assert.ok(closeTo(at(95, 190), blue), `right of the overlay is canvas, got ${at(95, 190)}`);
    assert.ok(closeTo(at(83, 197), blue), `below the overlay is canvas, got ${at(83, 197)}`);
    assert.ok(closeTo(at(70, 190), blue), `left of the overlay is canvas, got ${at(70, 190)}`);
    assert.ok(closeTo(at(0, 0), blue), `top-left is canvas, got ${at(0, 0)}`);
  });

  test("transform to webp and jpeg keeps the aspect ratio", { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const [format, width, height] of [
      ["image/webp", 640, 426],
      ["image/jpeg", 320, 213],
    ]) {
      const { response, bytes } = await post(
        `/transform?width=${width}&format=${format}`,
        corpusFile("photo-6mp-life.webp"),
      );
      assert.equal(response.status, 200, failureDetails(response, bytes));
      assert.equal(response.headers.get("content-type"), format);
      const header = imageHeader(bytes);
      assert.equal(header.format, format);
      assert.equal(header.width, width);
      // 3088x2056 scaled: allow the rounding either way.
      assert.ok(Math.abs(header.height - height) <= 1, `height ${header.height} ≈ ${height}`);
      assert.ok(isComplete(bytes));
    }
  });

  test("info() maps {format, file_size, width, height} to {format, fileSize, width, height}", { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const [name, format, width, height] of [
      ["photo-4mp-twowings.jpg", "image/jpeg", 2560, 1600],
      ["overlay-logo-337x330.png", "image/png", 337, 330],
      ["photo-6mp-life.webp", "image/webp", 3088, 2056],
      ["anim-party-660x666.gif", "image/gif", 660, 666],
    ]) {
      const image = corpusFile(name);
      const { response, bytes } = await post("/info", image);
      assert.equal(response.status, 200, failureDetails(response, bytes));
      assert.deepEqual(JSON.parse(bytes), { format, fileSize: image.length, width, height }, name);
    }
  });

  test("a non-image surfaces as ImagesError 9412 from info() and transform", { timeout: TEST_TIMEOUT_MS }, async () => {
    const notAnImage = corpusFile("SOURCES.md"); // Markdown text
    for (const [path, prefix] of [
      ["/info", "IMAGES_INFO_ERROR 9412: "],
      ["/transform?width=100", "IMAGES_TRANSFORM_ERROR 9412: "],
    ]) {
      const { response, bytes } = await post(path, notAnImage);
      assert.equal(response.status, 599, `the binding threw: ${bytes}`);
      const error = JSON.parse(bytes);
      assert.equal(error.code, 9412, JSON.stringify(error));
      assert.ok(error.message.startsWith(prefix), `message ${JSON.stringify(error.message)} starts ${prefix}`);
    }
  });

  test("an invalid option surfaces as ImagesError 9401", { timeout: TEST_TIMEOUT_MS }, async () => {
    for (const query of ["rotate=45", "fit=sideways", "width=-5"]) {
      const { response, bytes } = await post(`/transform?${query}`, corpusFile("overlay-logo-337x330.png"));
      assert.equal(response.status, 599, `${query}: the binding threw: ${bytes.subarray(0, 200)}`);
      const error = JSON.parse(bytes);
      assert.equal(error.code, 9401, `${query}: ${JSON.stringify(error)}`);
      assert.ok(
        error.message.startsWith("IMAGES_TRANSFORM_ERROR 9401: "),
        `${query}: message ${JSON.stringify(error.message)}`,
      );
    }
  });
  for (const scene of IMAGE_SCENES) {
    test(`text(): scene ${scene} (pixels checked)`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const { response, bytes } = await post(`/text?scene=${scene}`, sceneForm(readFileSync(BUNDLED_FONT)));
      assert.equal(response.status, 200, failureDetails(response, bytes));
      assert.equal(response.headers.get("content-type"), "image/png");
      await checkScene(scene, bytes);
    });
  }

  test("text() with an http(s) font URL surfaces as ImagesError 9401", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { response, bytes } = await post("/text?scene=remote-font", sceneForm(readFileSync(BUNDLED_FONT)));
    assert.equal(response.status, 599, `the binding threw: ${bytes.subarray(0, 200)}`);
    const error = JSON.parse(bytes);
    assert.equal(error.code, 9401, JSON.stringify(error));
    assert.match(error.message, /^IMAGES_TRANSFORM_ERROR 9401: .*does not fetch fonts/);
  });
});
