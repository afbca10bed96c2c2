// Cloudflare's own client stores images in imgbind: scripts/run-worker.sh --data DIR runs a plain
// Worker written only against Cloudflare's types (tests/fixtures/hosted-images-worker), whose
// env.IMAGES is workerd's `cloudflare-internal:images-api` binding; its `hosted.*` RPC calls reach
// our entrypoint Worker (sdk/js/hosted-entrypoint.mjs), which turns them into the backend's HTTP
// API. Every hosted method, with Cloudflare's shapes, nulls, false and coded errors
// (tests/support/hosted-scenario.js).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { hostedScenario } from "./support/hosted-scenario.js";
import { REPO_ROOT } from "./support/paths.js";
import { freePort, waitFor } from "./support/processes.js";

describe("env.IMAGES.hosted through Cloudflare's client, under scripts/run-worker.sh --data DIR", () => {
  let child;
  let output = "";
  let exited;
  let origin;
  let dataDir;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "imgbind-hosted-binding-"));
    const port = await freePort();
    child = spawn(
      join(REPO_ROOT, "scripts/run-worker.sh"),
      ["--port", String(port), "--data", dataDir, join(REPO_ROOT, "tests/fixtures/hosted-images-worker/wrangler.toml")],
      {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, CI: "true", IMGBIND_SIGNING_KEYS: "default=a-test-signing-key" },
      },
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
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  hostedScenario("binding", async () => ({ origin }));

  test("the images are stored in --data DIR", () => {
    assert.ok(existsSync(join(dataDir, "images.sqlite3")), `${dataDir} holds the store\n${output}`);
  });
});
