// What a new user does, from outside the clone: the npm tarballs that scripts/pack.sh writes to
// target/npm/ (the main `imgbind` package and the `@imgbind/linux-x64-gnu` platform package) are
// installed with wrangler from npm's cache into a fresh `npm init -y` project, with no Rust
// toolchain on PATH. Then `npx imgbind dev` runs an unchanged native-binding Worker and transforms
// an image, `npx imgbind serve` answers /healthz, the CLI's errors are clear, and a Worker that
// imports the SDK is bundled by `wrangler deploy --dry-run` and transforms an image in Miniflare.

import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { Miniflare } from "miniflare";
import { bundleManifest } from "./support/example-worker.js";
import { post } from "./support/http.js";
import { imageHeader, isComplete } from "./support/images.js";
import { REPO_ROOT, corpusFile, wranglerCompatibilityDate } from "./support/paths.js";
import { Child, freePort, startBackend, waitFor } from "./support/processes.js";
import { userEnv } from "./support/user-env.js";

const run = promisify(execFile);
const TEST_TIMEOUT_MS = 180_000;
const PACKED = join(REPO_ROOT, "target/npm");
const VERSION = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).version;
const WRANGLER_VERSION = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).devDependencies.wrangler;
const PLATFORM_PACKAGE = "@imgbind/linux-x64-gnu";
/** The newest glibc symbol version the prebuilt binary may need (docs/NPM.md says why). */
const MAX_GLIBC = [2, 35];

const USER_ENV = userEnv();

const NATIVE_WORKER = readFileSync(join(REPO_ROOT, "tests/fixtures/native-images-worker/src/index.js"), "utf8");

/** A Worker that uses the SDK (`import … from "imgbind"`) against a backend URL or service. */
const SDK_WORKER = `import { createImages } from "imgbind";

export default {
  async fetch(request, env) {
    const images = createImages(env.IMAGES_BACKEND ?? env.IMGBIND_URL);
    try {
      const result = await images.input(await request.arrayBuffer()).transform({ width: 64 }).output({ format: "image/png" });
      return result.response();
    } catch (error) {
      return Response.json({ code: error.code, message: error.message }, { status: 400 });
    }
  },
};
`;

function tarball(prefix) {
  const name = readdirSync(PACKED).find((file) => file === `${prefix}-${VERSION}.tgz`);
  assert.ok(name, `${prefix}-${VERSION}.tgz in ${PACKED}: run scripts/pack.sh first`);
  return join(PACKED, name);
}

