// An input stream that fails part-way, in workerd, where the SDK pipes each input natively into the
// request body (sdk/src/js_io.rs `piped_body`/`pump`): the Worker must get the SDK's coded error for
// a failed input (9523 "an input image stream failed", the input's error as its cause) instead of a
// hang, an uncoded error, or whatever the backend made of the cut-off body (it answers 9401
// "malformed multipart body", which blamed the caller's arguments before the SDK recorded input
// failures), and the backend must go on serving. Sources: a JS ReadableStream that errors after
// some chunks, a native one (the body of a fetch() whose origin drops the connection mid-body), and
// the same JS stream as base64 (which takes the wasm-driven body path instead of the native pipe).
// Also: response() hands on the backend's body with its length, and that body can be the next
// input (a FixedLengthStream readable could not: workerd refuses "Inter-TransformStream" pipes and
// leaves both streams locked, which hung the request).

import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { after, before, describe, test } from "node:test";
import { corpusFile } from "./support/paths.js";
import { startBackend } from "./support/processes.js";
import { startSdkWorker } from "./support/sdk-worker.js";

const TEST_TIMEOUT_MS = 60_000;
const PHOTO = "photo-4mp-twowings.jpg";

/** The Worker: `/js`, `/js-base64`, `/origin` and `/ok` run input → transform → output and answer what happened. */
const WORKER = `
import { createImages } from "./sdk/js/index.js";

/** A JS stream of the first half of \`bytes\` in 64 KB chunks, then an error. */
function failingStream(bytes) {
  let offset = 0;
  const stop = bytes.length >> 1;
  return new ReadableStream({
    pull(controller) {
      if (offset >= stop) {
        controller.error(new Error("source reset after " + offset + " bytes"));
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + 65536));
      offset += 65536;
    },
  });
}

export default {
  async fetch(request, env) {
    const route = new URL(request.url).pathname;
    const images = createImages(env.IMAGES_BACKEND);
    let input;
    let options;
    if (route === "/js") input = failingStream(new Uint8Array(await request.arrayBuffer()));
    else if (route === "/js-base64") {
      input = failingStream(new TextEncoder().encode(await request.text()));
      options = { encoding: "base64" };
    }
    else if (route === "/origin") input = (await fetch(env.ORIGIN_URL)).body;
    else if (route === "/fixed") {
      // workerd cannot pipe one of its transform streams into another (the SDK's body).
      const fixed = new FixedLengthStream(Number(request.headers.get("content-length")));
      request.body.pipeTo(fixed.writable).catch(() => {});
      input = fixed.readable;
    } else if (route === "/chain") {
      // A result's response() body (the backend's body piped natively into a FixedLengthStream)
      // as the next input, itself piped natively into the next request body.
      const first = await images.input(request.body).transform({ width: 400 }).output({ format: "image/png" });
      input = first.response().body;
    }
    else input = request.body;
    if (route === "/response") {
      const result = await images.input(request.body).transform({ width: 64 }).output({ format: "image/png" });
      return result.response({ headers: { "x-from": "sdk" } });
    }
    try {
      const result = await images.input(input, options).transform({ width: 64 }).output({ format: "image/png" });
      const bytes = new Uint8Array(await result.response().arrayBuffer());
      return Response.json({ ok: true, bytes: bytes.length, contentType: result.contentType() });
    } catch (error) {
      return Response.json({
        ok: false,
        code: error?.code,
        message: String(error?.message ?? error),
        isError: error instanceof Error,
        cause: String(error?.cause?.message ?? error?.cause ?? ""),
      });
    }
  },
};
`;

function healthz(socketPath) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: "/healthz", timeout: 5_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("healthz timed out")));
    req.on("error", reject);
    req.end();
  });
}

