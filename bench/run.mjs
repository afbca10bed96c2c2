// `npm run bench`: imgbind against sharp, side by side, in one run (issue #5). For each job it
// alternates, round by round, between
//   engine  - imgbind_engine::run in-process (engine/examples/bench_jobs.rs, JSON lines over stdio),
//   backend - target/release/imgbind serve --unix, sent the exact multipart workerd's client sends,
//   worker  - the example Worker (wrangler's bundle) in Miniflare's workerd, bound to that backend,
//             requests sent straight to a workerd socket the Worker serves (no dev proxy between),
//   worker (miniflare dev stack) - the same Worker through Miniflare's URL, i.e. its entry worker
//             (a dev-only proxy Worker) first, as `wrangler dev` serves it,
//   sharp   - sharp from npm with the closest equivalent settings,
// and prints median latency, throughput at concurrency = cores, size, SSIM and peak RSS per job.
// Results go to stdout (a Markdown table) and target/bench/results.json.
//
// Knobs: IMGBIND_BENCH_ROUNDS (latency samples per path, default 7), IMGBIND_BENCH_SECONDS (throughput
// time per path, default 3, split into two alternating halves), IMGBIND_BENCH_JOBS (comma-separated
// job names), IMGBIND_BENCH_WORKER=0 (skip the Worker path), IMGBIND_BENCH_BUILD=0 (use the binaries
// already in target/release), IMGBIND_CORPUS (corpus directory).

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import sharp from "sharp";
import { CORPUS_DIR, REPO_ROOT, corpusFile } from "../tests/support/paths.js";
import { startBackend } from "../tests/support/processes.js";
import { startWorker } from "./worker.mjs";
import { ssim } from "./ssim.mjs";

const CORES = availableParallelism();
const ROUNDS = Number(process.env.IMGBIND_BENCH_ROUNDS ?? 7);
const SECONDS = Number(process.env.IMGBIND_BENCH_SECONDS ?? 3);
const WITH_WORKER = process.env.IMGBIND_BENCH_WORKER !== "0";
const ENGINE_BIN = join(REPO_ROOT, "target/release/examples/bench_jobs");
const OUT_DIR = join(REPO_ROOT, "target/bench");
/** The Worker reached through Miniflare's entry worker (a dev-only hop production does not have). */
const MINIFLARE_PATH = "worker (miniflare dev stack)";

// sharp's own thread pool stays at its default (one libvips thread per core); its operation cache
// is off so repeated runs on the same buffer redo the work, as separate requests would.
sharp.cache(false);

/** JPEG settings imgbind uses (engine/src/encode.rs): 4:2:0, optimised Huffman, progressive ≤ 3000 px. */
const jpeg = (quality) => ({ quality, chromaSubsampling: "4:2:0", optimiseCoding: true, progressive: true, mozjpeg: false });

const PHOTO = "photo-20mp-kleiber.jpg";
const LOGO = "overlay-logo-337x330.png";
const GRAPHIC = "graphic-15mp-kay.png";
const Q = 80;

/**
 * The jobs. `steps`/`format`/`quality` are what the wire carries; `worker` is the example Worker
 * route; `sharp(pipeline, meta)` builds sharp's equivalent; `reference(pipeline, meta)` is the same
 * geometry without lossy encoding, the ground truth for SSIM.
 */