/** `npx imgbind ARGS` in `cwd` as the user runs it; resolves with code and output. */
function npxImgbind(cwd, args, env = {}) {
  const result = spawnSync("npx", ["--no-install", "imgbind", ...args], { cwd, env: { ...USER_ENV, ...env }, encoding: "utf8", timeout: 60_000 });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Starts a long-running `npx imgbind …` in its own process group, as a terminal would. */
function startImgbind(cwd, args, env = {}) {
  return new Child(`npx imgbind ${args[0]}`, "npx", ["--no-install", "imgbind", ...args], { cwd, env: { ...USER_ENV, ...env }, detached: true });
}

/** Ctrl-C as a terminal sends it: SIGINT to the whole process group (npx, the CLI, wrangler…). */
async function interrupt(child, graceMs = 15_000) {
  if (child.exited) return;
  const signalGroup = (signal) => {
    try {
      process.kill(-child.process.pid, signal);
    } catch {
      // Already gone.
    }
  };
  signalGroup("SIGINT");
  const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
  await child.exit;
  clearTimeout(timer);
}

function writeProjectFiles(app, { images = true } = {}) {
  mkdirSync(join(app, "src"), { recursive: true });
  writeFileSync(join(app, "src/index.js"), NATIVE_WORKER);
  writeFileSync(
    join(app, "wrangler.toml"),
    `name = "new-user-worker"\nmain = "src/index.js"\ncompatibility_date = "${wranglerCompatibilityDate()}"\n` +
      (images ? `\n[images]\nbinding = "IMAGES"\n` : ""),
  );
}

describe("the npm packages as a new user installs and runs them (no Rust toolchain)", () => {
  let dir;
  let app;
  let installStarted;
  let mainTarball;
  let platformTarball;
  const children = [];
  let miniflare;
  let backend;

  before(() => {
    mainTarball = tarball("imgbind");
    platformTarball = tarball("imgbind-linux-x64-gnu");
    dir = mkdtempSync(join(tmpdir(), "imgbind-new-user-"));
    app = join(dir, "app");
    mkdirSync(app);
    assert.ok(!app.startsWith(REPO_ROOT), "the project is outside the clone");
    const found = spawnSync("sh", ["-c", "command -v cargo; command -v rustc; true"], { env: USER_ENV, encoding: "utf8" }).stdout.trim();
    assert.equal(found, "", "no Rust toolchain on the user's PATH");
  });

  after(async () => {
    for (const child of children) await interrupt(child);
    await miniflare?.dispose();
    await backend?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the tarballs: the main package finds its binary through an optional platform package", () => {
    const list = (file) => spawnSync("tar", ["tzf", file], { encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    const files = list(mainTarball);
    for (const needed of ["cli/imgbind.mjs", "cli/binary.mjs", "cli/dev.mjs", "sdk/js/index.js", "sdk/js/api.js", "sdk/js/hosted.js", "sdk/js/hosted-entrypoint.mjs", "sdk/js/index.d.ts", "sdk/js/miniflare-plugin.mjs", "sdk/js/vitest.mjs", "sdk/js/vitest-global-setup.mjs", "cli/backend.mjs", "sdk/dist/imgbind_sdk.js", "sdk/dist/imgbind_sdk_bg.wasm"]) {
      assert.ok(files.includes(`package/${needed}`), `${needed} in the main package: ${files}`);
    }
    assert.ok(!files.some((file) => file.startsWith("package/sdk/js/test/")), "no SDK tests in the package");
    const manifest = JSON.parse(spawnSync("tar", ["xzf", mainTarball, "-O", "package/package.json"], { encoding: "utf8" }).stdout);
    assert.deepEqual(manifest.optionalDependencies, { [PLATFORM_PACKAGE]: VERSION });
    assert.deepEqual(manifest.bin, { imgbind: "./cli/imgbind.mjs" });
    assert.equal(manifest.dependencies, undefined, "nothing else to fetch");
    assert.equal(manifest.scripts?.postinstall ?? manifest.scripts?.install, undefined, "no install script (npm 11 skips them)");
    assert.equal(manifest.devDependencies, undefined);

    assert.deepEqual(list(platformTarball).sort(), ["package/README.md", "package/bin/imgbind", "package/package.json"]);
    const platform = JSON.parse(spawnSync("tar", ["xzf", platformTarball, "-O", "package/package.json"], { encoding: "utf8" }).stdout);
    assert.equal(platform.name, PLATFORM_PACKAGE);
    assert.equal(platform.version, VERSION);
    assert.deepEqual([platform.os, platform.cpu, platform.libc], [["linux"], ["x64"], ["glibc"]]);
  });

  test("npm init -y; npm install the tarballs and wrangler from npm's cache", { timeout: TEST_TIMEOUT_MS }, async () => {
    await run("npm", ["init", "-y"], { cwd: app, env: USER_ENV });
    writeProjectFiles(app);
    installStarted = Date.now();
    await run(
      "npm",
      ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error", mainTarball, platformTarball, `wrangler@${WRANGLER_VERSION}`],
      { cwd: app, env: USER_ENV, timeout: 120_000 },
    );
    const binary = join(app, "node_modules", PLATFORM_PACKAGE, "bin/imgbind");
    assert.ok(statSync(binary).mode & 0o100, "the platform package's binary is executable");
    console.log(`# npm install of the tarballs + wrangler: ${((Date.now() - installStarted) / 1000).toFixed(1)} s`);
  });

  test("the prebuilt binary needs only the system's C libraries and glibc <= 2.35", () => {
    const binary = join(app, "node_modules", PLATFORM_PACKAGE, "bin/imgbind");
    const needed = [...spawnSync("objdump", ["-p", binary], { encoding: "utf8" }).stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
    assert.deepEqual(needed.filter((lib) => !/^(libc|libm|libgcc_s|ld-linux-x86-64|libdl|libpthread|librt)\.so\.\d+$/.test(lib)), [], `codecs are linked statically: NEEDED ${needed}`);
    const versions = [...spawnSync("objdump", ["-T", binary], { encoding: "utf8" }).stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    assert.ok(versions.length > 0, "objdump -T lists glibc symbols");
    const [major, minor] = versions.reduce((a, b) => (a[0] * 1000 + a[1] >= b[0] * 1000 + b[1] ? a : b));
    console.log(`# highest GLIBC_ symbol version: ${major}.${minor}`);
    assert.ok(major * 1000 + minor <= MAX_GLIBC[0] * 1000 + MAX_GLIBC[1], `needs glibc ${major}.${minor} > ${MAX_GLIBC.join(".")}`);
    assert.equal(spawnSync(binary, ["--version"], { env: USER_ENV }).status, 0, "stripped binary runs");
  });

  test("npx imgbind --help / --version", () => {
    const help = npxImgbind(app, ["--help"]);
    assert.equal(help.code, 0, help.output);
    assert.match(help.output, /imgbind serve/);
    assert.match(help.output, /imgbind dev/);
    const version = npxImgbind(app, ["--version"]);
    assert.equal(version.code, 0, version.output);
    assert.equal(version.output.trim(), `imgbind ${VERSION}`);
    const unknown = npxImgbind(app, ["frobnicate"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.output, /unknown command 'frobnicate'/);
  });

  test("npx imgbind dev: an unchanged native-binding Worker transforms an image", { timeout: TEST_TIMEOUT_MS }, async () => {
    const port = await freePort();
    const child = startImgbind(app, ["dev", "--port", String(port), "--data", join(dir, "data")]);
    children.push(child);
    const origin = await waitFor("imgbind dev", () => /ready on (http:\/\/\S+)/.exec(child.output)?.[1], { timeoutMs: 90_000, child });
    assert.equal(origin, `http://127.0.0.1:${port}`);
    const answer = await post(origin + "/thumbnail?width=300&format=image/png", corpusFile("photo-4mp-twowings.jpg"));
    assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${child.describe()}`);
    assert.deepEqual(imageHeader(answer.bytes), { format: "image/png", width: 300, height: 188 });
    assert.ok(isComplete(answer.bytes), "PNG ends with IEND");
    console.log(`# npm install → first transformed image through npx imgbind dev: ${((Date.now() - installStarted) / 1000).toFixed(1)} s`);
    assert.ok(existsSync(join(dir, "data")), "--data DIR is created");

    // The port is now taken: a second `imgbind dev` on it says so.
    const busy = npxImgbind(app, ["dev", "--port", String(port)]);
    assert.notEqual(busy.code, 0);
    assert.match(busy.output, new RegExp(`port ${port} on 127.0.0.1 is in use`), busy.output);

    const socket = /unix:(\S+imgbind\.sock)/.exec(child.output)?.[1];
    assert.ok(socket && existsSync(socket), `backend socket named in the output: ${socket}`);
    await interrupt(child);
    assert.equal(existsSync(socket), false, "Ctrl-C stops the backend it started and removes its socket");
  });

  test("npx imgbind serve answers /healthz", { timeout: TEST_TIMEOUT_MS }, async () => {
    const port = await freePort();
    const child = startImgbind(app, ["serve", "--listen", `127.0.0.1:${port}`]);
    children.push(child);
    await waitFor("imgbind serve", async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, { child });
    await interrupt(child);
    const help = npxImgbind(app, ["serve", "--help"]);
    assert.equal(help.code, 0, help.output);
    assert.match(help.output, /IMGBIND_/, "the backend's own flags and variables");
  });

  test("imgbind dev fails clearly: no config, no [images], a backend that dies, no wrangler", { timeout: TEST_TIMEOUT_MS }, async () => {
    const empty = join(dir, "empty");
    mkdirSync(empty);
    // npx finds the package in ../app/node_modules only from inside app: run the bin directly.
    const bin = join(app, "node_modules/.bin/imgbind");
    const cli = (cwd, args, env = {}) => {
      const result = spawnSync(bin, args, { cwd, env: { ...USER_ENV, ...env }, encoding: "utf8", timeout: 60_000 });
      return { code: result.status, output: `${result.stdout}${result.stderr}` };
    };
    let result = cli(empty, ["dev"]);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /no wrangler config in .* \(looked for wrangler\.toml, wrangler\.jsonc, wrangler\.json\)/);

    const noImages = join(dir, "no-images");
    writeProjectFiles(noImages, { images: false });
    result = cli(noImages, ["dev", join(noImages, "wrangler.toml")]);
    assert.notEqual(result.code, 0);
    assert.match(result.output, /has no \[images\] binding/, result.output);

    const dying = join(dir, "dying-backend.sh");
    writeFileSync(dying, "#!/bin/sh\necho 'imgbind: cannot bind: the dying test backend' >&2\nexit 3\n");
    chmodSync(dying, 0o755);
    result = cli(app, ["dev", "--port", String(await freePort())], { IMGBIND_BINARY: dying });
    assert.notEqual(result.code, 0);
    assert.match(result.output, /exited at start \(code 3/, result.output);
    assert.match(result.output, /the dying test backend/, "its last log lines are printed");

    result = cli(app, ["serve"], { IMGBIND_BINARY: join(dir, "nothing-here") });
    assert.notEqual(result.code, 0);
    assert.match(result.output, /IMGBIND_BINARY names .*nothing-here, which is not an executable file/);

    // A project without wrangler (only the tarballs, installed offline).
    const bare = join(dir, "bare");
    writeProjectFiles(bare);
    writeFileSync(join(bare, "package.json"), JSON.stringify({ name: "bare", private: true }));
    await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", mainTarball, platformTarball], { cwd: bare, env: USER_ENV });
    const bareCli = spawnSync(join(bare, "node_modules/.bin/imgbind"), ["dev"], { cwd: bare, env: USER_ENV, encoding: "utf8" });
    assert.notEqual(bareCli.status, 0);
    assert.match(`${bareCli.stdout}${bareCli.stderr}`, /wrangler is not installed in this project: `npm install --save-dev wrangler`/);

    // Without the platform package (e.g. --omit=optional), the error names the platform and the ways out.
    rmSync(join(bare, "node_modules/@imgbind"), { recursive: true, force: true });
    const missing = spawnSync(join(bare, "node_modules/.bin/imgbind"), ["serve"], { cwd: bare, env: USER_ENV, encoding: "utf8" });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /the imgbind backend for linux-x64-glibc is missing: @imgbind\/linux-x64-gnu is not installed/);
    assert.match(missing.stderr, /IMGBIND_BINARY/);
    assert.match(missing.stderr, /cargo install --path backend/);
  });

  test("wrangler deploy --dry-run bundles a Worker that imports the SDK, and the bundle transforms an image", { timeout: TEST_TIMEOUT_MS }, async () => {
    const sdkApp = join(dir, "sdk-app");
    mkdirSync(join(sdkApp, "src"), { recursive: true });
    cpSync(join(app, "node_modules"), join(sdkApp, "node_modules"), { recursive: true, verbatimSymlinks: true });
    writeFileSync(join(sdkApp, "package.json"), JSON.stringify({ name: "sdk-worker", private: true, type: "module" }));
    writeFileSync(
      join(sdkApp, "wrangler.toml"),
      `name = "sdk-worker"\nmain = "src/index.js"\ncompatibility_date = "${wranglerCompatibilityDate()}"\n\n[vars]\nIMGBIND_URL = "http://127.0.0.1:9100"\n`,
    );
    writeFileSync(join(sdkApp, "src/index.js"), SDK_WORKER);
    const outdir = join(dir, "bundle");
    await run(join(sdkApp, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", outdir], { cwd: sdkApp, env: USER_ENV, timeout: 120_000 });

    backend = await startBackend();
    miniflare = new Miniflare({
      workers: [
        {
          config: {
            name: "sdk-worker",
            compatibilityDate: wranglerCompatibilityDate(),
            manifest: bundleManifest(outdir),
            env: {
              IMGBIND_URL: { type: "text", value: "http://127.0.0.1:9" },
              IMAGES_BACKEND: { type: "external", address: `unix:${backend.socket}`, http: {} },
            },
          },
        },
      ],
    });
    const origin = (await miniflare.ready).origin;
    const answer = await post(origin + "/", corpusFile("overlay-logo-337x330.png"));
    assert.equal(answer.status, 200, `${answer.bytes.subarray(0, 300)}\n${backend.child.describe()}`);
    assert.deepEqual(imageHeader(answer.bytes), { format: "image/png", width: 64, height: 63 });
    assert.ok(isComplete(answer.bytes));
  });
});
