// Starts and stops the imgbind backend for `imgbind dev` and the vitest helper (imgbind/vitest):
// the native binary (cli/binary.mjs) on a temporary Unix socket, ready once /healthz answers 200.
// An early exit is a CliError carrying the backend's last log lines.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
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

/** Starts the backend on a temporary Unix socket; resolves once it answers /healthz. */
export async function startBackend({ dataDir, echo = true } = {}) {
  const binary = findBinary();
  const dir = mkdtempSync(join(tmpdir(), "imgbind-dev-"));
  const socket = join(dir, "imgbind.sock");
  const env = { ...process.env };
  if (dataDir) env.IMGBIND_DATA = dataDir;
  const child = spawn(binary, ["serve", "--unix", socket], { stdio: ["ignore", "pipe", "pipe"], env });
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
