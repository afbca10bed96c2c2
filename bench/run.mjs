// `npm run bench`: imgbind against sharp, side by side, in one run (issue #5). For each job it
// alternates, round by round, between
//   engine  - imgbind_engine::run in-process (engine/examples/bench_jobs.rs, JSON lines over stdio),
//   backend - target/release/imgbind serve --unix, sent the exact multipart workerd's client sends,
//             with its defaults (since session 11 a lone job takes every idle core),
//   backend, one thread per job - a second backend with --job-threads 1 (no core lent): the A/B of
//             what lending idle cores gains (issue #15 item 4),
//   worker  - the example Worker (wrangler's bundle) in Miniflare's workerd, bound to that backend,
//             requests sent straight to a workerd socket the Worker serves (no dev proxy between),
//   worker (miniflare dev stack) - the same Worker through Miniflare's URL, i.e. its entry worker
//             (a dev-only proxy Worker) first, as `wrangler dev` serves it,
//   sharp   - sharp from npm with the closest equivalent settings,
// and prints per job: p50 and p90 latency with one request in flight on the whole machine,
// throughput with as many in flight as there are cores, and for both sides size, dimensions, SSIM
// against a lossless reference (⚑ when imgbind's and sharp's differ by more than 0.005) and peak RSS.
// Then (issue #15) the chained jobs against their fused one-step forms, and the goals, each with its
// measured figure and met or not. Results go to stdout (Markdown) and target/bench/results.json.
//
// Knobs: IMGBIND_BENCH_ROUNDS (latency samples per path, default 7), IMGBIND_BENCH_SECONDS (throughput
// time per path, default 4, split into four alternating parts), IMGBIND_BENCH_JOBS (comma-separated
// job names; a chained job brings the forms it is compared with), IMGBIND_BENCH_WORKER=0 (skip the
// Worker paths), IMGBIND_BENCH_BUILD=0 (use the binaries already in target/release), IMGBIND_CORPUS
// (corpus directory). Quick check that it works (about 4 minutes):
//   IMGBIND_BENCH_ROUNDS=2 IMGBIND_BENCH_SECONDS=1 IMGBIND_BENCH_WORKER=0 npm run bench

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { createInterface } from "node:readline";
import sharp from "sharp";
import { CORPUS_DIR, REPO_ROOT, corpusFile } from "../tests/support/paths.js";
import { startBackend } from "../tests/support/processes.js";
import { startWorker } from "./worker.mjs";
import { ssim } from "./ssim.mjs";

const CORES = availableParallelism();
const ROUNDS = Number(process.env.IMGBIND_BENCH_ROUNDS ?? 7);
const SECONDS = Number(process.env.IMGBIND_BENCH_SECONDS ?? 4);
/** Throughput is measured in this many alternating parts per path (see the job loop). */
const THROUGHPUT_PARTS = 4;
const WITH_WORKER = process.env.IMGBIND_BENCH_WORKER !== "0";
const ENGINE_BIN = join(REPO_ROOT, "target/release/examples/bench_jobs");
const OUT_DIR = join(REPO_ROOT, "target/bench");
/** The Worker reached through Miniflare's entry worker (a dev-only hop production does not have). */
const MINIFLARE_PATH = "worker (miniflare dev stack)";
/** The same backend with `--job-threads 1` (no idle core lent): the A/B for issue #15 item 4. */
const SERIAL_PATH = "backend, one thread per job";

// sharp's own thread pool stays at its default (one libvips thread per core); its operation cache
// is off so repeated runs on the same buffer redo the work, as separate requests would.
sharp.cache(false);

/** JPEG settings imgbind uses (engine/src/encode.rs): 4:2:0, optimised Huffman, progressive ≤ 3000 px. */
const jpeg = (quality) => ({ quality, chromaSubsampling: "4:2:0", optimiseCoding: true, progressive: true, mozjpeg: false });

const PHOTO = "photo-20mp-kleiber.jpg";
const LOGO = "overlay-logo-337x330.png";
const GRAPHIC = "graphic-15mp-kay.png";
const ANIMATION = "anim-party-660x666.gif";
const Q = 80;

/** Inputs the bench makes at start (see `prepare`), beside its results. */
const INPUT_DIR = join(OUT_DIR, "inputs");
/** The part of GRAPHIC that lands on the 200 px canvas of the overlay jobs, cut at bench start. */
const PRECUT = join(INPUT_DIR, "overlay-precut.png");
/** The same for the photo drawn as a layer onto itself (a JPEG layer: crop-on-load applies). */
const PRECUT_JPEG_LAYER = join(INPUT_DIR, "overlay-precut-photo.png");

/** The trim jobs' window: 3000×2000 of the 20 MP photo (6028×3391), off-centre. */
const TRIM = { left: 1500, top: 700, width: 3000, height: 2000 };
const COVER = { width: 500, height: 500, fit: "cover" };
/** Width of the overlay jobs' canvas. */
const CANVAS_WIDTH = 200;

