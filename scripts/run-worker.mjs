// Runs any Worker that uses the native Images binding (`[images] binding = "IMAGES"` in its wrangler
// config) locally under wrangler's dev server, with that binding served by the imgbind backend.
// The Worker's code and config stay unchanged: env.IMAGES is workerd's own Cloudflare client
// (`cloudflare-internal:images-api`), whose fetcher goes to the backend over a Unix socket
// (sdk/js/miniflare-plugin.mjs). Everything else in the config (R2, KV, vars, assets…) is wrangler's.
//
// Usage (scripts/run-worker.sh wraps this under Node 22):
//   scripts/run-worker.sh [--socket PATH | --address HOST:PORT] [--ip ADDR] [--port N] [--env NAME] path/to/wrangler.toml
// Without --socket/--address the backend (target/release/imgbind) is started on a temporary socket
// and stopped on exit. Prints `ready on http://ADDR:PORT` once requests can be sent. Ctrl-C stops it.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { unstable_readConfig, unstable_startWorker } from "wrangler";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PLUGIN = join(ROOT, "sdk/js/miniflare-plugin.mjs");
const BACKEND_BIN = join(ROOT, "target/release/imgbind");

const USAGE = `usage: scripts/run-worker.sh [--socket PATH | --address HOST:PORT] [--ip ADDR] [--port N] [--env NAME] WRANGLER_CONFIG
  Runs the Worker of WRANGLER_CONFIG under wrangler's local dev server; its [images] binding is
  served by the imgbind backend (started here unless --socket or --address names a running one).
  --ip ADDR     address to listen on (default 127.0.0.1)
  --port N      port to listen on (default: the config's dev.port, else a free one)
  --env NAME    the wrangler environment to use`;

function fail(message) {
  process.stderr.write(`[run-worker] ${message}\n`);
  process.exit(2);
}

function log(message) {
  process.stderr.write(`[run-worker] ${message}\n`);
}

const { values: flags, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        socket: { type: "string" },
        address: { type: "string" },
        ip: { type: "string", default: "127.0.0.1" },
        port: { type: "string" },
        env: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    fail(`${error.message}\n${USAGE}`);
  }
})();
if (flags.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (positionals.length !== 1) fail(USAGE);
if (flags.socket && flags.address) fail("give --socket or --address, not both");
const configPath = resolve(positionals[0]);
if (!existsSync(configPath)) fail(`no wrangler config at ${configPath}`);
const port = flags.port === undefined ? undefined : Number(flags.port);
if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) fail(`bad --port ${flags.port}`);

// The binding's name, from the config as wrangler reads it.
const config = unstable_readConfig({ config: configPath, env: flags.env });
const bindingName = config.images?.binding;
if (!bindingName) fail(`${configPath} has no [images] binding (expected: [images] binding = "IMAGES")`);

/** GET /healthz over the socket; resolves with the status code. */
function healthz(socketPath) {
  return new Promise((resolveStatus, reject) => {
    const req = request({ socketPath, path: "/healthz", timeout: 1_000 }, (res) => {
      res.resume();
      res.on("end", () => resolveStatus(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/** Starts the backend on a temporary Unix socket; resolves once it answers /healthz. */
async function startBackend() {
  if (!existsSync(BACKEND_BIN)) fail(`${BACKEND_BIN} not found: run scripts/build.sh first`);
  const dir = mkdtempSync(join(tmpdir(), "imgbind-run-worker-"));
  const socket = join(dir, "imgbind.sock");
  const child = spawn(BACKEND_BIN, ["serve", "--unix", socket], { stdio: ["ignore", "inherit", "inherit"] });
  let exited = false;
  child.on("exit", () => (exited = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) fail("the imgbind backend exited at start");
    if (existsSync(socket) && (await healthz(socket).catch(() => 0)) === 200) break;
    if (Date.now() > deadline) fail("the imgbind backend did not answer /healthz within 20 s");
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise((r) => (exited ? r() : child.once("exit", r)));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // wrangler may end the process from its own signal handlers: clean up then too.
  process.on("exit", () => {
    if (!exited) child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });
  return { socket, stop };
}

const backend = flags.socket || flags.address ? null : await startBackend();
const backendOptions = flags.address ? { address: flags.address } : { socket: resolve(flags.socket ?? backend.socket) };
log(`${bindingName} → imgbind backend at ${backendOptions.socket ? `unix:${backendOptions.socket}` : backendOptions.address}`);

let worker;
let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  await worker?.dispose().catch(() => {});
  await backend?.stop();
  process.exit(code);
}
process.on("SIGINT", () => stop(130));
process.on("SIGTERM", () => stop(143));

try {
  worker = await unstable_startWorker({
    config: configPath,
    env: flags.env,
    bindings: {
      // Overrides the config's `images` binding of the same name (input bindings win in wrangler).
      [bindingName]: {
        type: "unsafe_imgbind_images",
        dev: { plugin: { package: PLUGIN, name: "imgbind-images" }, options: backendOptions },
      },
    },
    dev: {
      remote: false,
      server: { hostname: flags.ip, port },
      inspector: false,
      watch: false,
    },
  });
  const url = await worker.url;
  log(`ready on ${url.origin}`);
  // The plain line a test or script waits for.
  process.stdout.write(`ready on ${url.origin}\n`);
} catch (error) {
  log(`could not start the Worker: ${error?.stack ?? error}`);
  await stop(1);
}