describe("an input stream that fails mid-way (native pipe path in workerd)", () => {
  let backend;
  let miniflare;
  let origin;
  let worker;
  const photo = corpusFile(PHOTO);

  before(async () => {
    backend = await startBackend();
    // An origin that promises the whole photo and drops the connection after a third of it.
    origin = createServer((req, res) => {
      res.writeHead(200, { "content-type": "image/jpeg", "content-length": photo.length });
      res.write(photo.subarray(0, Math.floor(photo.length / 3)), () => setTimeout(() => res.socket.destroy(), 50));
    });
    await new Promise((resolve) => origin.listen(0, "127.0.0.1", resolve));
    ({ miniflare, origin: worker } = await startSdkWorker({
      name: "sdk-input-errors",
      worker: WORKER,
      backendSocket: backend.socket,
      env: { ORIGIN_URL: { type: "text", value: `http://127.0.0.1:${origin.address().port}/photo.jpg` } },
    }));
  });

  after(async () => {
    await miniflare?.dispose();
    origin?.close();
    await backend?.stop();
  });

  const run = async (path, body) => (await fetch(new URL(path, worker), { method: "POST", body })).json();

  const assertFailedInput = (answer, cause) => {
    assert.equal(answer.ok, false, JSON.stringify(answer));
    assert.equal(answer.isError, true, JSON.stringify(answer));
    assert.equal(answer.code, 9523, JSON.stringify(answer));
    assert.match(answer.message, /^IMAGES_TRANSFORM_ERROR 9523: an input image stream failed: /, JSON.stringify(answer));
    assert.match(answer.cause, cause, JSON.stringify(answer));
  };

  const assertBackendServes = async () => {
    assert.equal(await healthz(backend.socket), 200);
    const answer = await run("/ok", photo);
    assert.deepEqual(answer, { ok: true, bytes: answer.bytes, contentType: "image/png" });
    assert.ok(answer.bytes > 1000, JSON.stringify(answer));
  };

  test("a JS ReadableStream that errors after half the image: 9523, backend still serving", { timeout: TEST_TIMEOUT_MS }, async () => {
    assertFailedInput(await run("/js", photo), /source reset after \d+ bytes/);
    await assertBackendServes();
  });

  test("a fetch() body cut off by its origin: 9523, backend still serving", { timeout: TEST_TIMEOUT_MS }, async () => {
    assertFailedInput(await run("/origin"), /connection|lost|reset|closed/i);
    await assertBackendServes();
  });

  test("a base64 input stream that errors (wasm-driven body): 9523, backend still serving", { timeout: TEST_TIMEOUT_MS }, async () => {
    assertFailedInput(await run("/js-base64", photo.toString("base64")), /source reset after \d+ bytes/);
    await assertBackendServes();
  });

  test("a result's response() body as the next input completes (no hang between the two native pipes)", { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = await run("/chain", photo);
    assert.equal(answer.ok, true, JSON.stringify(answer));
    assert.equal(answer.contentType, "image/png");
  });

  test("a FixedLengthStream readable (which workerd will not pipe natively): a coded error, no hang", { timeout: TEST_TIMEOUT_MS }, async () => {
    assertFailedInput(await run("/fixed", photo), /Inter-TransformStream/);
    await assertBackendServes();
  });

  test("response() hands on the backend's body with its content-length", { timeout: TEST_TIMEOUT_MS }, async () => {
    const response = await fetch(new URL("/response", worker), { method: "POST", body: photo });
    const bytes = new Uint8Array(await response.arrayBuffer());
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "image/png");
    assert.equal(response.headers.get("x-from"), "sdk");
    assert.equal(response.headers.get("content-length"), String(bytes.length));
    assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47]);
  });

  test("repeated failures leave nothing behind", { timeout: TEST_TIMEOUT_MS }, async () => {
    for (let i = 0; i < 6; i++) assertFailedInput(await run(i % 2 ? "/origin" : "/js", i % 2 ? undefined : photo), /reset|lost|closed/i);
    await assertBackendServes();
  });
});
