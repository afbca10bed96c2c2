// The SDK's input types against a real backend, in Node and in workerd (Miniflare): ReadableStream,
// ArrayBuffer, typed arrays (any ArrayBufferView, at an offset too), DataView, Blob and Response,
// each through info(), input().transform().output() and draw() (as a source and inside a
// transformer). Cloudflare's client accepts only ReadableStream here.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { exercise, inputKinds } from "./fixtures/input-kinds.js";
import { REPO_ROOT, corpusFile } from "./support/paths.js";
import { startBackend } from "./support/processes.js";
import { startSdkWorker } from "./support/sdk-worker.js";

const TEST_TIMEOUT_MS = 60_000;
const IMAGE = "overlay-logo-337x330.png"; // 15,996 bytes: a multiple of 4
const CANVAS = "photo-4mp-twowings.jpg";

const EXPECTED = {
  info: { format: "image/png", fileSize: 15_996, width: 337, height: 330 },
  resized: { width: 50, height: 49 },
  drawn: { width: 2560, height: 1600 },
};

function check(kind, { info, resizedInfo, drawnInfo }) {
  assert.deepEqual(info, EXPECTED.info, `${kind}: info()`);
  assert.deepEqual([resizedInfo.width, resizedInfo.height], [EXPECTED.resized.width, EXPECTED.resized.height], `${kind}: transform`);
  assert.deepEqual([drawnInfo.width, drawnInfo.height], [EXPECTED.drawn.width, EXPECTED.drawn.height], `${kind}: draw`);
}

/** A Fetcher (what the SDK takes besides a URL) that speaks HTTP over the backend's Unix socket. */
function unixSocketFetcher(socketPath) {
  return {
    fetch(url, init) {
      return new Promise((resolve, reject) => {
        const req = request({ socketPath, path: new URL(url).pathname, method: init.method, headers: init.headers }, (res) => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
          resolve(new Response(Readable.toWeb(res), { status: res.statusCode, headers }));
        });
        req.on("error", reject);
        Readable.fromWeb(init.body).on("error", (error) => req.destroy(error)).pipe(req);
      });
    },
  };
}

describe("SDK input types against the backend", () => {
  let backend;
  let miniflare;
  let origin;
  const bytes = new Uint8Array(corpusFile(IMAGE));
  const kinds = inputKinds(bytes);

  before(async () => {
    backend = await startBackend();
    ({ miniflare, origin } = await startSdkWorker({
      name: "sdk-inputs",
      worker: WORKER,
      backendSocket: backend.socket,
      fixtures: { "input-kinds.js": "tests/fixtures/input-kinds.js" },
    }));
  });

  after(async () => {
    await miniflare?.dispose();
    await backend?.stop();
  });

  test("in workerd (Miniflare)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const form = new FormData();
    form.set("image", new Blob([bytes]));
    form.set("canvas", new Blob([corpusFile(CANVAS)]));
    const response = await fetch(origin, { method: "POST", body: form });
    const results = await response.json();
    assert.equal(response.status, 200, JSON.stringify(results));
    assert.deepEqual(Object.keys(results), kinds.map(([name]) => name));
    for (const [kind, result] of Object.entries(results)) {
      assert.equal(result.error, undefined, `${kind}: ${result.error}`);
      check(kind, result);
    }
  });

  test("in Node", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { initSync } = await import("../sdk/dist/imgbind_sdk.js");
    initSync({ module: new WebAssembly.Module(readFileSync(join(REPO_ROOT, "sdk/dist/imgbind_sdk_bg.wasm"))) });
    const { createImages } = await import("../sdk/js/api.js");
    const images = createImages(unixSocketFetcher(backend.socket));
    for (const [kind, make] of kinds) {
      check(kind, await exercise(images, make, corpusFile(CANVAS).buffer.slice(0)));
    }
  });
});

/** The workerd side: runs every input kind on the uploaded image, answers the results as JSON. */
const WORKER = `
import { createImages } from "./sdk/js/index.js";
import { exercise, inputKinds } from "./input-kinds.js";

export default {
  async fetch(request, env) {
    const form = await request.formData();
    const bytes = new Uint8Array(await form.get("image").arrayBuffer());
    const canvas = await form.get("canvas").arrayBuffer();
    const images = createImages(env.IMAGES_BACKEND);
    const results = {};
    for (const [kind, make] of inputKinds(bytes)) {
      try {
        results[kind] = await exercise(images, make, canvas.slice(0));
      } catch (error) {
        results[kind] = { error: String(error && error.stack || error), code: error && error.code };
      }
    }
    return Response.json(results);
  },
};
`;
