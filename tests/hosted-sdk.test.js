// Our SDK's `createImages(backend).hosted` against the real backend, inside workerd (Miniflare): the
// routes of the plain hosted Worker (tests/fixtures/hosted-images-worker/src/routes.js) run over
// `createImages(env.IMAGES_BACKEND).hosted` (a service binding to the backend's Unix socket) and over
// `createImages("http://127.0.0.1:PORT", {token}).hosted` (TCP with the API token), the same suite
// as Cloudflare's own client passes (tests/support/hosted-scenario.js). Over TCP a missing or wrong
// token is 9430 and changes nothing.

import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { hostedScenario } from "./support/hosted-scenario.js";
import { BACKEND_BIN } from "./support/paths.js";
import { Child, freePort, waitFor } from "./support/processes.js";
import { startSdkWorker } from "./support/sdk-worker.js";

const TOKEN = "sdk-test-token-0123456789";

const WORKER = `
import { createImages } from "./sdk/js/index.js";
import { serveHosted } from "./routes.js";

export default {
  fetch(request, env) {
    const via = new URL(request.url).searchParams.get("via");
    const images =
      via === "service" ? createImages(env.IMAGES_BACKEND)
      : via === "url" ? createImages(env.BACKEND_URL, { token: env.TOKEN })
      : via === "url-wrong-token" ? createImages(env.BACKEND_URL, { token: "not-the-token" })
      : via === "url-no-token" ? createImages(env.BACKEND_URL)
      : null;
    if (!images) return new Response("?via=service|url|url-wrong-token|url-no-token", { status: 400 });
    return serveHosted(request, images.hosted);
  },
};
`;

function healthz(socketPath) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path: "/healthz", timeout: 1_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("our SDK's hosted images: a service binding and a URL with a token", () => {
  let dir;
  let backend;
  let worker;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "imgbind-hosted-sdk-"));
    const socket = join(dir, "s.sock");
    const port = await freePort();
    backend = new Child("imgbind backend", BACKEND_BIN, [
      "serve", "--unix", socket, "--listen", `127.0.0.1:${port}`, "--data", join(dir, "data"),
      "--signing-key", "default=an-sdk-test-key",
    ], { env: { ...process.env, IMGBIND_API_TOKEN: TOKEN, RUST_LOG: "warn" } });
    await waitFor("backend", async () => existsSync(socket) && (await healthz(socket)) === 200, { child: backend });
    worker = await startSdkWorker({
      name: "hosted-sdk",
      worker: WORKER,
      backendSocket: socket,
      fixtures: { "routes.js": "tests/fixtures/hosted-images-worker/src/routes.js" },
      env: {
        BACKEND_URL: { type: "text", value: `http://127.0.0.1:${port}` },
        TOKEN: { type: "text", value: TOKEN },
      },
    });
  });

  after(async () => {
    await worker?.miniflare.dispose();
    await backend?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  hostedScenario("service", async () => ({ origin: worker.origin, params: { via: "service" } }));
  hostedScenario("url", async () => ({ origin: worker.origin, params: { via: "url" } }));

  test("over TCP, a missing or wrong token is 9430 and stores nothing", { timeout: 60_000 }, async () => {
    const call = async (via, path, init = {}) => {
      const response = await fetch(`${worker.origin}${path}${path.includes("?") ? "&" : "?"}via=${via}`, init);
      return response.json();
    };
    for (const via of ["url-no-token", "url-wrong-token"]) {
      const upload = await call(via, `/upload?as=buffer&options=${encodeURIComponent(JSON.stringify({ id: `denied-${via}` }))}`, {
        method: "POST",
        body: Buffer.from("irrelevant"),
      });
      assert.equal(upload.error?.code, 9430, JSON.stringify(upload));
      assert.match(upload.error.message, /^IMAGES_HOSTED_ERROR 9430: /);
      assert.equal((await call(via, "/list")).error?.code, 9430);
      assert.equal((await call(via, "/details?id=url%2Fphoto%20one")).error?.code, 9430, "not null: the call was refused");
      assert.equal((await call("url", `/details?id=denied-${via}`)).ok, null, "nothing was stored");
    }
  });
});
