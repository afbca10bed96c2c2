// Issue #4, "Delivery is sacred", through workerd (Miniflare) with our SDK:
//   7. a Worker streams large results (16.4 MB rgba, a multi-MB PNG) to slow clients, 8 at once:
//      every byte arrives and the response ends properly (Content-Length reached or the chunked
//      terminator seen);
//   9. the backend is SIGKILLed mid-body: the Worker's result stream errors (never a clean, short
//      end), and a client reading the Worker's streamed response sees it aborted, not complete —
//      with a Content-Length (raw rgba) and for a PNG the backend streams chunked as it encodes.
// The backend scenarios (Unix socket and TCP, nginx, SIGTERM) are in backend/tests/delivery_matrix.rs.
//
// The test Worker is a few lines over the SDK's own modules (no bundler): sdk/js/index.js,
// sdk/js/api.js and sdk/dist/*, given to Miniflare as a module manifest.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import { imageHeader, isComplete } from "./support/images.js";
import { REPO_ROOT, corpusFile, wranglerCompatibilityDate } from "./support/paths.js";
import { startBackend } from "./support/processes.js";

const TEST_TIMEOUT_MS = 120_000;
const RGBA_BYTES = 2560 * 1600 * 4; // photo-4mp-eveningglow.jpg as raw RGBA: 16,384,000

const WORKER = `
import { createImages } from "./sdk/js/index.js";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const images = createImages(env[url.searchParams.get("backend") ?? "MAIN"]);
    let transformer = images.input(request.body);
    const width = url.searchParams.get("width");
    if (width) transformer = transformer.transform({ width: Number(width) });
    const result = await transformer.output({ format: url.searchParams.get("format") ?? "rgba" });
    if (url.pathname === "/stream") return result.response();
    if (url.pathname === "/consume") {
      // Reads the result inside the Worker, pausing after the first chunk, and reports how it ended.
      const pause = Number(url.searchParams.get("pauseAfterFirstMs") ?? 0);
      const reader = result.image().getReader();
      let bytes = 0;
      let chunks = 0;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return Response.json({ bytes, chunks, ended: "clean" });
          bytes += value.byteLength;
          chunks += 1;
          if (chunks === 1 && pause) await new Promise((resolve) => setTimeout(resolve, pause));
        }
      } catch (error) {
        return Response.json({ bytes, chunks, ended: "error", code: error?.code ?? null, error: String(error?.message ?? error) });
      }
    }
    return new Response("no route", { status: 404 });
  },
};
`;

/** The test Worker and the SDK modules it imports, named by their paths in the repo. */
function manifest() {
  const file = (path, type) => {
    const bytes = readFileSync(join(REPO_ROOT, path));
    return { type, contents: type === "esm" ? bytes.toString("utf8") : new Uint8Array(bytes) };
  };
  return {
    mainModule: "delivery-worker.js",
    modulesRoot: REPO_ROOT,
    modules: {
      "delivery-worker.js": { type: "esm", contents: WORKER },
      "sdk/js/index.js": file("sdk/js/index.js", "esm"),
      "sdk/js/api.js": file("sdk/js/api.js", "esm"),
      "sdk/js/hosted.js": file("sdk/js/hosted.js", "esm"),
      "sdk/dist/imgbind_sdk.js": file("sdk/dist/imgbind_sdk.js", "esm"),
      "sdk/dist/imgbind_sdk_bg.wasm": file("sdk/dist/imgbind_sdk_bg.wasm", "wasm"),
    },
  };
}

/**
 * POSTs `body` and reads the answer slowly: after each chunk the response is paused for `pauseMs`
 * (Node then stops reading the socket). Resolves `{ status, headers, bytes, complete, aborted,
 * error, tookMs }`; never rejects for a cut body, so callers assert on `complete`.
 * `onBytes(n)` is called with the running count.
 */
