// `node bench/worker-overhead.mjs`: where the Worker path's time goes over calling the backend
// directly (issue #5, "overhead ≤ 15 %"), on one job (default: the bench's thumbnail-jpeg, the
// 4.4 MB photo to an 800 px JPEG q80, a 40 KB answer).
//
// Variants, run in alternation round by round (the first one rotates), each timed by the client
// from the first byte sent to the last byte received, and split with the backend's own per-request
// log line (JSON: total, receive, decode, transform, encode, send):
//
//   backend        the exact workerd multipart body, straight to the backend's Unix socket
//   pass           a Worker that forwards the same multipart body to the binding unchanged
//                  (`env.IMAGES_BACKEND.fetch(url, {body: request.body})`) and returns the answer
//                  as it is: the floor (the HTTP hop into workerd and workerd's own fetch)
//   pass-its       the same, the body piped through an IdentityTransformStream first (as the SDK
//                  does, natively, to put the multipart framing around the input): no wasm at all
//   sdk            the SDK: `input(request.body).transform().output()` → `result.response()`
//                  (what the example Worker's /transform does)
//   sdk-js-body    the same, `result.image()` called before `result.response()`, so the response
//                  body is the JS-driven, length-checked stream piped into a FixedLengthStream
//                  (what response() always did before it piped the backend's body natively)
//   sdk-image      the same, returning `new Response(result.image())` (the JS-driven stream)
//   sdk-buffered   the SDK given `await request.arrayBuffer()` (no upload pipe: the body is whole
//                  before the SDK starts)
//   example        the example Worker (wrangler's bundle, as `npm run bench` runs it) /transform
//
// Every Worker is reached on its own workerd socket (Miniflare `unsafeDirectSockets`), never through
// Miniflare's entry worker. Knobs: IMGBIND_OVERHEAD_ROUNDS (default 15), IMGBIND_OVERHEAD_VARIANTS
// (comma-separated names), IMGBIND_OVERHEAD_SECONDS (throughput per variant at 2 in flight, default
// 0 = skip), IMGBIND_OVERHEAD_PERF=<dir> (also records `perf record -g` of the workerd processes
// over ROUNDS more requests of each variant, to <dir>/<variant>.data; read with `perf report -i`).
// Prints a Markdown table (medians, ms).

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Miniflare } from "miniflare";
import { REPO_ROOT, corpusFile, wranglerCompatibilityDate } from "../tests/support/paths.js";
import { startBackend } from "../tests/support/processes.js";
import { startWorker } from "./worker.mjs";

const ROUNDS = Number(process.env.IMGBIND_OVERHEAD_ROUNDS ?? 15);
const SECONDS = Number(process.env.IMGBIND_OVERHEAD_SECONDS ?? 0);
const PHOTO = "photo-20mp-kleiber.jpg";
const BOUNDARY = "imgbind-bench-boundary-0123456789";
const QUERY = "width=800&format=image/jpeg&quality=80";

/** The multipart body workerd's client (and the SDK) sends for the job. */
function wireBody() {
  const part = (name, body, file) => [
    Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"${file ? `; filename="${name}"` : ""}\r\n\r\n`),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
    Buffer.from("\r\n"),
  ];
  return Buffer.concat([
    ...part("image", corpusFile(PHOTO), true),
    ...part("transforms", JSON.stringify([{ imageIndex: 0, width: 800 }])),
    ...part("output_format", "image/jpeg"),
    ...part("output_quality", "80"),
    Buffer.from(`--${BOUNDARY}--\r\n`),
  ]);
}

/** The profiling Worker: one route per variant. */
const WORKER = `
import { createImages } from "./sdk/js/index.js";

const options = (url) => ({
  width: Number(url.searchParams.get("width")),
  format: url.searchParams.get("format"),
  quality: Number(url.searchParams.get("quality")),
});

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const o = options(url);
    switch (url.pathname) {
      case "/pass":
        return env.IMAGES_BACKEND.fetch("https://js.images.cloudflare.com/transform", {
          method: "POST",
          headers: { "content-type": request.headers.get("content-type") },
          body: request.body,
        });
      case "/pass-its": {
        const its = new IdentityTransformStream();
        request.body.pipeTo(its.writable).catch(() => {});
        return env.IMAGES_BACKEND.fetch("https://js.images.cloudflare.com/transform", {
          method: "POST",
          headers: { "content-type": request.headers.get("content-type") },
          body: its.readable,
        });
      }
      case "/sdk": {
        const result = await createImages(env.IMAGES_BACKEND).input(request.body).transform({ width: o.width }).output({ format: o.format, quality: o.quality });
        return result.response();
      }
      case "/sdk-js-body": {
        const result = await createImages(env.IMAGES_BACKEND).input(request.body).transform({ width: o.width }).output({ format: o.format, quality: o.quality });
        result.image();
        return result.response();
      }
      case "/sdk-image": {
        const result = await createImages(env.IMAGES_BACKEND).input(request.body).transform({ width: o.width }).output({ format: o.format, quality: o.quality });
        return new Response(result.image(), { headers: { "content-type": result.contentType() } });
      }
      case "/sdk-buffered": {
        const bytes = await request.arrayBuffer();
        const result = await createImages(env.IMAGES_BACKEND).input(bytes).transform({ width: o.width }).output({ format: o.format, quality: o.quality });
        return result.response();
      }
    }
    return new Response("no route", { status: 404 });
  },
};
`;