const JOBS = [
  {
    name: "thumbnail-jpeg",
    what: "800 px wide JPEG q80",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 800 }],
    format: "image/jpeg",
    worker: `/transform?width=800&format=image/jpeg&quality=${Q}`,
    sharp: (s) => s.resize({ width: 800 }).jpeg(jpeg(Q)),
    reference: (s) => s.resize({ width: 800 }),
  },
  {
    name: "thumbnail-webp",
    what: "800 px wide WebP q80",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 800 }],
    format: "image/webp",
    worker: `/transform?width=800&format=image/webp&quality=${Q}`,
    sharp: (s) => s.resize({ width: 800 }).webp({ quality: Q, effort: 4 }),
    reference: (s) => s.resize({ width: 800 }),
  },
  {
    name: "thumbnail-avif",
    what: `800 px wide AVIF q${Q} (the same quality on both sides: imgbind's AVIF quality is sharp's since session 6)`,
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 800 }],
    format: "image/avif",
    worker: `/transform?width=800&format=image/avif&quality=${Q}`,
    sharp: (s) => s.resize({ width: 800 }).avif({ quality: Q, effort: 4 }),
    reference: (s) => s.resize({ width: 800 }),
  },
  {
    name: "rotate-resize",
    what: "rotate 90, 1200 px wide JPEG q80",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, rotate: 90, width: 1200 }],
    format: "image/jpeg",
    worker: `/transform?rotate=90&width=1200&format=image/jpeg&quality=${Q}`,
    sharp: (s) => s.rotate(90).resize({ width: 1200 }).jpeg(jpeg(Q)),
    reference: (s) => s.rotate(90).resize({ width: 1200 }),
  },
  {
    name: "composite",
    what: "1600 px wide + PNG logo bottom-right 10 px, JPEG q80",
    sources: [PHOTO, LOGO],
    steps: [
      { imageIndex: 0, width: 1600 },
      { drawImageIndex: 1, targetImageIndex: 0, bottom: 10, right: 10 },
    ],
    format: "image/jpeg",
    worker: `/composite?width=1600&bottom=10&right=10&format=image/jpeg&quality=${Q}`,
    sharp: (s, meta) => withLogo(s.resize({ width: 1600 }), meta).jpeg(jpeg(Q)),
    reference: (s, meta) => withLogo(s.resize({ width: 1600 }), meta),
  },
  {
    name: "png",
    what: "15 MP RGBA PNG to 1200 px wide PNG",
    sources: [GRAPHIC],
    steps: [{ imageIndex: 0, width: 1200 }],
    format: "image/png",
    // No quality on any path: with one, imgbind writes a palette PNG (PNG8, as Cloudflare does).
    quality: null,
    worker: "/transform?width=1200&format=image/png",
    // imgbind writes PNG with fast (fdeflate) compression and adaptive filters; zlib level 1 with
    // adaptive filtering is sharp's nearest setting.
    sharp: (s) => s.resize({ width: 1200 }).png({ compressionLevel: 1, adaptiveFiltering: true }),
    reference: (s) => s.resize({ width: 1200 }),
  },
  {
    name: "png-full",
    what: "15 MP RGBA PNG re-encoded at full size (the backend streams it as it encodes: see the TTFB lines)",
    sources: [GRAPHIC],
    steps: [],
    format: "image/png",
    quality: null, // as the png job: a quality would make the engine path write a palette PNG
    worker: "/transform?format=image/png",
    sharp: (s) => s.png({ compressionLevel: 1, adaptiveFiltering: true }),
    reference: (s) => s,
  },
];

/** The logo at the canvas's bottom-right corner, 10 px in (sharp places by top/left only). */
function withLogo(pipeline, meta) {
  const height = Math.round((meta.height * 1600) / meta.width);
  const logo = LOGO_SIZE;
  return pipeline.composite([{ input: corpusFile(LOGO), top: height - logo.height - 10, left: 1600 - logo.width - 10 }]);
}
let LOGO_SIZE;

// ---------------------------------------------------------------------------------------------
// The four paths. Each has `once(job)` → {ms, bytes, output} and `throughput(job, seconds)` →
// {images, seconds}.

