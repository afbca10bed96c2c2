// Child processes for tests: the imgbind backend on a Unix socket, and bounded waits and stops.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BACKEND_BIN } from "./paths.js";

/** A running child with its output kept for failure messages. */
export class Child {
  constructor(name, command, args, options = {}) {
    this.name = name;
    this.output = "";
    this.exited = false;
    this.process = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream?.setEncoding("utf8");
      stream?.on("data", (text) => {
        // Keep the tail only: enough to explain a failure.
        this.output = (this.output + text).slice(-20_000);
      });
    }
    this.exit = new Promise((resolve) => {
      this.process.on("exit", (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
      });
      this.process.on("error", (error) => {
        this.output += `\nspawn error: ${error.message}`;
        this.exited = true;
        resolve({ code: null, signal: null, error });
      });
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Safe to call twice. */
  async stop(graceMs = 5_000) {
    if (this.exited) return;
    this.process.kill("SIGTERM");
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    await this.exit;
    clearTimeout(timer);
  }

  describe() {
    return `${this.name} (pid ${this.process.pid}) output:\n${this.output}`;
  }
}

/** Polls `probe` (async, returns truthy when ready) every 50 ms for at most `timeoutMs`. */
export async function waitFor(what, probe, { timeoutMs = 20_000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (child?.exited) throw new Error(`${what}: ${child.name} exited early\n${child.describe()}`);
    try {
      const ready = await probe();
      if (ready) return ready;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `${what}: not ready after ${timeoutMs} ms (${lastError?.message ?? "no answer"})` +
      (child ? `\n${child.describe()}` : ""),
  );
}

/** GET over a Unix socket; resolves with the status code. */
function getStatusOverUnixSocket(socketPath, path) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET", timeout: 1_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/**
 * Starts `target/release/imgbind serve --unix <tmpdir>/s.sock` and waits until it answers
 * `GET /healthz`. Returns `{ socket, child, stop() }`; `stop()` also removes the tmpdir.
 */
/** `env`: extra environment for the backend (e.g. `IMGBIND_JOB_THREADS`). */
export async function startBackend({ env = {} } = {}) {
  if (!existsSync(BACKEND_BIN)) {
    throw new Error(`${BACKEND_BIN} not found: run scripts/build.sh first`);
  }
  const dir = mkdtempSync(join(tmpdir(), "imgbind-test-"));
  const socket = join(dir, "s.sock");
  const child = new Child("imgbind backend", BACKEND_BIN, ["serve", "--unix", socket], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn", ...env },
  });
  const stop = async () => {
    await child.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      "backend",
      async () => existsSync(socket) && (await getStatusOverUnixSocket(socket, "/healthz")) === 200,
      { child },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { socket, child, stop };
}

/** A loopback TCP port nobody listens on right now. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