/**
 * The jobs. `steps`/`format`/`quality` are what the wire carries (`transforms`, `output_format`,
 * `output_quality`); `worker` is the example Worker route (none: the job has no Worker path);
 * `sharp(pipeline, meta)` builds sharp's equivalent as one pipeline, or `sharpRun(input, meta)`
 * runs it when it needs more than one (resolves with the encoded buffer); `reference(pipeline, meta)`
 * is the same geometry without lossy encoding (and without shrink-on-load: `exact`), the ground
 * truth for SSIM (a pipeline, or a promise
 * of one or of a lossless PNG buffer). `sharpOptions` are sharp's input options (animation).
 *
 * Chained jobs (issue #15) name their one-step form in `fused` (and other forms to compare with in
 * `alsoVs`): the chains table prints imgbind's chain time over that form's. sharp runs the same
 * operations in the same order: one pipeline where libvips keeps the chain's order, and where its
 * fixed pipeline order (rotate → flip → resize; an overlay no larger than the canvas) would not,
 * one pipeline per step handing raw pixels on, as a sharp-based binding executing `.transform()`
 * calls one by one would. Each job's `what` says which.
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
    reference: (s) => s.resize(exact({ width: 800 })),
  },
  {
    name: "thumbnail-webp",
    what: "800 px wide WebP q80",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 800 }],
    format: "image/webp",
    worker: `/transform?width=800&format=image/webp&quality=${Q}`,
    sharp: (s) => s.resize({ width: 800 }).webp({ quality: Q, effort: 4 }),
    reference: (s) => s.resize(exact({ width: 800 })),
  },
  {
    name: "thumbnail-avif",
    what: `800 px wide AVIF q${Q} (the same quality on both sides: imgbind's AVIF quality is sharp's since session 6)`,
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 800 }],
    format: "image/avif",
    worker: `/transform?width=800&format=image/avif&quality=${Q}`,
    sharp: (s) => s.resize({ width: 800 }).avif({ quality: Q, effort: 4 }),
    reference: (s) => s.resize(exact({ width: 800 })),
  },
  {
    name: "rotate-resize",
    what: "rotate 90, 1200 px wide JPEG q80 (one step)",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, rotate: 90, width: 1200 }],
    format: "image/jpeg",
    worker: `/transform?rotate=90&width=1200&format=image/jpeg&quality=${Q}`,
    sharp: (s) => s.rotate(90).resize({ width: 1200 }).jpeg(jpeg(Q)),
    reference: (s) => s.rotate(90).resize(exact({ width: 1200 })),
  },
  {
    name: "chain-rotate-resize",
    what: "[{rotate:90}, {width:1200}] JPEG q80; sharp: one pipeline rotate(90).resize(1200), which libvips runs in the chain's order",
    sources: [PHOTO],
    steps: [
      { imageIndex: 0, rotate: 90 },
      { imageIndex: 0, width: 1200 },
    ],
    format: "image/jpeg",
    fused: "rotate-resize",
    sharp: (s) => s.rotate(90).resize({ width: 1200 }).jpeg(jpeg(Q)),
    reference: (s) => s.rotate(90).resize(exact({ width: 1200 })),
  },
  {
    name: "flip-rotate-cover",
    what: "flip h, rotate 180, 500×500 cover, JPEG q80 (one step); sharp: flip().resize(cover, fastShrinkOnLoad: false), one pipeline (a mirror then a half turn is the vertical mirror; sharp skips shrink-on-load when asked to rotate, which would compare our shrink-on-load with its full decode; its default fast shrink-on-load costs this cover 0.012 SSIM, so the peer at imgbind's quality is the exact one)",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, flip: "h", rotate: 180, ...COVER }],
    format: "image/jpeg",
    worker: `/transform?flip=h&rotate=180&width=500&height=500&fit=cover&format=image/jpeg&quality=${Q}`,
    sharp: (s) => s.flip().resize(exact(COVER)).jpeg(jpeg(Q)),
    reference: (s) => stepwise(s, [(p) => p.flop(), (p) => p.rotate(180), (p) => p.resize(exact(COVER))]),
  },
  {
    name: "chain-flip-rotate-cover",
    what: "[{flip:'h'}, {rotate:180}, {width:500, height:500, fit:'cover'}] JPEG q80; sharp: the chain as its one pipeline flip().resize(cover, fastShrinkOnLoad: false) (the same pixels; see flip-rotate-cover)",
    sources: [PHOTO],
    steps: [
      { imageIndex: 0, flip: "h" },
      { imageIndex: 0, rotate: 180 },
      { imageIndex: 0, ...COVER },
    ],
    format: "image/jpeg",
    fused: "flip-rotate-cover",
    sharp: (s) => s.flip().resize(exact(COVER)).jpeg(jpeg(Q)),
    reference: (s) => stepwise(s, [(p) => p.flop(), (p) => p.rotate(180), (p) => p.resize(exact(COVER))]),
  },
  {
    name: "resize-600",
    what: "600 px wide JPEG q80 (the whole photo: what the trim jobs are measured against)",
    sources: [PHOTO],
    steps: [{ imageIndex: 0, width: 600 }],
    format: "image/jpeg",
    worker: `/transform?width=600&format=image/jpeg&quality=${Q}`,
    sharp: (s, meta) => s.resize(widthOf(600, meta)).jpeg(jpeg(Q)),
    reference: (s, meta) => s.resize(exact(widthOf(600, meta))),
  },
  {
    name: "trim-resize",
    what: `trim to ${TRIM.width}×${TRIM.height} at (${TRIM.left}, ${TRIM.top}), 600 px wide, JPEG q80 (one step); sharp: extract(...).resize(600)`,
    sources: [PHOTO],
    steps: [{ imageIndex: 0, trim: TRIM, width: 600 }],
    format: "image/jpeg",
    sharp: (s) => s.extract(TRIM).resize({ width: 600 }).jpeg(jpeg(Q)),
    reference: (s) => s.extract(TRIM).resize(exact({ width: 600 })),
  },
  {
    name: "chain-trim-resize",
    what: `[{trim:${TRIM.width}×${TRIM.height}}, {width:600}] JPEG q80; sharp: one pipeline extract(...).resize(600) (an extract before a resize runs first in libvips)`,
    sources: [PHOTO],
    steps: [
      { imageIndex: 0, trim: TRIM },
      { imageIndex: 0, width: 600 },
    ],
    format: "image/jpeg",
    fused: "trim-resize",
    alsoVs: ["resize-600"],
    sharp: (s) => s.extract(TRIM).resize({ width: 600 }).jpeg(jpeg(Q)),
    reference: (s) => s.extract(TRIM).resize(exact({ width: 600 })),
  },
  {
    name: "overlay-precut",
    what: `the ${CANVAS_WIDTH} px canvas's share of the 15 MP PNG (cut at bench start) drawn centred on the photo at ${CANVAS_WIDTH} px wide, JPEG q80; sharp: composite`,
    sources: [PHOTO, PRECUT],
    steps: [
      { imageIndex: 0, width: CANVAS_WIDTH },
      { drawImageIndex: 1, targetImageIndex: 0 },
    ],
    format: "image/jpeg",
    worker: `/composite?width=${CANVAS_WIDTH}&format=image/jpeg&quality=${Q}`,
    sharp: (s, meta) => s.resize(widthOf(CANVAS_WIDTH, meta)).composite([{ input: sourceBytes(PRECUT) }]).jpeg(jpeg(Q)),
    reference: (s, meta) => s.resize(exact(widthOf(CANVAS_WIDTH, meta))).composite([{ input: sourceBytes(PRECUT) }]),
  },
  {
    name: "overlay-large",
    what: `the whole 15 MP PNG (5120×2880) drawn centred onto the photo at ${CANVAS_WIDTH} px wide, JPEG q80; sharp: extract the part that lands (raw pixels), then composite (sharp refuses an overlay larger than the canvas)`,
    sources: [PHOTO, GRAPHIC],
    steps: [
      { imageIndex: 0, width: CANVAS_WIDTH },
      { drawImageIndex: 1, targetImageIndex: 0 },
    ],
    format: "image/jpeg",
    worker: `/composite?width=${CANVAS_WIDTH}&format=image/jpeg&quality=${Q}`,
    fused: "overlay-precut",
    sharpRun: async (input, meta) => (await withLandingPart(sharp(input).resize(widthOf(CANVAS_WIDTH, meta)))).jpeg(jpeg(Q)).toBuffer(),
    reference: (s, meta) => withLandingPart(s.resize(exact(widthOf(CANVAS_WIDTH, meta)))),
  },
  {
    name: "overlay-precut-jpeg",
    what: `the ${CANVAS_WIDTH} px canvas's share of the 20 MP photo (cut at bench start, PNG) drawn centred on the photo at ${CANVAS_WIDTH} px wide, JPEG q80; sharp: composite`,
    sources: [PHOTO, PRECUT_JPEG_LAYER],
    steps: [
      { imageIndex: 0, width: CANVAS_WIDTH },
      { drawImageIndex: 1, targetImageIndex: 0 },
    ],
    format: "image/jpeg",
    sharp: (s, meta) => s.resize(widthOf(CANVAS_WIDTH, meta)).composite([{ input: sourceBytes(PRECUT_JPEG_LAYER) }]).jpeg(jpeg(Q)),
    reference: (s, meta) => s.resize(exact(widthOf(CANVAS_WIDTH, meta))).composite([{ input: sourceBytes(PRECUT_JPEG_LAYER) }]),
  },
  {
    name: "overlay-large-jpeg",
    what: `the whole 20 MP JPEG photo drawn centred onto itself at ${CANVAS_WIDTH} px wide (imgbind decodes only the layer's landing window), JPEG q80; sharp: extract the part that lands (raw pixels), then composite`,
    sources: [PHOTO, PHOTO],
    steps: [
      { imageIndex: 0, width: CANVAS_WIDTH },
      { drawImageIndex: 1, targetImageIndex: 0 },
    ],
    format: "image/jpeg",
    fused: "overlay-precut-jpeg",
    sharpRun: async (input, meta) => (await withLandingPart(sharp(input).resize(widthOf(CANVAS_WIDTH, meta)), PHOTO)).jpeg(jpeg(Q)).toBuffer(),
    reference: (s, meta) => withLandingPart(s.resize(exact(widthOf(CANVAS_WIDTH, meta))), PHOTO),
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
    reference: (s) => s.resize(exact({ width: 1200 })),
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
  {
    name: "png-palette",
    what: `15 MP RGBA PNG to 1200 px wide palette PNG q${Q} (imgbind: PNG8 as Cloudflare writes it with a quality; sharp: png({palette:true, quality:${Q}}))`,
    sources: [GRAPHIC],
    steps: [{ imageIndex: 0, width: 1200 }],
    format: "image/png",
    worker: `/transform?width=1200&format=image/png&quality=${Q}`,
    sharp: (s) => s.resize({ width: 1200 }).png({ palette: true, quality: Q }),
    reference: (s) => s.resize(exact({ width: 1200 })),
  },
  {
    name: "anim-webp",
    what: `animated GIF (660×666, 45 frames) to 320 px wide animated WebP q${Q}; SSIM is the mean over every frame`,
    sources: [ANIMATION],
    sharpOptions: { animated: true },
    animated: true,
    steps: [{ imageIndex: 0, width: 320 }],
    format: "image/webp",
    worker: `/transform?width=320&format=image/webp&quality=${Q}`,
    sharp: (s) => s.resize({ width: 320 }).webp({ quality: Q, effort: 4 }),
    reference: (s) => s.resize(exact({ width: 320 })),
  },
  {
    name: "anim-gif",
    what: "animated GIF (660×666, 45 frames) to 320 px wide animated GIF (no quality: GIF has none); sharp: gif({dither: 0}), as imgbind's GIF encoder maps colours undithered (sharp's default dither 1.0 scored 0.010 SSIM lower in 1.27× imgbind's bytes); SSIM is the mean over every frame",
    sources: [ANIMATION],
    sharpOptions: { animated: true },
    animated: true,
    steps: [{ imageIndex: 0, width: 320 }],
    format: "image/gif",
    quality: null,
    worker: "/transform?width=320&format=image/gif",
    sharp: (s) => s.resize({ width: 320 }).gif({ dither: 0 }),
    reference: (s) => s.resize(exact({ width: 320 })),
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
    reference: (s, meta) => withLogo(s.resize(exact({ width: 1600 })), meta),
  },
];

/**
 * A reference resize: libvips's shrink-on-load off, so the reference is the exact resample of the
 * full decode, not one side's shortcut. (With it on, a reference shares sharp's own JPEG
 * shrink-on-load error: at 600 px wide from the 20 MP photo that put sharp 0.0096 SSIM ahead of
 * imgbind, while both are 0.9937 against the exact resample.)
 */