/** The engine example binary, driven over stdin/stdout one command at a time. */
class EnginePath {
  constructor() {
    this.child = spawn(ENGINE_BIN, [], { stdio: ["pipe", "pipe", "inherit"] });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async command(fields) {
    this.child.stdin.write(fields.join("\t") + "\n");
    const { value, done } = await this.lines.next();
    if (done) throw new Error("bench_jobs exited");
    return JSON.parse(value);
  }

  jobFields(job) {
    return [job.format, job.quality === null ? "-" : String(job.quality ?? Q), JSON.stringify(job.steps), ...job.sources.map((s) => join(CORPUS_DIR, s))];
  }

  async once(job) {
    const out = join(OUT_DIR, `${job.name}.engine`);
    const answer = await this.command(["latency", "1", out, ...this.jobFields(job)]);
    this.peakKib = answer.vm_hwm_kib;
    if (answer.error) return { error: answer.error, message: answer.message };
    return { ms: answer.ms[0], bytes: answer.bytes, output: readFileSync(out) };
  }

  async throughput(job, seconds) {
    const answer = await this.command(["throughput", String(CORES), String(seconds), ...this.jobFields(job)]);
    this.peakKib = answer.vm_hwm_kib;
    return answer;
  }

  async resetPeak() {
    await this.command(["reset-peak"]);
  }

  stop() {
    this.child.stdin.end();
  }
}

/** The multipart body workerd's Images client writes (docs/ARCHITECTURE.md, "The wire format"). */
function wireBody(job, boundary) {
  const parts = [];
  const part = (name, body, file) => {
    const filename = file ? `; filename="${name}"` : "";
    parts.push(Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${name}"${filename}\r\n\r\n`));
    parts.push(Buffer.isBuffer(body) ? body : Buffer.from(body));
    parts.push(Buffer.from("\r\n"));
  };
  job.sources.forEach((source, i) => part(i === 0 ? "image" : "draw_image", corpusFile(source), true));
  part("transforms", JSON.stringify(job.steps));
  part("output_format", job.format);
  if (job.format !== "image/png" && job.quality !== null) part("output_quality", String(job.quality ?? Q));
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(parts);
}

/** POSTs and resolves with {status, bytes}; `options` are node:http request options. */
function postBuffer(options, body) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ method: "POST", ...options }, (res) => {
      const chunks = [];
      let firstByteMs;
      res.on("data", (c) => {
        firstByteMs ??= performance.now() - started;
        chunks.push(c);
      });
      res.on("error", reject);
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, bytes: Buffer.concat(chunks), firstByteMs }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Time `send()` once; 200 gives the output, anything else the coded error from the body. */
async function timed(send) {
  const started = performance.now();
  const answer = await send();
  const ms = performance.now() - started;
  if (answer.status !== 200) {
    const text = answer.bytes.toString("utf8");
    const code = Number(/(9\d{3})/.exec(answer.headers["cf-images-binding"] ?? text)?.[1] ?? answer.status);
    return { error: code, message: text.slice(0, 200) };
  }
  return { ms, ttfbMs: answer.firstByteMs, bytes: answer.bytes.length, output: answer.bytes };
}

/** `workers` loops of `send()` until `seconds` pass; images completed over the wall time. */
async function loadLoop(send, seconds, workers = CORES) {
  const started = performance.now();
  const budget = seconds * 1000;
  let images = 0;
  let failed = null;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() - started < budget && !failed) {
        const answer = await send();
        if (answer.status !== undefined && answer.status !== 200) failed = answer.status;
        else images += 1;
      }
    }),
  );
  return failed ? { error: failed } : { images, seconds: (performance.now() - started) / 1000 };
}

class BackendPath {
  constructor(backend) {
    this.backend = backend;
    this.agent = new Agent({ keepAlive: true, maxSockets: CORES });
    this.boundary = "imgbind-bench-boundary-0123456789";
  }

  send(job) {
    const body = (job.wire ??= wireBody(job, this.boundary));
    return postBuffer(
      {
        socketPath: this.backend.socket,
        path: "/transform",
        agent: this.agent,
        headers: { "content-type": `multipart/form-data; boundary=${this.boundary}`, "content-length": body.length },
      },
      body,
    );
  }

  once(job) {
    return timed(() => this.send(job));
  }

  throughput(job, seconds) {
    return loadLoop(() => this.send(job), seconds);
  }