async function startProfileWorker(socket) {
  const read = (path) => readFileSync(join(REPO_ROOT, path));
  const miniflare = new Miniflare({
    workers: [
      {
        config: {
          name: "overhead",
          compatibilityDate: wranglerCompatibilityDate(),
          manifest: {
            mainModule: "worker.js",
            modules: {
              "worker.js": { type: "esm", contents: WORKER },
              "sdk/js/index.js": { type: "esm", contents: read("sdk/js/index.js").toString() },
              "sdk/js/api.js": { type: "esm", contents: read("sdk/js/api.js").toString() },
              "sdk/dist/imgbind_sdk.js": { type: "esm", contents: read("sdk/dist/imgbind_sdk.js").toString() },
              "sdk/dist/imgbind_sdk_bg.wasm": { type: "wasm", contents: new Uint8Array(read("sdk/dist/imgbind_sdk_bg.wasm")) },
            },
          },
          env: { IMAGES_BACKEND: { type: "external", address: `unix:${socket}`, http: {} } },
        },
        dev: { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] },
      },
    ],
  });
  await miniflare.ready;
  const direct = (await miniflare.unsafeGetDirectURL("overhead")).origin;
  return { direct, stop: () => miniflare.dispose() };
}

/** POSTs `body`; resolves with {status, bytes, ms}. */
function post(options, body, agent) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ method: "POST", agent, ...options }, (res) => {
      let bytes = 0;
      res.on("data", (c) => (bytes += c.length));
      res.on("error", reject);
      res.on("end", () => {
        const ended = performance.now();
        resolve({ status: res.statusCode, bytes, ms: ended - started, startWall: performance.timeOrigin + started, endWall: performance.timeOrigin + ended });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Wall-clock ms of an RFC 3339 timestamp, keeping its microseconds. */
function wallMs(timestamp) {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(timestamp ?? "");
  if (!match) return undefined;
  return Date.parse(`${match[1]}Z`) + Number(`0.${match[2] ?? "0"}`) * 1000;
}

/** The backend's JSON request lines, handed out in order. */
class BackendLog {
  constructor(child) {
    this.lines = [];
    this.waiting = [];
    for (const stream of [child.process.stdout, child.process.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          return;
        }
        const fields = record.fields ?? record;
        if (fields.message !== "request" || fields.path !== "/transform") return;
        const waiter = this.waiting.shift();
        if (waiter) waiter(fields);
        else this.lines.push(fields);
      });
    }
  }

  next(timeoutMs = 2_000) {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((w) => w !== done);
        resolve(null);
      }, timeoutMs);
      const done = (fields) => {
        clearTimeout(timer);
        resolve(fields);
      };
      this.waiting.push(done);
    });
  }
}

/** This process's children named `comm`: `[pid, stat fields after the name]`. */
function children(comm) {
  const found = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (name === comm && Number(fields[1]) === process.pid) found.push([pid, fields]);
  }
  return found;
}

/** CPU ms (user + system) used so far by this process's children named `comm` (e.g. workerd). */
function childCpuMs(comm) {
  const ticks = children(comm).reduce((sum, [, fields]) => sum + Number(fields[11]) + Number(fields[12]), 0);
  return ticks * 10; // USER_HZ = 100
}

