// Starts and stops the imgbind backend for `imgbind dev` and the vitest helper (imgbind/vitest):
// the native binary (cli/binary.mjs) on a temporary Unix socket, ready once /healthz answers 200.
// With a data directory it also stores images (hosted images, docs/HOSTED.md) and listens on a
// free loopback TCP port, the base of its variant URLs and upload links, so a browser on this
// machine can open them; hosted writes over that port need a random API token (the binding itself
// uses the socket, which needs none). An early exit is a CliError carrying the backend's last log lines.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CliError, findBinary } from "./binary.mjs";

const BACKEND_START_TIMEOUT_MS = 20_000;
const LOG_LINES_KEPT = 40;

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

/** A loopback TCP port nobody listens on right now. */
async function freeLoopbackPort() {
  const server = createServer();
  await new Promise((resolvePort, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolvePort);
  });
  const { port } = server.address();
  await new Promise((resolveClose) => server.close(resolveClose));
  return port;
}

/**
 * Starts the backend on a temporary Unix socket; resolves once it answers /healthz. With
 * `dataDir`, hosted images are on and it listens on 127.0.0.1:<free port> too: `url` is that
 * origin and `token` its API token (IMGBIND_API_TOKEN if set, else random). IMGBIND_PUBLIC_URL,
 * if set, still wins as the base of the URLs it hands out.
 */
export async function startBackend({ dataDir, echo = true } = {}) {
  const binary = findBinary();
  const dir = mkdtempSync(join(tmpdir(), "imgbind-dev-"));
  const socket = join(dir, "imgbind.sock");
  const env = { ...process.env };
  const args = ["serve", "--unix", socket];
  let url;
  let token;
  if (dataDir) {
    env.IMGBIND_DATA = dataDir;
    const port = await freeLoopbackPort();
    url = `http://127.0.0.1:${port}`;
    token = env.IMGBIND_API_TOKEN || randomBytes(24).toString("base64url");
    env.IMGBIND_API_TOKEN = token;
    env.IMGBIND_PUBLIC_URL ||= url;
    args.push("--listen", `127.0.0.1:${port}`);
  }
  const child = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"], env });
  // Its log goes to our stderr as it comes; the last lines are kept to explain an early exit.
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8");
    stream.on("data", (text) => {
      if (echo) process.stderr.write(text);
      lines.push(...text.split("\n").filter(Boolean));
      lines.splice(0, Math.max(0, lines.length - LOG_LINES_KEPT));
    });
  }
  let exit = null;
  const exited = new Promise((resolveExit) =>
    child.on("exit", (code, signal) => resolveExit((exit = { code, signal }))),
  );
  child.on("error", (error) => (exit = { code: null, signal: null, error }));
  const lastLines = () => (lines.length ? `; its last log lines:\n  ${lines.slice(-15).join("\n  ")}` : " (it printed nothing)");
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });

  const deadline = Date.now() + BACKEND_START_TIMEOUT_MS;
  for (;;) {
    if (exit) {
      cleanUp();
      const how = exit.error ? `could not start (${exit.error.message})` : `exited at start (code ${exit.code}, signal ${exit.signal})`;
      throw new CliError(`the imgbind backend ${binary} ${how}${lastLines()}`);
    }
    if (existsSync(socket) && (await healthz(socket).catch(() => 0)) === 200) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      cleanUp();
      throw new CliError(`the imgbind backend did not answer /healthz within ${BACKEND_START_TIMEOUT_MS / 1000} s${lastLines()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // wrangler may end the process from its own signal handlers: clean up then too.
  process.on("exit", () => {
    if (!exit) child.kill("SIGTERM");
    cleanUp();
  });
  return {
    socket,
    url,
    token,
    exited,
    lastLines,
    async stop() {
      if (!exit) {
        child.kill("SIGTERM");
        await exited;
      }
      cleanUp();
    },
  };
}