  /** VmHWM of the backend process, in KiB. */
  peakKib() {
    return procPeakKib(this.backend.child.process.pid);
  }

  resetPeak() {
    writeFileSync(`/proc/${this.backend.child.process.pid}/clear_refs`, "5");
  }
}

class WorkerPath {
  /** `origin`: the Worker's direct workerd socket, or Miniflare's entry-worker URL. */
  constructor(origin) {
    this.origin = origin;
    this.agent = new Agent({ keepAlive: true, maxSockets: CORES });
  }

  send(job) {
    const url = new URL(job.worker, this.origin);
    let body;
    let headers = {};
    if (job.sources.length === 1) {
      body = corpusFile(job.sources[0]);
    } else {
      const boundary = "imgbind-bench-form-0123456789";
      body = job.form ??= Buffer.concat([
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="image.jpg"\r\n\r\n`),
        corpusFile(job.sources[0]),
        Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="overlay"; filename="overlay.png"\r\n\r\n`),
        corpusFile(job.sources[1]),
        Buffer.from(`\r\n--${boundary}--\r\n`),
      ]);
      headers = { "content-type": `multipart/form-data; boundary=${boundary}` };
    }
    return postBuffer(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, agent: this.agent, headers: { ...headers, "content-length": body.length } },
      body,
    );
  }

  once(job) {
    return timed(() => this.send(job));
  }

  throughput(job, seconds) {
    return loadLoop(() => this.send(job), seconds);
  }
}

class SharpPath {
  async once(job) {
    const input = corpusFile(job.sources[0]);
    const started = performance.now();
    const output = await job.sharp(sharp(input), job.meta).toBuffer();
    return { ms: performance.now() - started, bytes: output.length, output };
  }

  throughput(job, seconds) {
    const input = corpusFile(job.sources[0]);
    return loadLoop(() => job.sharp(sharp(input), job.meta).toBuffer(), seconds);
  }

  peakKib() {
    return procPeakKib("self");
  }

  resetPeak() {
    writeFileSync("/proc/self/clear_refs", "5");
  }
}