function exact(options) {
  return { ...options, fastShrinkOnLoad: false };
}

/**
 * sharp's resize to `width` with the height imgbind gives (the source's aspect, rounded to the
 * nearest pixel: engine/src/resize.rs). Where the exact height ends in .5, libvips rounds the
 * other way (6028×3391 to 600 wide: 337 against imgbind's 338), and outputs of different sizes
 * compare neither in speed nor in SSIM; the half-pixel stretch this costs sharp is invisible.
 */
function widthOf(width, meta) {
  return { width, height: Math.round((meta.height * width) / meta.width), fit: "fill" };
}

/** The logo at the canvas's bottom-right corner, 10 px in (sharp places by top/left only). */
function withLogo(pipeline, meta) {
  const height = Math.round((meta.height * 1600) / meta.width);
  const logo = LOGO_SIZE;
  return pipeline.composite([{ input: sourceBytes(LOGO), top: height - logo.height - 10, left: 1600 - logo.width - 10 }]);
}
let LOGO_SIZE;

/**
 * The rectangle of GRAPHIC that lands on the overlay jobs' canvas when drawn centred, as
 * engine/src/composite.rs places it: offset (canvas − overlay) / 2, truncated toward zero.
 */
const LANDING = {};

/** `pipeline` with the part of `layer` (GRAPHIC by default) that lands on it composited, cut as raw pixels. */
async function withLandingPart(pipeline, layer = GRAPHIC) {
  const { data, info } = await sharp(sourceBytes(layer)).extract(LANDING[layer]).raw().toBuffer({ resolveWithObject: true });
  return pipeline.composite([{ input: data, raw: { width: info.width, height: info.height, channels: info.channels } }]);
}

