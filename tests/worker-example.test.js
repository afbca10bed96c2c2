// The example Worker (worker-example/, the `imgbind` npm package's SDK inside) bundled the way
// wrangler bundles it for deployment, run in Miniflare (workerd) with its IMAGES_BACKEND service
// binding on the imgbind backend's Unix socket. Requests go over real HTTP to Miniflare.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startExampleWorker } from "./support/example-worker.js";
import { post } from "./support/http.js";
import { closeTo, imageHeader, isComplete, rgbaPixel, solidPng } from "./support/images.js";
import { corpusFile } from "./support/paths.js";

const TEST_TIMEOUT_MS = 60_000;

describe("example Worker (wrangler bundle in Miniflare) against the imgbind backend", () => {
  let worker;
  let backend;
  let origin;

  before(async () => {
    worker = await startExampleWorker({ seed: [] });
    ({ backend, origin } = worker);
  });

  after(async () => {
    await worker?.stop();
  });

  function details(answer) {
    return `status ${answer.status}: ${answer.bytes.subarray(0, 500).toString()}\n${backend.child.describe()}`;
  }

  async function expectImage(path, body, { format, width, height }) {
    const answer = await post(origin + path, body);
    assert.equal(answer.status, 200, details(answer));
    assert.equal(answer.headers["content-type"], format);
    assert.deepEqual(imageHeader(answer.bytes), { format, width, height });
    assert.ok(isComplete(answer.bytes), `${format} answer is complete`);
    if (answer.headers["content-length"] !== undefined) {
      assert.equal(Number(answer.headers["content-length"]), answer.bytes.length);
    }
    return answer;
  }

  async function expectError(path, body, status, code) {
    const answer = await post(origin + path, body);
    assert.equal(answer.status, status, details(answer));
    assert.match(answer.headers["content-type"], /^application\/json/);
    const { error } = JSON.parse(answer.bytes);
    assert.equal(error.code, code, JSON.stringify(error));
    assert.equal(typeof error.message, "string");
    assert.ok(error.message.length > 0);
    return error;
  }

  test("POST /transform: JPEG photo to WebP, width 800", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage("/transform?width=800&format=image/webp", corpusFile("photo-4mp-twowings.jpg"), {
      format: "image/webp",
      width: 800,
      height: 500,
    });
  });

  test("POST /transform: rotate 90 to PNG swaps the sides", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage("/transform?rotate=90&format=image/png", corpusFile("overlay-logo-337x330.png"), {
      format: "image/png",
      width: 330,
      height: 337,
    });
  });

  test("POST /transform: fit=cover 300x300 JPEG with quality, and flip", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage(
      "/transform?width=300&height=300&fit=cover&quality=70&format=image/jpeg",
      corpusFile("photo-6mp-life.webp"),
      { format: "image/jpeg", width: 300, height: 300 },
    );
    await expectImage("/transform?flip=hv&format=image/png", corpusFile("overlay-logo-337x330.png"), {
      format: "image/png",
      width: 337,
      height: 330,
    });
  });

  test("POST /info: JSON with format, fileSize, width, height", { timeout: TEST_TIMEOUT_MS }, async () => {
    const image = corpusFile("photo-6mp-life.webp");
    const answer = await post(origin + "/info", image);
    assert.equal(answer.status, 200, details(answer));
    assert.deepEqual(JSON.parse(answer.bytes), {
      format: "image/webp",
      fileSize: image.length,
      width: 3088,
      height: 2056,
    });
  });

  test("POST /composite: the overlay lands at {top, left}, canvas size kept (rgba)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const green = [0, 200, 0, 255];
    const white = [255, 255, 255, 255];
    const form = new FormData();
    form.set("image", new Blob([solidPng(120, 80, green)]), "image.png");
    form.set("overlay", new Blob([solidPng(30, 30, white)]), "overlay.png");
    const answer = await post(origin + "/composite?top=10&left=15&overlayWidth=20&format=rgba", form);
    assert.equal(answer.status, 200, details(answer));
    assert.equal(answer.bytes.length, 120 * 80 * 4, "canvas size kept");
    const at = (x, y) => rgbaPixel(answer.bytes, 120, x, y);
    // Overlay 30x30 scaled to 20x20 at x [15, 35), y [10, 30).
    assert.ok(closeTo(at(25, 20), white), `overlay centre, got ${at(25, 20)}`);
    assert.ok(closeTo(at(16, 11), white), `overlay top-left, got ${at(16, 11)}`);
    assert.ok(closeTo(at(33, 28), white), `overlay bottom-right, got ${at(33, 28)}`);
    assert.ok(closeTo(at(12, 20), green), `left of overlay, got ${at(12, 20)}`);
    assert.ok(closeTo(at(25, 7), green), `above overlay, got ${at(25, 7)}`);
    assert.ok(closeTo(at(37, 20), green), `right of overlay, got ${at(37, 20)}`);
    assert.ok(closeTo(at(25, 32), green), `below overlay, got ${at(25, 32)}`);
  });

  test("POST /composite: logo on a photo, {bottom, right}, PNG", { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = new FormData();
    form.set("image", new Blob([corpusFile("photo-4mp-eveningglow.jpg")]), "photo.jpg");
    form.set("overlay", new Blob([corpusFile("overlay-logo-337x330.png")]), "logo.png");
    await expectImage("/composite?width=1024&bottom=16&right=16&overlayWidth=160&format=image/png", form, {
      format: "image/png",
      width: 1024,
      height: 640,
    });
  });

  test("a multi-MB answer arrives whole: 16 MB rgba and a multi-MB PNG", { timeout: TEST_TIMEOUT_MS }, async () => {
    const raw = await post(origin + "/transform?format=rgba", corpusFile("photo-4mp-twowings.jpg"));
    assert.equal(raw.status, 200, details(raw));
    assert.equal(raw.headers["content-type"], "application/octet-stream");
    assert.equal(raw.bytes.length, 2560 * 1600 * 4, "every pixel arrived");
    if (raw.headers["content-length"] !== undefined) {
      assert.equal(Number(raw.headers["content-length"]), raw.bytes.length);
    }

    const png = await expectImage("/transform?format=image/png", corpusFile("graphic-3mp-emerald-alpha.png"), {
      format: "image/png",
      width: 1689,
      height: 1800,
    });
    assert.ok(png.bytes.length > 2_000_000, `PNG is multi-MB (${png.bytes.length} bytes)`);
  });

  // Cloudflare's binding passes the backend's body straight through, so a fixed-size result keeps
  // its Content-Length all the way to the client. Ours does too: the SDK checks the body's length
  // and, in workerd, pipes it through FixedLengthStream, which keeps the header.
  test(
    "result.response() keeps the backend's Content-Length (one-block JPEG); a streamed PNG goes on chunked",
    { timeout: TEST_TIMEOUT_MS },
    async () => {
      const answer = await post(origin + "/transform?width=640&format=image/jpeg", corpusFile("photo-4mp-twowings.jpg"));
      assert.equal(answer.status, 200, details(answer));
      assert.equal(answer.headers["content-length"], String(answer.bytes.length));
      // A PNG the backend streams as it encodes has no length to keep: it goes on chunked, whole.
      const png = await post(origin + "/transform?width=640&format=image/png", corpusFile("photo-4mp-twowings.jpg"));
      assert.equal(png.status, 200, details(png));
      assert.equal(png.headers["content-length"], undefined);
      assert.equal(png.headers["transfer-encoding"], "chunked");
      assert.deepEqual(imageHeader(png.bytes), { format: "image/png", width: 640, height: 400 });
      assert.ok(isComplete(png.bytes), "PNG ends with IEND");
    },
  );

  test("errors: non-image 9412, bad options 9401, as JSON with the code", { timeout: TEST_TIMEOUT_MS }, async () => {
    const text = corpusFile("SOURCES.md");
    await expectError("/transform?width=100", text, 415, 9412);
    await expectError("/info", text, 415, 9412);
    const logo = corpusFile("overlay-logo-337x330.png");
    await expectError("/transform?fit=sideways", logo, 400, 9401);
    await expectError("/transform?rotate=45", logo, 400, 9401);
    await expectError("/transform?format=image/bmp", logo, 400, 9401);
    await expectError("/composite", logo, 400, 9401); // not multipart
  });

  test("routing: unknown path 404, GET on a POST route 405", { timeout: TEST_TIMEOUT_MS }, async () => {
    const missing = await fetch(origin + "/nope", { method: "POST", body: "x" });
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
    const get = await fetch(origin + "/transform");
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    await get.arrayBuffer();
  });
});