function procPeakKib(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

// ---------------------------------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** Greyscale pixels (flattened onto white), resized to `size` when given. */
async function grey(buffer, size) {
  let pipeline = sharp(buffer).flatten({ background: "#ffffff" }).greyscale();
  if (size) pipeline = pipeline.resize({ width: size.width, height: size.height, fit: "fill" });
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

async function similarity(output, other) {
  const b = await grey(other);
  const a = await grey(output, b);
  return ssim(a, b);
}

function machine() {
  const version = (cmd, args) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "?";
  return {
    cores: CORES,
    cpu: cpus()[0]?.model ?? "?",
    rustc: version("rustc", ["--version"]),
    node: process.version,
    sharp: sharp.versions.sharp,
    libvips: sharp.versions.vips,
    commit: version("git", ["-C", REPO_ROOT, "rev-parse", "--short", "HEAD"]),
    date: new Date().toISOString(),
  };
}

async function main() {
  const only = process.env.IMGBIND_BENCH_JOBS?.split(",");
  const jobs = JOBS.filter((j) => !only || only.includes(j.name));
  mkdirSync(OUT_DIR, { recursive: true });
  LOGO_SIZE = await sharp(corpusFile(LOGO)).metadata();
  for (const job of jobs) job.meta = await sharp(corpusFile(job.sources[0])).metadata();

  if (process.env.IMGBIND_BENCH_BUILD !== "0") {
    // Two runs: `--example` would restrict a single run to that target and leave the backend binary stale.
    for (const args of [["-p", "imgbind-backend", "--bin", "imgbind"], ["-p", "imgbind-engine", "--example", "bench_jobs"]]) {
      const build = spawnSync("cargo", ["build", "--release", ...args], { cwd: REPO_ROOT, stdio: "inherit" });
      if (build.status !== 0) throw new Error("cargo build failed");
    }
  }

  const info = machine();
  console.error(`machine: ${JSON.stringify(info)}`);
  const backend = await startBackend();
  const worker = WITH_WORKER ? await startWorker(backend.socket) : null;
  const engine = new EnginePath();
  const paths = {
    engine,
    backend: new BackendPath(backend),
    ...(worker && { worker: new WorkerPath(worker.direct), [MINIFLARE_PATH]: new WorkerPath(worker.origin) }),
    sharp: new SharpPath(),
  };
  const names = Object.keys(paths);
  const started = performance.now();
  const results = [];
  try {
    for (const job of jobs) {
      const r = { job: job.name, what: job.what, paths: {} };
      for (const name of names) r.paths[name] = { ms: [] };
      await engine.resetPeak();
      paths.backend.resetPeak();
      paths.sharp.resetPeak();
      // Warm-up (one of each, untimed), then ROUNDS rounds, rotating which path goes first.
      for (let round = -1; round < ROUNDS; round++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(k + Math.max(round, 0)) % names.length];
          const answer = await paths[name].once(job);
          const slot = r.paths[name];
          if (answer.error) {
            slot.error = answer.error;
            slot.message = answer.message;
            continue;
          }
          if (round >= 0) slot.ms.push(answer.ms);
          if (round >= 0 && answer.ttfbMs !== undefined) (slot.ttfbMs ??= []).push(answer.ttfbMs);
          slot.bytes = answer.bytes;
          slot.output = answer.output;
        }
      }
      // Throughput: two alternating halves per path.
      for (let half = 0; half < 2; half++) {
        for (const name of half ? [...names].reverse() : names) {
          const slot = r.paths[name];
          if (slot.error) continue;
          const t = await paths[name].throughput(job, SECONDS / 2);
          if (t.error) {
            slot.error = t.error;
            continue;
          }
          slot.images = (slot.images ?? 0) + t.images;
          slot.seconds = (slot.seconds ?? 0) + t.seconds;
        }
      }
      r.paths.engine.peakKib = engine.peakKib;
      r.paths.backend.peakKib = paths.backend.peakKib();
      r.paths.sharp.peakKib = paths.sharp.peakKib();
      // Similarity: each output against the losslessly processed reference, and imgbind vs sharp.
      const reference = await job.reference(sharp(corpusFile(job.sources[0])), job.meta).png({ compressionLevel: 0 }).toBuffer();
      for (const name of names) {
        const slot = r.paths[name];
        if (slot.ms.length) slot.medianMs = median(slot.ms);
        // Time to the first body byte (issue #5): the backend streams PNG and raw results as it
        // encodes them (docs/DELIVERY.md).
        if (slot.ttfbMs?.length) slot.medianTtfbMs = median(slot.ttfbMs);
        delete slot.ttfbMs;
        if (slot.images) slot.imagesPerSecond = slot.images / slot.seconds;
        if (slot.output) {
          slot.ssimVsReference = await similarity(slot.output, reference);
          if (name !== "sharp" && r.paths.sharp.output) slot.ssimVsSharp = await similarity(slot.output, r.paths.sharp.output);
          const meta = await sharp(slot.output).metadata();
          slot.size = `${meta.width}x${meta.height}`;
        }
        delete slot.output;
      }
      results.push(r);
      console.error(`${job.name}: ${JSON.stringify(r.paths, (k, v) => (k === "ms" ? undefined : v))}`);
    }
  } finally {
    engine.stop();
    await worker?.stop();
    await backend.stop();
  }
  const elapsed = (performance.now() - started) / 1000;
  writeFileSync(join(OUT_DIR, "results.json"), JSON.stringify({ machine: info, rounds: ROUNDS, seconds: SECONDS, elapsed, results }, null, 2));
  console.log(table(info, results, names, elapsed));
}

/** SSIM difference from sharp's above which a row's speed does not count (issue #15). */
const QUALITY_FLAG = 0.005;

