// Worker tests with Cloudflare's Vitest integration, as a user writes them: a copy of
// tests/fixtures/vitest-project (a Worker using the native `[images]` binding, its vitest config
// using `imgbind/vitest`) gets the imgbind tarballs from target/npm and @cloudflare/vitest-plugin +
// vitest from npm's cache, and `npx vitest run` passes with env.IMAGES — Cloudflare's own client —
// served by imgbind. The backend runs through a logging wrapper (IMGBIND_BINARY), so the test also
// proves that imgbind, not Miniflare's stand-in, answered the transform.

import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, describe, test } from "node:test";
import { REPO_ROOT } from "./support/paths.js";
import { userEnv } from "./support/user-env.js";

const run = promisify(execFile);
const TEST_TIMEOUT_MS = 240_000;
const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
const VERSION = manifest.version;
const USER_ENV = userEnv();

describe("a Worker project's vitest run with env.IMAGES served by imgbind", () => {
  let dir;
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  test("npx vitest run passes, and imgbind answered its transform", { timeout: TEST_TIMEOUT_MS }, async () => {
    const packed = (name) => {
      const path = join(REPO_ROOT, "target/npm", `${name}-${VERSION}.tgz`);
      assert.ok(existsSync(path), `${path}: run scripts/pack.sh first`);
      return path;
    };
    dir = mkdtempSync(join(tmpdir(), "imgbind-vitest-"));
    const app = join(dir, "app");
    cpSync(join(REPO_ROOT, "tests/fixtures/vitest-project"), app, { recursive: true });
    // The Worker under test is the plain native-binding Worker the run-worker tests use.
    cpSync(join(REPO_ROOT, "tests/fixtures/native-images-worker/src"), join(app, "src"), { recursive: true });
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "vitest-images-worker", private: true, type: "module" }, null, 2));
    await run(
      "npm",
      [
        "install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error",
        packed("imgbind"), packed("imgbind-linux-x64-gnu"),
        `@cloudflare/vitest-plugin@${manifest.devDependencies["@cloudflare/vitest-plugin"]}`,
        `vitest@${manifest.devDependencies.vitest}`,
      ],
      { cwd: app, env: USER_ENV, timeout: 120_000 },
    );

    // The installed backend, its request log kept (JSON lines) to see who served the test.
    const log = join(dir, "backend.log");
    const wrapper = join(dir, "imgbind-logged.sh");
    const binary = join(app, "node_modules/@imgbind/linux-x64-gnu/bin/imgbind");
    writeFileSync(wrapper, `#!/bin/sh\nexec '${binary}' "$@" --log-format json >>'${log}' 2>&1\n`);
    chmodSync(wrapper, 0o755);

    const result = spawnSync("npx", ["--no-install", "vitest", "run"], {
      cwd: app,
      env: { ...USER_ENV, IMGBIND_BINARY: wrapper, NO_COLOR: "1" },
      encoding: "utf8",
      timeout: 180_000,
    });
    const output = `${result.stdout}\n${result.stderr}`;
    assert.equal(result.status, 0, output);
    assert.match(output, /Tests\s+2 passed \(2\)/, output);

    const requests = readFileSync(log, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((entry) => entry.message === "request");
    assert.ok(
      requests.some((entry) => entry.path === "/transform" && entry.status === 200 && /transform\(w=16\)/.test(entry.ops)),
      `imgbind served the transform: ${JSON.stringify(requests)}`,
    );
    assert.equal(requests.filter((entry) => entry.path === "/info").length, 2, "both info() calls reached imgbind");
  });
});
