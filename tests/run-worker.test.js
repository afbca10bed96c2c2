// "Run existing Workers unchanged": scripts/run-worker.sh runs a plain Worker written for the
// native Images binding (tests/fixtures/native-images-worker, `[images] binding = "IMAGES"`, no
// imgbind code) under wrangler's dev server, with env.IMAGES being workerd's own Cloudflare client
// whose fetcher reaches the imgbind backend (started by the script) over a Unix socket.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { post } from "./support/http.js";
import { imageHeader, isComplete } from "./support/images.js";
import { REPO_ROOT, corpusFile } from "./support/paths.js";
import { freePort, waitFor } from "./support/processes.js";

const TEST_TIMEOUT_MS = 60_000;

describe("scripts/run-worker.sh: an unchanged native-binding Worker served by imgbind", () => {
  let child;
  let output = "";
  let exited;
  let origin;

  before(async () => {
    const port = await freePort();
    child = spawn(
      join(REPO_ROOT, "scripts/run-worker.sh"),
      ["--port", String(port), join(REPO_ROOT, "tests/fixtures/native-images-worker/wrangler.toml")],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CI: "true" } },
    );
    exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding("utf8");
      stream.on("data", (text) => (output = (output + text).slice(-20_000)));
    }
    origin = await waitFor("run-worker", () => /ready on (http:\/\/\S+)/.exec(output)?.[1], {
      timeoutMs: 60_000,
      child: { get exited() { return child.exitCode !== null; }, name: "run-worker", describe: () => output },
    });
    assert.equal(origin, `http://127.0.0.1:${port}`);
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  });

  test("env.IMAGES.info() answers the backend's metadata", { timeout: TEST_TIMEOUT_MS }, async () => {
    const image = corpusFile("photo-4mp-twowings.jpg");
    const answer = await post(origin + "/info", image);
    assert.equal(answer.status, 200, `${answer.bytes}\n${output}`);
    assert.deepEqual(JSON.parse(answer.bytes), { format: "image/jpeg", fileSize: image.length, width: 2560, height: 1600 });
  });

  test("input().transform().draw(transformer).output() gives a complete image", { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = await post(origin + "/thumbnail?width=300&format=image/png", corpusFile("photo-4mp-twowings.jpg"));
    assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${output}`);
    assert.equal(answer.headers["content-type"], "image/png");
    assert.deepEqual(imageHeader(answer.bytes), { format: "image/png", width: 300, height: 188 });
    assert.ok(isComplete(answer.bytes), "PNG ends with IEND");
  });

  test("a non-image surfaces as Cloudflare's ImagesError 9412", { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = await post(origin + "/info", Buffer.from("this is not an image"));
    assert.equal(answer.status, 400);
    const error = JSON.parse(answer.bytes);
    assert.equal(error.code, 9412, JSON.stringify(error));
    assert.match(error.message, /^IMAGES_INFO_ERROR 9412/);
  });

  test("SIGTERM stops the Worker and the backend it started, removing the socket", { timeout: TEST_TIMEOUT_MS }, async () => {
    const socket = /unix:(\S+imgbind\.sock)/.exec(output)?.[1];
    assert.ok(socket && existsSync(socket), `backend socket named in the output: ${socket}`);
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const { signal } = await exited;
    clearTimeout(timer);
    assert.notEqual(signal, "SIGKILL", `stopped in time\n${output}`);
    assert.equal(existsSync(socket), false, "socket removed");
    await assert.rejects(fetch(origin + "/info", { method: "POST", body: "x" }), "nothing listens any more");
  });
});