/** `+0.0012 SSIM, 1.04× bytes`, flagged ⚑ when the SSIMs differ by more than QUALITY_FLAG. */
function qualityVsSharp(p, s) {
  if (p.ssimVsReference === undefined || s.ssimVsReference === undefined || !s.bytes) return "–";
  const d = p.ssimVsReference - s.ssimVsReference;
  const flag = Math.abs(d) > QUALITY_FLAG ? "⚑ " : "";
  return `${flag}${d >= 0 ? "+" : ""}${d.toFixed(4)} SSIM, ${(p.bytes / s.bytes).toFixed(2)}× bytes`;
}

/** The Markdown tables docs/BENCHMARKS.md carries. */
function table(info, results, names, elapsed) {
  const f = (x, d = 1) => (x === undefined ? "–" : x.toFixed(d));
  const lines = [
    `${info.cores} cores, ${info.cpu}; ${info.rustc}; node ${info.node}; sharp ${info.sharp} (libvips ${info.libvips}); commit ${info.commit}; ${ROUNDS} latency rounds, ${SECONDS} s throughput per path; ${elapsed.toFixed(0)} s in all.`,
    "",
    "| job | path | median ms | images/s @" + info.cores + " | × sharp (throughput) | × sharp (latency) | bytes | size | SSIM vs reference | SSIM vs sharp | quality vs sharp | peak RSS MiB |",
    "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
  ];
  for (const r of results) {
    const s = r.paths.sharp;
    for (const name of names) {
      const p = r.paths[name];
      if (p.error) {
        const what = p.error === 9520 ? "not implemented (9520)" : `error ${p.error}`;
        lines.push(`| ${r.job} | ${name} | ${what} | | | | | | | | | ${p.peakKib ? f(p.peakKib / 1024, 0) : ""} |`);
        continue;
      }
      const tput = name === "sharp" ? "1.00" : s.imagesPerSecond ? f(p.imagesPerSecond / s.imagesPerSecond, 2) : "–";
      const lat = name === "sharp" ? "1.00" : s.medianMs ? f(s.medianMs / p.medianMs, 2) : "–";
      const rss = p.peakKib ? f(p.peakKib / 1024, 0) : name.startsWith("worker") ? "n/m" : "–";
      lines.push(
        `| ${r.job} | ${name} | ${f(p.medianMs)} | ${f(p.imagesPerSecond)} | ${tput} | ${lat} | ${p.bytes} | ${p.size} | ${f(p.ssimVsReference, 4)} | ${name === "sharp" ? "" : f(p.ssimVsSharp, 4)} | ${name === "sharp" ? "" : qualityVsSharp(p, s)} | ${rss} |`,
      );
    }
  }
  lines.push(
    "",
    `*Quality vs sharp*: SSIM vs reference minus sharp's, and bytes over sharp's. ⚑ marks a row whose SSIM differs from sharp's by more than ${QUALITY_FLAG}: its speed ratios were measured at unequal quality and count toward no goal.`,
  );
  // The Worker path's cost over calling the backend directly (issue #5: ≤ 15 %).
  const workers = names.filter((n) => n.startsWith("worker"));
  if (workers.length) {
    lines.push("", "| job | path | median over backend | throughput over backend |", "|---|---|---:|---:|");
    const pct = (x) => (x === undefined || !Number.isFinite(x) ? "–" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`);
    for (const r of results) {
      const b = r.paths.backend;
      for (const name of workers) {
        const w = r.paths[name];
        if (w.error || b.error) continue;
        lines.push(`| ${r.job} | ${name} | ${pct(w.medianMs / b.medianMs - 1)} | ${pct(w.imagesPerSecond / b.imagesPerSecond - 1)} |`);
      }
    }
  }
  lines.push("", "Time to first body byte, backend path (median ms; first byte / whole answer):", "");
  for (const r of results) {
    const p = r.paths.backend;
    if (p?.medianTtfbMs !== undefined) lines.push(`- TTFB | ${r.job} | ${f(p.medianTtfbMs)} / ${f(p.medianMs)} ms`);
  }
  return lines.join("\n");
}

await main();
