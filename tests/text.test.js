// imgbind's own SDK (sdk/js, the wasm build) running the text scenes in workerd (Miniflare), its
// service binding on a real backend's Unix socket. The scenes and pixel checks are the ones
// cloudflare-client.test.js runs through Cloudflare's client, so both clients must draw the same.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { REPO_ROOT } from "./support/paths.js";
import { startBackend } from "./support/processes.js";
import { startSdkWorker } from "./support/sdk-worker.js";
import { IMAGE_SCENES, checkScene, sceneForm } from "./support/text-checks.js";

const TEST_TIMEOUT_MS = 60_000;
const BUNDLED_FONT = join(REPO_ROOT, "engine/fonts/DejaVuSans.ttf");

const WORKER = `
import { createImages } from "./sdk/js/index.js";
import { textScene } from "./text-scenes.js";

export default {
  async fetch(request, env) {
    const images = createImages(env.IMAGES_BACKEND);
    try {
      const scene = new URL(request.url).searchParams.get("scene");
      const result = await textScene(images, scene, await request.formData());
      return result.response();
    } catch (error) {
      return Response.json({ code: error.code, message: error.message }, { status: 599 });
    }
  },
};
`;

describe("imgbind SDK text() in workerd against the imgbind backend", () => {
  let backend;
  let miniflare;
  let origin;

  before(async () => {
    backend = await startBackend();
    ({ miniflare, origin } = await startSdkWorker({
      name: "imgbind-text",
      worker: WORKER,
      backendSocket: backend.socket,
      fixtures: { "text-scenes.js": "tests/fixtures/text-scenes.js" },
    }));
  });

  after(async () => {
    await miniflare?.dispose();
    await backend?.stop();
  });

  async function post(scene) {
    const response = await fetch(`${origin}/?scene=${scene}`, {
      method: "POST",
      body: sceneForm(readFileSync(BUNDLED_FONT)),
      signal: AbortSignal.timeout(45_000),
    });
    return { response, bytes: Buffer.from(await response.arrayBuffer()) };
  }

  for (const scene of IMAGE_SCENES) {
    test(`text(): scene ${scene} (pixels checked)`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const { response, bytes } = await post(scene);
      assert.equal(response.status, 200, `${bytes.subarray(0, 500)}\n${backend.child.describe()}`);
      assert.equal(response.headers.get("content-type"), "image/png");
      await checkScene(scene, bytes);
    });
  }

  test("the bundled font by name and as a data: URL draw the same pixels", { timeout: TEST_TIMEOUT_MS }, async () => {
    const [named, inline] = await Promise.all([post("base"), post("data-font")]);
    assert.ok(named.bytes.equals(inline.bytes), "identical PNGs");
  });

  test("an http(s) font URL is refused with 9401", { timeout: TEST_TIMEOUT_MS }, async () => {
    const { response, bytes } = await post("remote-font");
    assert.equal(response.status, 599, `${bytes.subarray(0, 200)}`);
    const error = JSON.parse(bytes);
    assert.equal(error.code, 9401, JSON.stringify(error));
    assert.match(error.message, /^IMAGES_TRANSFORM_ERROR 9401: .*does not fetch fonts/);
  });
});