/**
 * Runs `steps` (each `pipeline => pipeline`) one sharp pipeline at a time, handing raw pixels on;
 * resolves with a pipeline on the last step's output, ready for an encoder.
 */
async function stepwise(pipeline, steps) {
  let current = pipeline;
  for (const step of steps) {
    const { data, info } = await step(current).raw().toBuffer({ resolveWithObject: true });
    current = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } });
  }
  return current;
}

/** Makes the inputs the jobs need that the corpus does not have (the pre-cut overlay). */
async function prepare() {
  mkdirSync(INPUT_DIR, { recursive: true });
  const photo = await sharp(corpusFile(PHOTO)).metadata();
  const canvas = { width: CANVAS_WIDTH, height: Math.round((photo.height * CANVAS_WIDTH) / photo.width) };
  for (const [layer, out] of [[GRAPHIC, PRECUT], [PHOTO, PRECUT_JPEG_LAYER]]) {
    const meta = await sharp(corpusFile(layer)).metadata();
    const x = Math.trunc((canvas.width - meta.width) / 2);
    const y = Math.trunc((canvas.height - meta.height) / 2);
    LANDING[layer] = {
      left: Math.max(-x, 0),
      top: Math.max(-y, 0),
      width: Math.min(canvas.width, meta.width),
      height: Math.min(canvas.height, meta.height),
    };
    await sharp(corpusFile(layer)).extract(LANDING[layer]).png({ compressionLevel: 1 }).toFile(out);
  }
}

/** A job's source: a corpus file name, or an absolute path the bench made. */
const sourcePath = (name) => (isAbsolute(name) ? name : join(CORPUS_DIR, name));
const sourceCache = new Map();
function sourceBytes(name) {
  if (!sourceCache.has(name)) sourceCache.set(name, isAbsolute(name) ? readFileSync(name) : corpusFile(name));
  return sourceCache.get(name);
}

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
    return [job.format, job.quality === null ? "-" : String(job.quality ?? Q), JSON.stringify(job.steps), ...job.sources.map(sourcePath)];
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
  job.sources.forEach((source, i) => part(i === 0 ? "image" : "draw_image", sourceBytes(source), true));
  part("transforms", JSON.stringify(job.steps));
  part("output_format", job.format);
  // No quality part where the job has none (truecolour PNG, GIF); with one, PNG is a palette PNG.
  if (job.quality !== null) part("output_quality", String(job.quality ?? Q));
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

  /** The example Worker has routes for single-step jobs and overlays, not for chains. */
  supports(job) {
    return Boolean(job.worker);
  }

  send(job) {
    const url = new URL(job.worker, this.origin);
    let body;
    let headers = {};
    if (job.sources.length === 1) {
      body = sourceBytes(job.sources[0]);
    } else {
      const boundary = "imgbind-bench-form-0123456789";
      body = job.form ??= Buffer.concat([
        Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="image.jpg"\r\n\r\n`),
        sourceBytes(job.sources[0]),
        Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="overlay"; filename="overlay.png"\r\n\r\n`),
        sourceBytes(job.sources[1]),
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
  /** One run of the job's sharp side on `input`: its pipeline, or its several (`sharpRun`). */
  run(job, input) {
    if (job.sharpRun) return job.sharpRun(input, job.meta);
    return job.sharp(sharp(input, job.sharpOptions), job.meta).toBuffer();
  }

  async once(job) {
    const input = sourceBytes(job.sources[0]);
    const started = performance.now();
    const output = await this.run(job, input);
    return { ms: performance.now() - started, bytes: output.length, output };
  }

  throughput(job, seconds) {
    const input = sourceBytes(job.sources[0]);
    return loadLoop(() => this.run(job, input), seconds);
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

/** The p-th percentile (0–1) of `xs`, interpolated linearly between the nearest ranks. */
function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const at = p * (s.length - 1);
  const lo = Math.floor(at);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo);
}

/**
 * Greyscale pixels (flattened onto white), resized to `size` when given. An animation (`animated`)
 * comes back as sharp decodes one: its frames stacked top to bottom, `pageHeight` rows each.
 */
async function grey(buffer, { size, animated } = {}) {
  let pipeline = sharp(buffer, animated ? { animated: true } : {}).flatten({ background: "#ffffff" }).greyscale();
  if (size) pipeline = pipeline.resize({ width: size.width, height: size.height, fit: "fill" });
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, pageHeight: info.pageHeight ?? info.height };
}

/**
 * SSIM of `output` against `other` (`bench/ssim.mjs`, luma). A still output is resized to the
 * other's size first (a size difference shows in the table's size column). An animation is
 * compared frame by frame and the mean over all frames returned; NaN when the frame sizes or
 * counts differ. `otherPageHeight` gives the frame height of a stacked PNG (the reference).
 */
async function similarity(output, other, { animated = false, otherPageHeight } = {}) {
  if (!animated) {
    const b = await grey(other);
    const a = await grey(output, { size: b });
    return ssim(a, b);
  }
  const [a, b] = await Promise.all([grey(output, { animated: true }), grey(other, { animated: true })]);
  const pageHeight = otherPageHeight ?? b.pageHeight;
  if (a.width !== b.width || a.height !== b.height || a.pageHeight !== pageHeight) return NaN;
  const frame = (img, i) => ({ data: img.data.subarray(i * img.width * pageHeight, (i + 1) * img.width * pageHeight), width: img.width, height: pageHeight });
  let sum = 0;
  const frames = a.height / pageHeight;
  for (let i = 0; i < frames; i++) sum += ssim(frame(a, i), frame(b, i));
  return sum / frames;
}

/** `WxH`, with `×N frames` for an animation. */
async function dimensions(buffer) {
  const meta = await sharp(buffer).metadata();
  return `${meta.width}x${meta.height}${meta.pages > 1 ? ` ×${meta.pages} frames` : ""}`;
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
    load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    date: new Date().toISOString(),
  };
}