const median = (xs) => {
  const s = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (!s.length) return undefined;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  process.env.RUST_LOG = "info";
  process.env.IMGBIND_LOG_FORMAT = "json";
  const backend = await startBackend();
  const log = new BackendLog(backend.child);
  const profile = await startProfileWorker(backend.socket);
  const example = await startWorker(backend.socket);
  const wire = wireBody();
  const photo = corpusFile(PHOTO);
  const agents = new Map();
  const agent = (name) => agents.get(name) ?? agents.set(name, new Agent({ keepAlive: true, maxSockets: 2 })).get(name);
  const http = (origin, path, body, headers = {}) => {
    const url = new URL(path, origin);
    return (name) => post({ host: url.hostname, port: url.port, path: url.pathname + url.search, headers: { ...headers, "content-length": body.length } }, body, agent(name));
  };
  const multipart = { "content-type": `multipart/form-data; boundary=${BOUNDARY}` };
  const all = {
    backend: (name) =>
      post({ socketPath: backend.socket, path: "/transform", headers: { ...multipart, "content-length": wire.length } }, wire, agent(name)),
    pass: http(profile.direct, "/pass", wire, multipart),
    "pass-its": http(profile.direct, "/pass-its", wire, multipart),
    sdk: http(profile.direct, `/sdk?${QUERY}`, photo),
    "sdk-js-body": http(profile.direct, `/sdk-js-body?${QUERY}`, photo),
    "sdk-image": http(profile.direct, `/sdk-image?${QUERY}`, photo),
    "sdk-buffered": http(profile.direct, `/sdk-buffered?${QUERY}`, photo),
    example: http(example.direct, `/transform?${QUERY}`, photo),
  };
  const only = process.env.IMGBIND_OVERHEAD_VARIANTS?.split(",");
  const names = Object.keys(all).filter((n) => !only || only.includes(n));
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  try {
    for (let round = -1; round < ROUNDS; round++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + Math.max(round, 0)) % names.length];
        const cpuBefore = childCpuMs("workerd");
        const answer = await all[name](name);
        if (answer.status !== 200) throw new Error(`${name}: status ${answer.status}`);
        const line = await log.next();
        const workerdCpu = childCpuMs("workerd") - cpuBefore;
        // The line is written when the answer's last byte is flushed: its time is the backend's end.
        const backendEnd = wallMs(line?.timestamp);
        const head = backendEnd && backendEnd - line.total_ms - answer.startWall;
        const tail = backendEnd && answer.endWall - backendEnd;
        if (round >= 0) samples[name].push({ ms: answer.ms, bytes: answer.bytes, backend: line, workerdCpu, head, tail });
      }
    }
    const perfDir = process.env.IMGBIND_OVERHEAD_PERF;
    if (perfDir) {
      mkdirSync(perfDir, { recursive: true });
      const pids = children("workerd").map(([pid]) => pid).join(",");
      for (const name of names.filter((n) => n !== "backend")) {
        const perf = spawn("perf", ["record", "-q", "-g", "-F", "2000", "-p", pids, "-o", join(perfDir, `${name}.data`)], { stdio: "inherit" });
        await new Promise((resolve) => setTimeout(resolve, 500));
        for (let i = 0; i < ROUNDS; i++) await all[name](name);
        perf.kill("SIGINT");
        await new Promise((resolve) => perf.on("exit", resolve));
      }
      log.lines = [];
    }
    const throughput = {};
    if (SECONDS > 0) {
      for (const name of [...names, ...[...names].reverse()]) {
        const started = performance.now();
        let images = 0;
        await Promise.all(
          [0, 1].map(async () => {
            while (performance.now() - started < (SECONDS * 1000) / 2) {
              const answer = await all[name](name);
              if (answer.status !== 200) throw new Error(`${name}: status ${answer.status}`);
              images += 1;
            }
          }),
        );
        const t = (throughput[name] ??= { images: 0, seconds: 0 });
        t.images += images;
        t.seconds += (performance.now() - started) / 1000;
      }
      log.lines = [];
    }
    const base = median(samples.backend?.map((s) => s.ms) ?? []);
    // The engine's time (decode + transform + encode) is the same work on every path and varies
    // by several ms from run to run; what is left of the client's time is the path's own cost.
    const outside = (s) => s.backend && s.ms - s.backend.decode_ms - s.backend.transform_ms - s.backend.encode_ms;
    const baseOutside = median(samples.backend?.map(outside) ?? []);
    const baseRate = throughput.backend && throughput.backend.images / throughput.backend.seconds;
    const f = (x, d = 1) => (x === undefined ? "–" : x.toFixed(d));
    const rows = [
      "| variant | client median ms | over backend | outside the engine | its excess over backend's | backend total | receive | decode | transform | encode | send | client − backend total | before the backend | after the backend | workerd CPU ms | images/s @2 |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    for (const name of names) {
      const s = samples[name];
      const m = (key) => median(s.map((x) => x.backend?.[key]));
      const client = median(s.map((x) => x.ms));
      const gap = median(s.map((x) => (x.backend ? x.ms - x.backend.total_ms : undefined)));
      const rate = throughput[name] && throughput[name].images / throughput[name].seconds;
      const over = base && name !== "backend" ? `${client > base ? "+" : ""}${f(((client - base) / base) * 100)} %` : "";
      const rateText = rate ? `${f(rate)}${baseRate && name !== "backend" ? ` (${f(((rate - baseRate) / baseRate) * 100)} %)` : ""}` : "–";
      rows.push(
        `| ${name} | ${f(client)} | ${over} | ${f(median(s.map(outside)))} | ${name === "backend" ? "" : `${f(median(s.map(outside)) - baseOutside)} (${f(((median(s.map(outside)) - baseOutside) / base) * 100)} %)`} | ${f(m("total_ms"))} | ${f(m("receive_ms"))} | ${f(m("decode_ms"))} | ${f(m("transform_ms"))} | ${f(m("encode_ms"))} | ${f(m("send_ms"), 2)} | ${f(gap)} | ${f(median(s.map((x) => x.head)))} | ${f(median(s.map((x) => x.tail)))} | ${f(s.reduce((a, x) => a + x.workerdCpu, 0) / s.length)} | ${rateText} |`,
      );
    }
    console.log(`${ROUNDS} rounds per variant, medians; ${PHOTO} (${photo.length} B) to 800 px JPEG q80 (${samples[names[0]][0]?.bytes} B)\n`);
    console.log(rows.join("\n"));
  } finally {
    await example.stop();
    await profile.stop();
    await backend.stop();
  }
}

await main();