function slowPost(url, body, { pauseMs = 1, onBytes = () => {}, timeoutMs = 100_000 } = {}) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: { "content-length": body.length }, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        let bytes = 0;
        let settled = false;
        const settle = (error) => {
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode,
            headers: res.headers,
            bytes: Buffer.concat(chunks),
            complete: res.complete && !error,
            error: error ? String(error.message ?? error) : null,
            tookMs: Date.now() - started,
          });
        };
        res.on("data", (chunk) => {
          chunks.push(chunk);
          bytes += chunk.length;
          onBytes(bytes);
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        });
        res.on("aborted", () => settle(new Error("response aborted")));
        res.on("error", (error) => settle(error));
        res.on("end", () => settle(res.complete ? null : new Error("ended before its end")));
        res.on("close", () => settle(res.complete ? null : new Error("closed before its end")));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

describe("delivery through workerd with the SDK (slow clients, backend killed mid-body)", () => {
  const backends = {};
  let miniflare;
  let origin;

  before(async () => {
    // MAIN serves the large-result tests; KILL_* are SIGKILLed by one test each.
    [backends.MAIN, backends.KILL_CONSUME, backends.KILL_STREAM, backends.KILL_CONSUME_PNG, backends.KILL_STREAM_PNG] =
      await Promise.all([startBackend(), startBackend(), startBackend(), startBackend(), startBackend()]);
    const env = {};
    for (const [name, backend] of Object.entries(backends)) {
      env[name] = { type: "external", address: `unix:${backend.socket}`, http: {} };
    }
    miniflare = new Miniflare({
      workers: [{ config: { name: "imgbind-delivery", compatibilityDate: wranglerCompatibilityDate(), manifest: manifest(), env } }],
    });
    origin = (await miniflare.ready).origin;
  });

  after(async () => {
    await miniflare?.dispose();
    await Promise.all(Object.values(backends).map((backend) => backend?.stop()));
  });

  test("7. a 16.4 MB rgba result streamed to 8 slow clients at once arrives whole", { timeout: TEST_TIMEOUT_MS }, async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 8 }, () => slowPost(`${origin}/stream?format=rgba`, photo)));
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.bytes.subarray(0, 300).toString());
      assert.ok(answer.complete, `complete (${answer.error}); ${answer.bytes.length} bytes`);
      assert.equal(answer.bytes.length, RGBA_BYTES, "every pixel arrived");
      if (answer.headers["content-length"] !== undefined) {
        assert.equal(Number(answer.headers["content-length"]), RGBA_BYTES);
      }
    }
    // All 8 the same bytes (one reference).
    for (const answer of answers.slice(1)) assert.ok(answer.bytes.equals(answers[0].bytes), "identical results");
    const framing = answers[0].headers["transfer-encoding"] ?? `content-length ${answers[0].headers["content-length"]}`;
    console.log(
      `DELIVERY | 7 workerd /stream 16.4 MB rgba, 8 slow clients | ${answers.length}/8 complete | ${RGBA_BYTES} B each | ${framing} | wall ${(Date.now() - started) / 1000}s | slowest ${Math.max(...answers.map((a) => a.tookMs)) / 1000}s`,
    );
  });

  test("7. a multi-MB PNG result to 4 slow clients arrives whole and ends where PNG ends", { timeout: TEST_TIMEOUT_MS }, async () => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => slowPost(`${origin}/stream?format=image/png`, corpusFile("graphic-3mp-emerald-alpha.png"))),
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200, answer.bytes.subarray(0, 300).toString());
      assert.ok(answer.complete, `complete (${answer.error})`);
      // The backend streams a PNG as it encodes (chunked, no length); response() passes that on.
      assert.equal(answer.headers["content-length"], undefined, "streamed PNG has no content-length");
      assert.equal(answer.headers["transfer-encoding"], "chunked");
      assert.deepEqual(imageHeader(answer.bytes), { format: "image/png", width: 1689, height: 1800 });
      assert.ok(isComplete(answer.bytes), "PNG ends with IEND");
      assert.ok(answer.bytes.length > 2_000_000, `multi-MB (${answer.bytes.length})`);
    }
    console.log(
      `DELIVERY | 7 workerd /stream PNG, 4 slow clients | 4/4 complete | ${answers[0].bytes.length} B each | wall ${(Date.now() - started) / 1000}s`,
    );
  });

  test("9. backend SIGKILLed mid-body: the Worker's result stream errors, it does not end short", { timeout: TEST_TIMEOUT_MS }, async () => {
    const backend = backends.KILL_CONSUME;
    // The Worker reads one chunk, then pauses 1.5 s: the backend is blocked mid-body meanwhile.
    const pending = fetch(`${origin}/consume?backend=KILL_CONSUME&format=rgba&pauseAfterFirstMs=1500`, {
      method: "POST",
      body: corpusFile("photo-4mp-eveningglow.jpg"),
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(backend.child.exited, false, "backend still running before the kill");
    backend.child.process.kill("SIGKILL");
    const report = await (await pending).json();
    console.log(`DELIVERY | 9 SIGKILL mid-body, Worker reads result.image(): ${JSON.stringify(report)}`);
    assert.equal(report.ended, "error", `the SDK stream must error, got ${JSON.stringify(report)}`);
    assert.ok(report.bytes < RGBA_BYTES, `killed before the end (${report.bytes} bytes)`);
  });

  test("9. backend SIGKILLed mid-body: a client of result.response() sees an aborted body, not a clean end", { timeout: TEST_TIMEOUT_MS }, async () => {
    const backend = backends.KILL_STREAM;
    let killedAt = null;
    const answer = await slowPost(`${origin}/stream?backend=KILL_STREAM&format=rgba`, corpusFile("photo-4mp-eveningglow.jpg"), {
      pauseMs: 2,
      onBytes: (bytes) => {
        if (killedAt === null && bytes >= 1_000_000) {
          killedAt = bytes;
          backend.child.process.kill("SIGKILL");
        }
      },
    });
    console.log(
      `DELIVERY | 9 SIGKILL after ${killedAt} B read by a slow client of /stream: got ${answer.bytes.length} of ${RGBA_BYTES} B, complete=${answer.complete}, error=${answer.error}`,
    );
    assert.equal(answer.status, 200);
    assert.notEqual(killedAt, null, "the kill happened mid-body");
    assert.ok(answer.bytes.length < RGBA_BYTES, `short body (${answer.bytes.length} bytes)`);
    assert.equal(answer.complete, false, "a short body must not end cleanly");
  });

  test("9. backend SIGKILLed mid-body of a chunked PNG: the Worker's result stream errors, it does not end short", { timeout: TEST_TIMEOUT_MS }, async () => {
    const backend = backends.KILL_CONSUME_PNG;
    const pending = fetch(`${origin}/consume?backend=KILL_CONSUME_PNG&format=image/png&pauseAfterFirstMs=1500`, {
      method: "POST",
      body: corpusFile("photo-4mp-eveningglow.jpg"),
    });
    await new Promise((resolve) => setTimeout(resolve, 700));
    assert.equal(backend.child.exited, false, "backend still running before the kill");
    backend.child.process.kill("SIGKILL");
    const report = await (await pending).json();
    console.log(`DELIVERY | 9 SIGKILL mid-body (chunked PNG), Worker reads result.image(): ${JSON.stringify(report)}`);
    assert.equal(report.ended, "error", `the SDK stream must error, got ${JSON.stringify(report)}`);
    assert.equal(report.code, 9523);
    assert.ok(report.bytes > 0, "the first chunk arrived before the kill");
  });

  test("9. backend SIGKILLed mid-body of a chunked PNG: a client of result.response() sees an aborted body", { timeout: TEST_TIMEOUT_MS }, async () => {
    const backend = backends.KILL_STREAM_PNG;
    let killedAt = null;
    const answer = await slowPost(`${origin}/stream?backend=KILL_STREAM_PNG&format=image/png`, corpusFile("photo-4mp-eveningglow.jpg"), {
      pauseMs: 2,
      onBytes: (bytes) => {
        if (killedAt === null && bytes >= 500_000) {
          killedAt = bytes;
          backend.child.process.kill("SIGKILL");
        }
      },
    });
    console.log(
      `DELIVERY | 9 SIGKILL after ${killedAt} B of a chunked PNG read by a slow client of /stream: got ${answer.bytes.length} B, complete=${answer.complete}, error=${answer.error}`,
    );
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-length"], undefined);
    assert.notEqual(killedAt, null, "the kill happened mid-body");
    assert.equal(answer.complete, false, "a cut chunked body must not end cleanly");
    assert.ok(!isComplete(answer.bytes), "no IEND: the PNG was cut");
  });
});