/** The jobs IMGBIND_BENCH_JOBS names (all by default), with the forms each chain is compared with. */
function selectJobs() {
  const only = process.env.IMGBIND_BENCH_JOBS?.split(",").map((n) => n.trim());
  if (!only) return JOBS;
  const unknown = only.filter((n) => !JOBS.some((j) => j.name === n));
  if (unknown.length) throw new Error(`IMGBIND_BENCH_JOBS: no job ${unknown.join(", ")}; jobs: ${JOBS.map((j) => j.name).join(", ")}`);
  const wanted = new Set(only);
  for (const job of JOBS) if (wanted.has(job.name)) for (const other of comparedWith(job)) wanted.add(other.job);
  return JOBS.filter((j) => wanted.has(j.name));
}

/** What a chained job is compared with: its fused form (the goal) and any `alsoVs` forms. */
function comparedWith(job) {
  return [...(job.fused ? [{ job: job.fused, goal: true }] : []), ...(job.alsoVs ?? []).map((name) => ({ job: name, goal: false }))];
}

async function main() {
  const jobs = selectJobs();
  mkdirSync(OUT_DIR, { recursive: true });
  await prepare();
  LOGO_SIZE = await sharp(corpusFile(LOGO)).metadata();
  for (const job of jobs) job.meta = await sharp(sourceBytes(job.sources[0])).metadata();

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
  const serialBackend = await startBackend({ env: { IMGBIND_JOB_THREADS: "1" } });
  const worker = WITH_WORKER ? await startWorker(backend.socket) : null;
  const engine = new EnginePath();
  const paths = {
    engine,
    backend: new BackendPath(backend),
    [SERIAL_PATH]: new BackendPath(serialBackend),
    ...(worker && { worker: new WorkerPath(worker.direct), [MINIFLARE_PATH]: new WorkerPath(worker.origin) }),
    sharp: new SharpPath(),
  };
  const names = Object.keys(paths);
  const started = performance.now();
  const results = [];
  /** Each job's imgbind output (engine path, else backend), to compare a chain's with its fused form's. */
  const imgbindOutputs = new Map();
  try {
    for (const job of jobs) {
      const jobNames = names.filter((name) => paths[name].supports?.(job) ?? true);
      const r = { job: job.name, what: job.what, paths: {} };
      for (const name of jobNames) r.paths[name] = { ms: [] };
      await engine.resetPeak();
      paths.backend.resetPeak();
      paths[SERIAL_PATH].resetPeak();
      paths.sharp.resetPeak();
      // Latency: one request in flight on the whole machine. Warm-up (one of each, untimed), then
      // ROUNDS rounds of one run per path, one after another, rotating which path goes first.
      for (let round = -1; round < ROUNDS; round++) {
        for (let k = 0; k < jobNames.length; k++) {
          const name = jobNames[(k + Math.max(round, 0)) % jobNames.length];
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
      // Throughput: CORES in flight, THROUGHPUT_PARTS alternating parts per path (forward, then
      // reverse order), so a slow stretch of the machine falls on every path alike.
      for (let part = 0; part < THROUGHPUT_PARTS; part++) {
        for (const name of part % 2 ? [...jobNames].reverse() : jobNames) {
          const slot = r.paths[name];
          if (slot.error) continue;
          const t = await paths[name].throughput(job, SECONDS / THROUGHPUT_PARTS);
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
      r.paths[SERIAL_PATH].peakKib = paths[SERIAL_PATH].peakKib();
      r.paths.sharp.peakKib = paths.sharp.peakKib();
      // Similarity: each output against the losslessly processed reference, and imgbind vs sharp.
      const reference = await (await job.reference(sharp(sourceBytes(job.sources[0]), job.sharpOptions), job.meta))
        .png({ compressionLevel: 0 })
        .toBuffer();
      const animated = Boolean(job.animated);
      // The reference of an animation is its frames stacked in one PNG.
      const referencePageHeight = animated ? (await sharp(reference).metadata()).height / job.meta.pages : undefined;
      for (const name of jobNames) {
        const slot = r.paths[name];
        if (slot.ms.length) {
          slot.p50Ms = percentile(slot.ms, 0.5);
          slot.p90Ms = percentile(slot.ms, 0.9);
        }
        // Time to the first body byte (issue #5): the backend streams PNG and raw results as it
        // encodes them (docs/DELIVERY.md).
        if (slot.ttfbMs?.length) slot.p50TtfbMs = percentile(slot.ttfbMs, 0.5);
        delete slot.ttfbMs;
        if (slot.images) slot.imagesPerSecond = slot.images / slot.seconds;
        if (slot.output) {
          slot.ssimVsReference = await similarity(slot.output, reference, { animated, otherPageHeight: referencePageHeight });
          if (name !== "sharp" && r.paths.sharp.output) slot.ssimVsSharp = await similarity(slot.output, r.paths.sharp.output, { animated });
          slot.size = await dimensions(slot.output);
        }
      }
      const ours = r.paths.engine.output ?? r.paths.backend.output;
      if (ours) imgbindOutputs.set(job.name, ours);
      // A chain's output against its fused form's (imgbind's, both encoded): 1 when the planner
      // gives the same pixels. (The `alsoVs` forms are other images: nothing to compare.)
      r.vs = {};
      for (const other of comparedWith(job).filter((o) => o.goal)) {
        const theirs = imgbindOutputs.get(other.job);
        if (ours && theirs) r.vs[other.job] = { ssim: await similarity(ours, theirs, { animated }), size: await dimensions(theirs) };
      }
      for (const name of jobNames) delete r.paths[name].output;
      results.push(r);
      console.error(`${job.name}: ${JSON.stringify(r.paths, (k, v) => (k === "ms" ? undefined : v))}`);
    }
  } finally {
    engine.stop();
    await worker?.stop();
    await backend.stop();
    await serialBackend.stop();
  }
  const elapsed = (performance.now() - started) / 1000;
  const goals = goalRows(results);
  writeFileSync(join(OUT_DIR, "results.json"), JSON.stringify({ machine: info, rounds: ROUNDS, seconds: SECONDS, elapsed, results, goals }, null, 2));
  console.log(table(info, results, names, elapsed));
  console.log("");
  console.log(chainTable(results));
  console.log("");
  console.log(goalSummary(results, goals));
}

/** SSIM difference from sharp's above which a row's speed does not count (issue #15). */
const QUALITY_FLAG = 0.005;
/** Issue #15's goals: a chain within this factor of its fused form's time; AVIF this many times sharp's throughput. */
const CHAIN_GOAL = 1.25;
const AVIF_GOAL = 2;
/** Item 4: lending idle cores may not cost throughput at full load beyond run-to-run noise. */
const IDLE_LOAD_TOLERANCE = 0.05;
/** The paths goals are judged on: imgbind itself (the Worker paths have their own overhead goal, issue #5). */
const GOAL_PATHS = ["engine", "backend"];

/** True when a row's SSIM differs from sharp's by more than QUALITY_FLAG. */
function flagged(p, s) {
  return p.ssimVsReference !== undefined && s?.ssimVsReference !== undefined && Math.abs(p.ssimVsReference - s.ssimVsReference) > QUALITY_FLAG;
}

/** `+0.0012 SSIM, 1.04× bytes`, flagged ⚑ when the SSIMs differ by more than QUALITY_FLAG. */
function qualityVsSharp(p, s) {
  if (p.ssimVsReference === undefined || s?.ssimVsReference === undefined || !s.bytes) return "–";
  const d = p.ssimVsReference - s.ssimVsReference;
  return `${flagged(p, s) ? "⚑ " : ""}${d >= 0 ? "+" : ""}${d.toFixed(4)} SSIM, ${(p.bytes / s.bytes).toFixed(2)}× bytes`;
}

const fmt = (x, d = 1) => (x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d));

/** The Markdown tables docs/BENCHMARKS.md carries. */
function table(info, results, names, elapsed) {
  const f = fmt;
  const lines = [
    `${info.cores} cores, ${info.cpu}; ${info.rustc}; node ${info.node}; sharp ${info.sharp} (libvips ${info.libvips}); commit ${info.commit}; load average ${info.load} at start; ${ROUNDS} latency rounds, ${SECONDS} s throughput per path; ${elapsed.toFixed(0)} s in all.`,
    "",
    `*p50/p90 ms @1*: latency with **one request in flight** on the whole machine (the ${ROUNDS} timed rounds run one path at a time, one image at a time; p90 interpolated between ranks). *images/s @${info.cores}*: throughput with **${info.cores} in flight** (= cores).`,
    "",
    `| job | path | p50 ms @1 | p90 ms @1 | images/s @${info.cores} | × sharp (throughput) | × sharp (p50) | bytes | size | SSIM vs reference | SSIM vs sharp | quality vs sharp | peak RSS MiB |`,
    "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
  ];
  for (const r of results) {
    const s = r.paths.sharp;
    for (const name of names) {
      const p = r.paths[name];
      if (!p) continue;
      if (p.error) {
        const what = p.error === 9520 ? "not implemented (9520)" : `error ${p.error}`;
        lines.push(`| ${r.job} | ${name} | ${what} | | | | | | | | | | ${p.peakKib ? f(p.peakKib / 1024, 0) : ""} |`);
        continue;
      }
      const tput = name === "sharp" ? "1.00" : s.imagesPerSecond ? f(p.imagesPerSecond / s.imagesPerSecond, 2) : "–";
      const lat = name === "sharp" ? "1.00" : s.p50Ms ? f(s.p50Ms / p.p50Ms, 2) : "–";
      const rss = p.peakKib ? f(p.peakKib / 1024, 0) : name.startsWith("worker") ? "n/m" : "–";
      // The same output dimensions on both sides, or the row says so.
      const size = name !== "sharp" && s.size && p.size !== s.size ? `${p.size} ≠ sharp's` : p.size;
      lines.push(
        `| ${r.job} | ${name} | ${f(p.p50Ms)} | ${f(p.p90Ms)} | ${f(p.imagesPerSecond)} | ${tput} | ${lat} | ${p.bytes} | ${size} | ${f(p.ssimVsReference, 4)} | ${name === "sharp" ? "" : f(p.ssimVsSharp, 4)} | ${name === "sharp" ? "" : qualityVsSharp(p, s)} | ${rss} |`,
      );
    }
  }
  lines.push(
    "",
    `*Quality vs sharp*: SSIM vs reference minus sharp's, and bytes over sharp's. ⚑ marks a row whose SSIM differs from sharp's by more than ${QUALITY_FLAG}: its speed ratios were measured at unequal quality and count toward no goal. Animated jobs: SSIM is the mean over every frame.`,
  );
  // The Worker path's cost over calling the backend directly (issue #5: ≤ 15 %).
  const workers = names.filter((n) => n.startsWith("worker"));
  if (workers.length) {
    lines.push("", "| job | path | p50 over backend | throughput over backend |", "|---|---|---:|---:|");
    const pct = (x) => (x === undefined || !Number.isFinite(x) ? "–" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`);
    for (const r of results) {
      const b = r.paths.backend;
      for (const name of workers) {
        const w = r.paths[name];
        if (!w || w.error || b.error) continue;
        lines.push(`| ${r.job} | ${name} | ${pct(w.p50Ms / b.p50Ms - 1)} | ${pct(w.imagesPerSecond / b.imagesPerSecond - 1)} |`);
      }
    }
  }
  // Item 4's A/B: the backend lending idle cores to a lone job, and the same binary with none lent.
  if (names.includes(SERIAL_PATH)) {
    lines.push(
      "",
      `Idle cores (issue #15 item 4): \`backend\` (its default, \`--job-threads 0\`) lends a job the cores no other job holds; \`${SERIAL_PATH}\` is the same binary with \`--job-threads 1\`, measured in the same rounds.`,
      "",
      `| job | p50 ms @1 lent | p50 ms @1 one thread | lent/one p50 | images/s @${CORES} lent | images/s @${CORES} one thread | lent/one throughput |`,
      "|---|---:|---:|---:|---:|---:|---:|",
    );
    for (const r of results) {
      const a = r.paths.backend;
      const b = r.paths[SERIAL_PATH];
      if (!a || !b || a.error || b.error) continue;
      lines.push(`| ${r.job} | ${f(a.p50Ms)} | ${f(b.p50Ms)} | ${f(a.p50Ms / b.p50Ms, 2)}× | ${f(a.imagesPerSecond)} | ${f(b.imagesPerSecond)} | ${f(a.imagesPerSecond / b.imagesPerSecond, 2)}× |`);
    }
  }
  lines.push("", "Time to first body byte, backend path (p50 ms @1; first byte / whole answer):", "");
  for (const r of results) {
    const p = r.paths.backend;
    if (p?.p50TtfbMs !== undefined) lines.push(`- TTFB | ${r.job} | ${f(p.p50TtfbMs)} / ${f(p.p50Ms)} ms`);
  }
  return lines.join("\n");
}

/**
 * One row per chained job, compared form and path: the chain's time over the form's, at one in
 * flight (p50) and at CORES in flight (time per image = 1 / throughput). `worst` is the larger.
 */
function chainRows(results) {
  const byName = new Map(results.map((r) => [r.job, r]));
  const rows = [];
  for (const r of results) {
    const job = JOBS.find((j) => j.name === r.job);
    for (const other of comparedWith(job)) {
      const o = byName.get(other.job);
      if (!o) continue;
      for (const [name, p] of Object.entries(r.paths)) {
        const q = o.paths[name];
        if (!q || p.error || q.error) continue;
        const p50 = p.p50Ms / q.p50Ms;
        const load = q.imagesPerSecond / p.imagesPerSecond;
        const flags = [r, o].filter((x) => flagged(x.paths[name], x.paths.sharp)).map((x) => x.job);
        rows.push({ chain: r.job, vs: other.job, goal: other.goal, path: name, p, q, p50, load, worst: Math.max(p50, load), flags, same: r.vs?.[other.job] });
      }
    }
  }
  return rows;
}

/** The chains table: each chained job against its fused (and other) forms, on every path. */
function chainTable(results) {
  const rows = chainRows(results);
  if (!rows.length) return "";
  const lines = [
    `Chained jobs against their one-step forms (issue #15 goal: imgbind's chain ≤ ${CHAIN_GOAL}× its fused form, judged on ${GOAL_PATHS.join(" and ")} by the worse of p50 @1 and time per image @${CORES}; sharp's rows show what its own chain costs over its one-step form):`,
    "",
    `| chain | against | path | chain p50 ms @1 | its p50 ms @1 | chain/it p50 | chain images/s @${CORES} | its images/s @${CORES} | chain/it time @${CORES} | goal | imgbind output SSIM chain vs it |`,
    "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
  ];
  for (const row of rows) {
    const judged = row.goal && GOAL_PATHS.includes(row.path);
    const goal = !judged ? "" : row.flags.length ? `⚑ not counted (${row.flags.join(", ")})` : row.worst <= CHAIN_GOAL ? "✓" : `✗ ${fmt(row.worst, 2)}×`;
    const same = !row.goal ? "(another image)" : row.same ? `${fmt(row.same.ssim, 4)}` : "–";
    lines.push(
      `| ${row.chain} | ${row.vs}${row.goal ? " (fused)" : ""} | ${row.path} | ${fmt(row.p.p50Ms)} | ${fmt(row.q.p50Ms)} | ${fmt(row.p50, 2)}× | ${fmt(row.p.imagesPerSecond)} | ${fmt(row.q.imagesPerSecond)} | ${fmt(row.load, 2)}× | ${goal} | ${row.path === "engine" ? same : ""} |`,
    );
  }
  return lines.join("\n");
}

/** Issue #15's goals with their measured figures: `{goal, figure, met, note}` each. */
function goalRows(results) {
  const goals = [];
  const byPair = new Map();
  for (const row of chainRows(results)) {
    if (!GOAL_PATHS.includes(row.path)) continue;
    const key = `${row.chain} ${row.vs}`;
    if (!byPair.has(key)) byPair.set(key, []);
    byPair.get(key).push(row);
  }
  for (const rows of byPair.values()) {
    const { chain, vs, goal } = rows[0];
    const flags = [...new Set(rows.flatMap((r) => r.flags))];
    const figure = rows.map((r) => `${r.path} ${fmt(r.p50, 2)}× p50 @1, ${fmt(r.load, 2)}× @${CORES}`).join("; ");
    const worst = Math.max(...rows.map((r) => r.worst));
    if (!goal) {
      // Another form the chain is measured against (the trim chain against the plain resize):
      // shown for information, not a goal of its own.
      goals.push({ goal: `${chain} against ${vs}`, figure, met: null, note: "for information, not a goal" });
      continue;
    }
    goals.push({
      goal: `${chain} ≤ ${CHAIN_GOAL}× ${vs}`,
      figure,
      met: flags.length ? false : worst <= CHAIN_GOAL,
      note: flags.length ? `not counted: ⚑ on ${flags.join(", ")}` : worst <= CHAIN_GOAL ? "" : `worst ${fmt(worst, 2)}×, ${fmt((worst / CHAIN_GOAL - 1) * 100, 0)} % over the goal`,
    });
  }
  // Item 4: idle cores lent to a lone job (the backend's default, --job-threads 0) against none
  // lent (--job-threads 1), the same binary in the same run: p50 at one in flight, and throughput
  // at full load.
  const ab = results
    .map((r) => ({ job: r.job, lent: r.paths.backend, serial: r.paths[SERIAL_PATH] }))
    .filter(({ lent, serial }) => lent?.p50Ms && serial?.p50Ms && !lent.error && !serial.error);
  if (ab.length) {
    const p50 = ab.map(({ lent, serial }) => lent.p50Ms / serial.p50Ms);
    const load = ab.map(({ lent, serial }) => lent.imagesPerSecond / serial.imagesPerSecond);
    const geo = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
    const best = ab.reduce((a, row, i) => (p50[i] < p50[a.i] ? { i, row } : a), { i: 0, row: ab[0] });
    const lowest = Math.min(...load);
    const lowestJob = ab[load.indexOf(lowest)].job;
    goals.push({
      goal: `Idle cores lent while the machine is not saturated (the default, --job-threads 0): p50 @1 lower than one thread per job (--job-threads 1), throughput @${CORES} not lower (each job within ${IDLE_LOAD_TOLERANCE * 100} %)`,
      figure: `p50 @1 ${fmt(geo(p50), 3)}× (geometric mean over ${ab.length} jobs; best ${best.row.job} ${fmt(p50[best.i], 2)}×); throughput @${CORES} ${fmt(geo(load), 3)}× (lowest ${lowestJob} ${fmt(lowest, 2)}×)`,
      met: geo(p50) < 1 && lowest >= 1 - IDLE_LOAD_TOLERANCE,
      note: "",
    });
  }
  const avif = results.find((r) => r.job === "thumbnail-avif");
  if (avif) {
    const s = avif.paths.sharp;
    const parts = [];
    let met = true;
    const notes = [];
    for (const name of GOAL_PATHS) {
      const p = avif.paths[name];
      if (!p || p.error || s.error) {
        met = false;
        notes.push(`${name}: ${p?.error ?? s.error ?? "not run"}`);
        continue;
      }
      const speed = p.imagesPerSecond / s.imagesPerSecond;
      const dSsim = p.ssimVsReference - s.ssimVsReference;
      const bytes = p.bytes / s.bytes;
      parts.push(`${name} ${fmt(speed, 2)}× throughput @${CORES} (${fmt(s.p50Ms / p.p50Ms, 2)}× p50), ${dSsim >= 0 ? "+" : ""}${fmt(dSsim, 4)} SSIM, ${fmt(bytes, 3)}× bytes`);
      if (flagged(p, s)) notes.push(`${name}: ⚑ SSIM differs by more than ${QUALITY_FLAG}, not counted`);
      if (speed < AVIF_GOAL) notes.push(`${name}: throughput ${fmt(speed, 2)}× < ${AVIF_GOAL}×`);
      if (bytes > 1) notes.push(`${name}: file ${fmt((bytes - 1) * 100, 1)} % larger`);
      if (flagged(p, s) || speed < AVIF_GOAL || bytes > 1) met = false;
    }
    goals.push({ goal: `AVIF ≥ ${AVIF_GOAL}× sharp's throughput at equal SSIM (±${QUALITY_FLAG}) and no larger file`, figure: parts.join("; "), met, note: notes.join("; ") });
  }
  return goals;
}

/** The goals summary (Markdown): each goal, its figure, met or not; then the flagged rows. */
function goalSummary(results, goals) {
  const lines = ["### Goals (issue #15)", "", `Judged on the ${GOAL_PATHS.join(" and ")} paths; a goal is met only when every one of them meets it.`, ""];
  if (goals.length) {
    lines.push("| goal | measured | met |", "|---|---|---|");
    for (const g of goals) {
      const verdict = g.met === null ? "–" : g.met ? "met" : "**not met**";
      lines.push(`| ${g.goal} | ${g.figure} | ${verdict}${g.note ? ` (${g.note})` : ""} |`);
    }
  } else {
    lines.push("(no goal job in this run)");
  }
  const flaggedRows = [];
  for (const r of results) {
    for (const [name, p] of Object.entries(r.paths)) {
      if (name !== "sharp" && !p.error && flagged(p, r.paths.sharp)) flaggedRows.push(`${r.job} (${name}): ${qualityVsSharp(p, r.paths.sharp)}`);
    }
  }
  const sizes = [];
  for (const r of results) {
    const s = r.paths.sharp;
    for (const [name, p] of Object.entries(r.paths)) if (name !== "sharp" && p.size && s.size && p.size !== s.size) sizes.push(`${r.job} (${name}): ${p.size} vs sharp's ${s.size}`);
  }
  lines.push("", flaggedRows.length ? `Flagged rows (⚑, count toward no goal): ${flaggedRows.join("; ")}.` : "Flagged rows (⚑): none.");
  if (sizes.length) lines.push("", `Output sizes that differ from sharp's: ${sizes.join("; ")}.`);
  return lines.join("\n");
}

await main();
