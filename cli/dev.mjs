// `imgbind dev`: runs any Worker that uses the native Images binding (`[images] binding = "IMAGES"`
// in its wrangler config) under wrangler's local dev server, with that binding served by an imgbind
// backend that it starts and stops. The Worker's code and config stay unchanged: env.IMAGES is
// workerd's own Cloudflare client (`cloudflare-internal:images-api`), whose fetcher goes to the
// backend over a Unix socket (sdk/js/miniflare-plugin.mjs). Everything else in the config (R2, KV,
// vars, assets…) is wrangler's. wrangler comes from the user's project (a peer dependency).

import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startBackend } from "./backend.mjs";
import { CliError, PACKAGE_ROOT } from "./binary.mjs";

const PLUGIN = join(PACKAGE_ROOT, "sdk/js/miniflare-plugin.mjs");
const CONFIG_NAMES = ["wrangler.toml", "wrangler.jsonc", "wrangler.json"];
const DEFAULT_PORT = 8787;

const USAGE = `usage: imgbind dev [--port N] [--ip ADDR] [--data DIR] [--env NAME] [--socket PATH | --address HOST:PORT] [CONFIG]
  Runs the Worker of CONFIG (default: ${CONFIG_NAMES.join(", ")} in this folder) under wrangler's
  local dev server; its [images] binding is served by an imgbind backend started here (unless
  --socket or --address names a running one) and stopped on exit. Prints "ready on URL".
  --port N      port to listen on (default: the config's dev.port, else ${DEFAULT_PORT})
  --ip ADDR     address to listen on (default 127.0.0.1)
  --data DIR    where stored images (env.IMAGES.hosted) live (created if missing; default
                .wrangler/state/imgbind beside the config, where wrangler keeps local state).
                The backend then also listens on a free 127.0.0.1 port, the base of variant URLs
                and upload links; hosted writes there need its token (IMGBIND_API_TOKEN, else random)
  --env NAME    the wrangler environment to use
  --socket PATH, --address HOST:PORT   use a backend that is already running (over --address,
                hosted calls send IMGBIND_API_TOKEN as its bearer token)`;

function log(message) {
  process.stderr.write(`[imgbind dev] ${message}\n`);
}

function parse(args) {
  try {
    return parseArgs({
      args,
      allowPositionals: true,
      options: {
        port: { type: "string" },
        ip: { type: "string", default: "127.0.0.1" },
        data: { type: "string" },
        env: { type: "string" },
        socket: { type: "string" },
        address: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new CliError(`${error.message}\n${USAGE}`);
  }
}

/** The config named, or the first of wrangler's config names in the current folder. */
function findConfig(positionals) {
  if (positionals.length > 1) throw new CliError(`give one wrangler config, not ${positionals.length}\n${USAGE}`);
  if (positionals.length === 1) {
    const path = resolve(positionals[0]);
    if (!existsSync(path)) throw new CliError(`no wrangler config at ${path}`);
    return path;
  }
  for (const name of CONFIG_NAMES) {
    const path = resolve(name);
    if (existsSync(path)) return path;
  }
  throw new CliError(`no wrangler config in ${process.cwd()} (looked for ${CONFIG_NAMES.join(", ")}); name one: imgbind dev path/to/wrangler.toml`);
}

/** wrangler from the user's project (Node resolves it from node_modules above this package). */
async function loadWrangler() {
  try {
    return await import("wrangler");
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" || error?.code === "MODULE_NOT_FOUND") {
      throw new CliError("wrangler is not installed in this project: `npm install --save-dev wrangler`, then run `npx imgbind dev` again");
    }
    throw new CliError(`could not load wrangler: ${error?.message ?? error}`);
  }
}

/** Fails clearly when ip:port is taken, before wrangler would fail less clearly. */
async function assertPortFree(ip, port) {
  const server = createServer();
  await new Promise((resolvePort, reject) => {
    server.once("error", (error) =>
      reject(
        error.code === "EADDRINUSE"
          ? new CliError(`port ${port} on ${ip} is in use: stop what listens there, or pass --port N`)
          : new CliError(`cannot listen on ${ip}:${port}: ${error.message}`),
      ),
    );
    server.listen(port, ip, resolvePort);
  });
  await new Promise((resolveClose) => server.close(resolveClose));
}

/** `imgbind dev ARGS`: resolves only on failure to start; afterwards the process ends by signal. */
export async function dev(args) {
  const { values: flags, positionals } = parse(args);
  if (flags.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (flags.socket && flags.address) throw new CliError("give --socket or --address, not both");
  const configPath = findConfig(positionals);
  const wrangler = await loadWrangler();

  // The binding's name and the dev port, from the config as wrangler reads it.
  let config;
  try {
    config = wrangler.unstable_readConfig({ config: configPath, env: flags.env });
  } catch (error) {
    throw new CliError(`wrangler could not read ${configPath}: ${error?.message ?? error}`);
  }
  const bindingName = config.images?.binding;
  if (!bindingName) {
    throw new CliError(`${configPath} has no [images] binding: add\n  [images]\n  binding = "IMAGES"\n(or "images": { "binding": "IMAGES" } in JSON) and use env.IMAGES in the Worker`);
  }
  const port = flags.port === undefined ? (config.dev?.port ?? DEFAULT_PORT) : Number(flags.port);
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new CliError(`bad --port ${flags.port}`);
  if (port !== 0) await assertPortFree(flags.ip, port);

  const ownBackend = !(flags.socket || flags.address);
  // Stored images persist beside wrangler's own local state unless --data says otherwise.
  const dataDir = ownBackend ? resolve(flags.data ?? join(dirname(configPath), ".wrangler/state/imgbind")) : undefined;
  if (flags.data && !ownBackend) throw new CliError("--data is for the backend imgbind dev starts; a running one (--socket, --address) has its own");
  if (dataDir) {
    try {
      mkdirSync(dataDir, { recursive: true });
    } catch (error) {
      throw new CliError(`cannot use --data ${dataDir}: ${error.message}`);
    }
  }

  const backend = ownBackend ? await startBackend({ dataDir }) : null;
  const backendOptions = flags.address ? { address: flags.address } : { socket: resolve(flags.socket ?? backend.socket) };
  // Hosted calls over TCP need the backend's token; a running backend's comes from the environment.
  if (flags.address && process.env.IMGBIND_API_TOKEN) backendOptions.token = process.env.IMGBIND_API_TOKEN;
  log(`${bindingName} → imgbind backend at ${backendOptions.socket ? `unix:${backendOptions.socket}` : backendOptions.address}`);
  if (dataDir) log(`stored images: ${dataDir}; delivery and upload links on ${process.env.IMGBIND_PUBLIC_URL || backend.url} (hosted API there needs IMGBIND_API_TOKEN${process.env.IMGBIND_API_TOKEN ? "" : ", random this session"})`);

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
  // A backend that dies while the Worker runs ends the session loudly rather than leaving
  // env.IMAGES answering connection errors.
  backend?.exited.then(({ code, signal }) => {
    if (stopping) return;
    log(`the imgbind backend exited (code ${code}, signal ${signal})${backend.lastLines()}`);
    stop(1);
  });

  try {
    worker = await wrangler.unstable_startWorker({
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
  return undefined;
}
