// Fidelity against sharp (libvips): the same operation on the same corpus image, once through the
// imgbind backend (over its Unix socket, framed as Cloudflare's client frames it) and once with
// sharp's equivalent, must give an image of exactly the same size that looks the same: SSIM at or
// above a per-case threshold. The thresholds, and why each is what it is, are next to the cases.
//
// Inputs are prepared once with sharp (a 640×400 PNG of a corpus photo, a resized logo, a framed
// copy) so most cases compare the operation alone, not two decoders or two resizers. The resize
// cases start from the original corpus files (JPEG with shrink-on-load, WebP, grey JPEG, RGBA
// PNG, EXIF-rotated JPEG). Set FIDELITY_REPORT=1 to print every score.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { corpusFile } from "./support/paths.js";
import { startBackend } from "./support/processes.js";
import { meanAbsoluteDifference, ssimChannels, ssimGrey, ssimRgba, toChannels } from "./support/similarity.js";
import { transformEncoded, transformPixels } from "./support/transform.js";

const REPORT = process.env.FIDELITY_REPORT === "1";

/**
 * sharp's result as raw pixels with `channels` (3: any alpha flattened onto white, as the
 * backend's `rgb` output does; 4: alpha kept). The conversion happens after sharp's pipeline:
 * sharp would run its own `flatten` before `composite` and replace a pipeline's `flatten`.
 */
async function sharpRaw(pipeline, channels = 3) {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return toChannels({ data, width: info.width, height: info.height, channels: info.channels }, channels);
}

/** Any encoded image decoded by sharp to raw pixels. */
function decodeWithSharp(bytes, channels = 3) {
  return sharpRaw(sharp(bytes), channels);
}

/** A JPEG's marker segments up to the scan: `{marker, body}`. */
function jpegSegments(jpeg) {
  const segments = [];
  let i = 2;
  while (i + 4 <= jpeg.length && jpeg[i] === 0xff) {
    const marker = jpeg[i + 1];
    const length = jpeg.readUInt16BE(i + 2);
    segments.push({ marker, start: i, end: i + 2 + length, body: jpeg.subarray(i + 4, i + 2 + length) });
    if (marker === 0xda) break;
    i += 2 + length;
  }
  return segments;
}

/** Channel `c` of an image as a one-channel image. */
function plane(image, c) {
  const data = Buffer.alloc(image.width * image.height);
  for (let i = 0; i < data.length; i++) data[i] = image.data[i * image.channels + c];
  return { data, width: image.width, height: image.height, channels: 1 };
}

/** The same JPEG without its ICC_PROFILE (APP2) segments. */
function withoutIccProfile(jpeg) {
  const kept = [jpeg.subarray(0, 2)];
  const segments = jpegSegments(jpeg);
  for (const s of segments.slice(0, -1)) {
    if (!(s.marker === 0xe2 && s.body.subarray(0, 12).toString("latin1") === "ICC_PROFILE\0")) {
      kept.push(jpeg.subarray(s.start, s.end));
    }
  }
  kept.push(jpeg.subarray(segments.at(-1).start));
  return Buffer.concat(kept);
}

function report(name, scores) {
  if (REPORT) console.log(`fidelity ${name}: ${JSON.stringify(scores)}`);
}

describe("fidelity against sharp 0.35 (libvips) on corpus images", () => {
  let backend;
  /** 640×400 PNG of photo-4mp-twowings.jpg (macro detail: edges, texture, smooth bokeh). */
  let base;
  let baseRaw;
  /** The logo with transparency, 120 px wide. */
  let logo;
  /** `base` inside a 30/40/50/60 px #336699 frame. */
  let framed;

  before(async () => {
    backend = await startBackend();
    base = await sharp(corpusFile("photo-4mp-twowings.jpg")).resize(640).png().toBuffer();
    baseRaw = await sharpRaw(sharp(base));
    logo = await sharp(corpusFile("overlay-logo-337x330.png")).resize(120).png().toBuffer();
    framed = await sharp(base)
      .extend({ top: 30, right: 40, bottom: 50, left: 60, background: "#336699" })
      .png()
      .toBuffer();
  });

  after(async () => {
    await backend?.stop();
  });

  /**
   * One comparison: imgbind's answer for `request` (image, draws, transforms) against sharp's
   * `reference`, same dimensions, and every score at or above its threshold.
   * `metric`: "grey" (luma SSIM), "rgb" (lowest per-channel SSIM), "rgba" (see `ssimRgba`).
   */
  async function compare(name, { request, reference, metric = "rgb", min }) {
    const channels = metric === "rgba" ? 4 : 3;
    const [ours, theirs] = await Promise.all([
      transformPixels(backend.socket, { ...request, format: channels === 4 ? "rgba" : "rgb" }),
      sharpRaw(reference(), channels),
    ]);
    assert.deepEqual([ours.width, ours.height], [theirs.width, theirs.height], `${name}: dimensions`);
    const score = { grey: ssimGrey, rgb: ssimChannels, rgba: ssimRgba }[metric](ours, theirs);
    report(name, { width: ours.width, height: ours.height, ssim: Number(score.toFixed(4)) });
    assert.ok(score >= min, `${name}: SSIM ${score.toFixed(4)} < ${min}`);
    return { ours, theirs, score };
  }

  const on = (image, transforms, draws) => ({ image, transforms, ...(draws ? { draws } : {}) });

  // -------------------------------------------------------------------------------------------
  // Resize: each fit against sharp's equivalent (Miniflare's own mapping), Lanczos3 both sides.
  // Two Lanczos3 implementations on the same pixels agree to SSIM ≈ 0.99; JPEG sources add
  // decoder differences (DCT shrink-on-load, chroma upsampling), hence 0.95–0.97. Cover and crop
  // cut where libvips cuts (whole pixels of the scaled image), so they hold 0.99 (measured
  // 0.993–0.9998; a half-pixel shift of the window scores about 0.97).

  test("fit scale-down = sharp inside + withoutEnlargement (JPEG source, shrink-on-load)", async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    await compare("scale-down", {
      request: on(photo, [{ imageIndex: 0, width: 640, height: 640 }]),
      reference: () => sharp(photo).resize(640, 640, { fit: "inside", withoutEnlargement: true }),
      min: 0.97,
    });
  });

  test("fit scale-down never enlarges, like withoutEnlargement", async () => {
    await compare("scale-down small", {
      request: on(logo, [{ imageIndex: 0, width: 1000, height: 1000, fit: "scale-down" }]),
      reference: () => sharp(logo).resize(1000, 1000, { fit: "inside", withoutEnlargement: true }),
      min: 0.999,
    });
  });

  test("fit contain enlarges = sharp inside (RGBA logo, premultiplied)", async () => {
    const source = corpusFile("overlay-logo-337x330.png");
    await compare("contain enlarge", {
      request: on(source, [{ imageIndex: 0, width: 674, height: 674, fit: "contain" }]),
      reference: () => sharp(source).resize(674, 674, { fit: "inside" }),
      metric: "rgba",
      min: 0.97,
    });
  });

  test("fit cover = sharp cover, centre and each side", async () => {
    const photo = corpusFile("photo-4mp-twowings.jpg");
    for (const [gravity, position] of [
      [undefined, "centre"],
      ["left", "left"],
      ["right", "right"],
    ]) {
      await compare(`cover ${gravity ?? "default"}`, {
        request: on(photo, [{ imageIndex: 0, width: 500, height: 500, fit: "cover", ...(gravity ? { gravity } : {}) }]),
        reference: () => sharp(photo).resize(500, 500, { fit: "cover", position }),
        min: 0.99,
      });
    }
    // Vertical crop sides: a portrait box on the landscape photo crops nothing vertically, so use
    // a wide box: top/bottom then choose the rows.
    for (const side of ["top", "bottom"]) {
      await compare(`cover ${side}`, {
        request: on(photo, [{ imageIndex: 0, width: 600, height: 200, fit: "cover", gravity: side }]),
        reference: () => sharp(photo).resize(600, 200, { fit: "cover", position: side }),
        min: 0.99,
      });
    }
  });

  test("fit cover cuts at sharp's whole output pixel when the remainder is odd", async () => {
    // 640×400 → cover 251×251: the whole image scales to 402×251 and 151 columns are cut, 76 of
    // them on the left (sharp: (402 - 251 + 1) / 2). An exact centre (75.5) is half a pixel off
    // sharp's and scores about 0.97; the same cut scores what two Lanczos3 resizers agree to.
    await compare("cover odd remainder", {
      request: on(base, [{ imageIndex: 0, width: 251, height: 251, fit: "cover" }]),
      reference: () => sharp(base).resize(251, 251, { fit: "cover" }),
      min: 0.99,
    });
    // A crop that needs no scaling is a copy of whole pixels: 640×400 → crop 301×400 keeps
    // columns 170..471 (sharp: (640 - 301 + 1) / 2 = 170), with nothing resampled.
    await compare("crop unscaled odd remainder", {
      request: on(base, [{ imageIndex: 0, width: 301, height: 400, fit: "crop" }]),
      reference: () => sharp(base).extract({ left: 170, top: 0, width: 301, height: 400 }),
      min: 0.9999,
    });
  });

  test("gravity {x, y, mode: remainder} = sharp cover resize + extract at that share", async () => {
    // 2560×1600 → cover 500×500 scales to 800×500; x = 0.25 leaves 25 % of the 300 px cut on the left.
    const photo = corpusFile("photo-4mp-twowings.jpg");
    await compare("gravity point remainder", {
      request: on(photo, [{ imageIndex: 0, width: 500, height: 500, fit: "cover", gravity: { x: 0.25, y: 0.5, mode: "remainder" } }]),
      reference: () => sharp(photo).resize(800, 500).extract({ left: 75, top: 0, width: 500, height: 500 }),
      min: 0.99,
    });
  });

  test("fit crop = sharp cover + withoutEnlargement", async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    await compare("crop", {
      request: on(photo, [{ imageIndex: 0, width: 400, height: 300, fit: "crop" }]),
      reference: () => sharp(photo).resize(400, 300, { fit: "cover", withoutEnlargement: true }),
      min: 0.99,
    });
  });

  test("fit pad = sharp contain on white", async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    await compare("pad", {
      request: on(photo, [{ imageIndex: 0, width: 500, height: 500, fit: "pad" }]),
      reference: () => sharp(photo).resize(500, 500, { fit: "contain", background: "#ffffff" }),
      min: 0.97,
    });
  });

  test("fit squeeze = sharp fill", async () => {
    const photo = corpusFile("photo-4mp-eveningglow.jpg");
    await compare("squeeze", {
      request: on(photo, [{ imageIndex: 0, width: 500, height: 200, fit: "squeeze" }]),
      reference: () => sharp(photo).resize(500, 200, { fit: "fill" }),
      min: 0.95,
    });
  });

  test("resize of other inputs: progressive 16 MP JPEG, WebP, grey JPEG, soft-alpha PNG", async () => {
    const cases = [
      ["photo-16mp-seeding-progressive.jpg", 800, "rgb", 0.95],
      ["photo-6mp-life.webp", 600, "rgb", 0.97],
      ["photo-4mp-grey-grayscale.jpg", 640, "grey", 0.95],
      ["graphic-3mp-emerald-alpha.png", 500, "rgba", 0.97],
    ];
    for (const [file, width, metric, min] of cases) {
      const source = corpusFile(file);
      await compare(`resize ${file}`, {
        request: on(source, [{ imageIndex: 0, width }]),
        reference: () => sharp(source).resize(width),
        metric,
        min,
      });
    }
  });

  test("EXIF orientation 6 is applied before the resize, as sharp autoOrient", async () => {
    // Stored 2056×3088 sideways; upright 3088×2056, so width 400 gives 400×266.
    const photo = corpusFile("photo-6mp-aitzgorri-exif6.jpg");
    const { ours } = await compare("exif6", {
      request: on(photo, [{ imageIndex: 0, width: 400 }]),
      reference: () => sharp(photo).autoOrient().resize(400),
      min: 0.95,
    });
    assert.deepEqual([ours.width, ours.height], [400, 266]);
  });

  // -------------------------------------------------------------------------------------------
  // Geometry: exact operations, so the pixels must match (SSIM ≥ 0.999 and no difference at all).

  test("rotate 90/180/270, flip h/v/hv, flip+rotate = sharp rotate/flop/flip", async () => {
    const cases = [
      [{ rotate: 90 }, (s) => s.rotate(90)],
      [{ rotate: 180 }, (s) => s.rotate(180)],
      [{ rotate: 270 }, (s) => s.rotate(270)],
      [{ flip: "h" }, (s) => s.flop()],
      [{ flip: "v" }, (s) => s.flip()],
      [{ flip: "hv" }, (s) => s.flip().flop()],
      // One step: flip first, then rotate (Cloudflare's and sharp's order alike).
      [{ flip: "h", rotate: 90 }, (s) => s.flop().rotate(90)],
    ];
    for (const [options, op] of cases) {
      const name = `geometry ${JSON.stringify(options)}`;
      const { ours, theirs } = await compare(name, {
        request: on(base, [{ imageIndex: 0, ...options }]),
        reference: () => op(sharp(base)),
        min: 0.999,
      });
      assert.equal(meanAbsoluteDifference(ours, theirs), 0, `${name}: pixels differ`);
    }
  });

  test("trim explicit = sharp extract; trim border = sharp trim", async () => {
    const explicit = await compare("trim explicit", {
      request: on(base, [{ imageIndex: 0, trim: { top: 10, left: 20, width: 300, height: 200 } }]),
      reference: () => sharp(base).extract({ left: 20, top: 10, width: 300, height: 200 }),
      min: 0.999,
    });
    assert.equal(meanAbsoluteDifference(explicit.ours, explicit.theirs), 0);
    const sides = await compare("trim sides", {
      request: on(base, [{ imageIndex: 0, trim: { top: 10, right: 30, bottom: 40, left: 20 } }]),
      reference: () => sharp(base).extract({ left: 20, top: 10, width: 590, height: 350 }),
      min: 0.999,
    });
    assert.equal(meanAbsoluteDifference(sides.ours, sides.theirs), 0);
    for (const trim of ["border", { border: { color: "#336699", tolerance: 10 } }]) {
      const { ours } = await compare(`trim ${JSON.stringify(trim)}`, {
        request: on(framed, [{ imageIndex: 0, trim }]),
        reference: () => sharp(framed).trim({ background: "#336699", threshold: 10 }),
        min: 0.999,
      });
      assert.deepEqual([ours.width, ours.height], [640, 400]);
    }
  });

  test("border per side = sharp extend", async () => {
    const { ours, theirs } = await compare("border", {
      request: on(base, [{ imageIndex: 0, border: { color: "#ff8000", top: 5, right: 10, bottom: 15, left: 20 } }]),
      reference: () => sharp(base).extend({ top: 5, right: 10, bottom: 15, left: 20, background: "#ff8000" }),
      min: 0.999,
    });
    assert.equal(meanAbsoluteDifference(ours, theirs), 0);
    const uniform = await compare("border width", {
      request: on(base, [{ imageIndex: 0, border: { color: "rgb(10 200 30)", width: 8 } }]),
      reference: () => sharp(base).extend({ top: 8, right: 8, bottom: 8, left: 8, background: "rgb(10,200,30)" }),
      min: 0.999,
    });
    assert.equal(meanAbsoluteDifference(uniform.ours, uniform.theirs), 0);
  });

  // -------------------------------------------------------------------------------------------
  // Filters.

  test("blur radius r = sharp Gaussian blur σ = r/2", async () => {
    // imgbind approximates the Gaussian with three box passes (Jarosz), libvips convolves with a
    // sampled Gaussian: close but not equal kernels (measured 0.991–0.999). 0.98 still fails a
    // σ off by 2× either way (measured ≤ 0.974). Radius 1 (σ 0.5) changes neither image:
    // libvips drops kernel taps under 0.2, imgbind's box passes are 1 px wide.
    for (const radius of [1, 2, 10, 40]) {
      await compare(`blur ${radius}`, {
        request: on(base, [{ imageIndex: 0, blur: radius }]),
        reference: () => sharp(base).blur(radius / 2),
        min: 0.98,
      });
    }
  });

  test("sharpen = unsharp mask (σ 1) built from sharp convolve; close to sharp sharpen", async () => {
    // imgbind: out = in + amount·(in − Gaussian σ=1). The same kernel through sharp.convolve is the
    // exact equivalent (0.98: box-approximated vs sampled Gaussian). sharp's own sharpen() works on
    // L* with a different response curve, so it only has to be similar (0.9).
    const gaussian = [];
    const size = 7;
    let total = 0;
    for (let y = -3; y <= 3; y++) {
      for (let x = -3; x <= 3; x++) {
        const g = Math.exp(-(x * x + y * y) / 2);
        gaussian.push(g);
        total += g;
      }
    }
    for (const amount of [1, 3]) {
      const kernel = gaussian.map((g, i) => (i === 24 ? 1 + amount : 0) - (amount * g) / total);
      await compare(`sharpen ${amount} vs convolve`, {
        request: on(base, [{ imageIndex: 0, sharpen: amount }]),
        reference: () => sharp(base).convolve({ width: size, height: size, kernel }),
        min: 0.98,
      });
    }
    await compare("sharpen 1 vs sharp.sharpen", {
      request: on(base, [{ imageIndex: 0, sharpen: 1 }]),
      reference: () => sharp(base).sharpen({ sigma: 1 }),
      min: 0.9,
    });
  });

  test("brightness and contrast = sharp linear (the same per-channel formulas)", async () => {
    // brightness b: v·b; contrast c: (v − 127.5)·c + 127.5. Both are sharp.linear(a, b) exactly,
    // up to rounding (libvips truncates the float result, imgbind rounds: measured 0.993–0.997,
    // the half-level offset weighs most in dark flat areas; the mean difference stays under 0.6
    // of a level, which is the real exactness check).
    const cases = [
      [{ brightness: 1.3 }, [1.3, 0]],
      [{ brightness: 0.6 }, [0.6, 0]],
      [{ contrast: 1.5 }, [1.5, 127.5 * (1 - 1.5)]],
      [{ contrast: 0.5 }, [0.5, 127.5 * (1 - 0.5)]],
    ];
    for (const [options, [a, b]] of cases) {
      const name = JSON.stringify(options);
      const { ours, theirs } = await compare(name, {
        request: on(base, [{ imageIndex: 0, ...options }]),
        reference: () => sharp(base).linear(a, b),
        min: 0.99,
      });
      assert.ok(meanAbsoluteDifference(ours, theirs) < 0.6, `${name}: mean difference`);
    }
    // Not compared: sharp's modulate({brightness}) multiplies L* in LCh, a different operation
    // (SSIM 0.78 against imgbind's per-channel factor at 1.3).
  });

  test("gamma g = sharp gamma(1, g) (output gamma: v^(1/g))", async () => {
    for (const gamma of [1.5, 2.2]) {
      const { ours, theirs } = await compare(`gamma ${gamma}`, {
        request: on(base, [{ imageIndex: 0, gamma }]),
        reference: () => sharp(base).gamma(1, gamma),
        min: 0.995,
      });
      assert.ok(meanAbsoluteDifference(ours, theirs) < 1, `gamma ${gamma}: mean difference`);
    }
  });

  test("saturation 0 = sharp greyscale; 0.5 and 2 ≈ sharp modulate saturation", async () => {
    // Greyscale: imgbind uses Rec. 601 luma on sRGB values, libvips the luminance of linear
    // light, so grey levels differ slightly in bright saturated areas: luma SSIM ≥ 0.97.
    const { ours } = await compare("saturation 0", {
      request: on(base, [{ imageIndex: 0, saturation: 0 }]),
      reference: () => sharp(base).greyscale().toColourspace("srgb"),
      metric: "grey",
      min: 0.97,
    });
    for (let i = 0; i < ours.data.length; i += 3) {
      assert.ok(ours.data[i] === ours.data[i + 1] && ours.data[i + 1] === ours.data[i + 2], "grey pixels");
    }
    // Scaling chroma around the luma (imgbind) vs scaling C* in LCh (libvips): close when
    // desaturating (measured 0.989), further apart when doubling, where the two clip and shift
    // hue differently in saturated areas (measured 0.888): per-channel SSIM ≥ 0.97 and ≥ 0.85.
    for (const [saturation, min] of [
      [0.5, 0.97],
      [2, 0.85],
    ]) {
      await compare(`saturation ${saturation}`, {
        request: on(base, [{ imageIndex: 0, saturation }]),
        reference: () => sharp(base).modulate({ saturation }),
        min,
      });
    }
  });

  test("background flattens transparency = sharp flatten", async () => {
    const source = corpusFile("graphic-3mp-emerald-alpha.png");
    await compare("background", {
      request: on(source, [{ imageIndex: 0, width: 400, background: "#204080" }]),
      reference: () => sharp(source).resize(400).flatten({ background: "#204080" }),
      min: 0.97,
    });
  });

  // -------------------------------------------------------------------------------------------
  // draw() = sharp composite.

  test("draw at edges, centred, offset and tiled = sharp composite with gravity/top/left/tile", async () => {
    const cases = [
      [{ bottom: 0, right: 0 }, { gravity: "southeast" }],
      [{ top: 0, left: 0 }, { gravity: "northwest" }],
      [{ top: 0, right: 0 }, { gravity: "northeast" }],
      [{ bottom: 0, left: 0 }, { gravity: "southwest" }],
      [{}, { gravity: "centre" }],
      [{ top: 20, left: 30 }, { top: 20, left: 30 }],
      [{ top: 0, left: 0, repeat: true }, { gravity: "northwest", tile: true }],
    ];
    for (const [options, composite] of cases) {
      const name = `draw ${JSON.stringify(options)}`;
      const { ours, theirs } = await compare(name, {
        request: on(base, [{ drawImageIndex: 1, targetImageIndex: 0, ...options }], [logo]),
        reference: () => sharp(base).composite([{ input: logo, ...composite }]),
        min: 0.99,
      });
      // Both blend premultiplied 8-bit values: at most rounding apart.
      assert.ok(meanAbsoluteDifference(ours, theirs) < 0.5, `${name}: mean difference`);
    }
  });

  test("draw composite modes = sharp composite blend modes", async () => {
    // A translucent logo on an opaque photo. `lighter` is Cairo's/libvips' `add`.
    for (const [mode, blend] of [
      ["over", "over"],
      ["atop", "atop"],
      ["lighter", "add"],
      ["xor", "xor"],
      ["in", "in"],
      ["out", "out"],
    ]) {
      await compare(`composite ${mode}`, {
        request: on(base, [{ drawImageIndex: 1, targetImageIndex: 0, top: 40, left: 50, composite: mode }], [logo]),
        reference: () => sharp(base).composite([{ input: logo, top: 40, left: 50, blend }]),
        metric: "rgba",
        min: 0.98,
      });
    }
  });

  // -------------------------------------------------------------------------------------------
  // Call order: each .transform() is a step, applied in order, like chaining sharp instances.

  test("steps apply in call order = sharp pipelines chained one per step", async () => {
    const steps = [
      { imageIndex: 0, width: 320 },
      { imageIndex: 0, rotate: 90 },
      { imageIndex: 0, flip: "v" },
      { imageIndex: 0, blur: 4 },
      { imageIndex: 0, border: { color: "#000000", width: 4 } },
    ];
    const reference = async () => {
      let png = await sharp(base).resize(320).png().toBuffer();
      png = await sharp(png).rotate(90).png().toBuffer();
      png = await sharp(png).flip().png().toBuffer();
      png = await sharp(png).blur(2).png().toBuffer();
      return sharp(png).extend({ top: 4, right: 4, bottom: 4, left: 4, background: "#000000" });
    };
    const chained = await reference();
    const { ours } = await compare("call order", { request: on(base, steps), reference: () => chained, min: 0.95 });
    assert.deepEqual([ours.width, ours.height], [208, 328]);
  });

  // -------------------------------------------------------------------------------------------
  // Output formats: decoded by sharp, each as close to the source as sharp's own encoder gets.

  test("output JPEG/WebP/PNG/GIF decode to the source as well as sharp's encoders do", async () => {
    const cases = [
      ["image/jpeg", 80, (s) => s.jpeg({ quality: 80 }), 0.01],
      ["image/webp", 80, (s) => s.webp({ quality: 80 }), 0.01],
      ["image/png", undefined, (s) => s.png(), 0],
    ];
    for (const [format, quality, encode, slack] of cases) {
      const [ours, theirs] = await Promise.all([
        transformEncoded(backend.socket, { image: base, transforms: [], format, quality }),
        encode(sharp(base)).toBuffer(),
      ]);
      assert.equal(ours.headers["content-type"], format);
      const [ourPixels, theirPixels] = await Promise.all([decodeWithSharp(ours.bytes), decodeWithSharp(theirs)]);
      const ourScore = ssimChannels(ourPixels, baseRaw);
      const theirScore = ssimChannels(theirPixels, baseRaw);
      report(`output ${format}`, { ours: ourScore.toFixed(4), sharp: theirScore.toFixed(4), bytes: [ours.bytes.length, theirs.length] });
      assert.ok(ourScore >= theirScore - slack, `${format}: SSIM ${ourScore} vs sharp's ${theirScore}`);
      if (format === "image/png") assert.equal(meanAbsoluteDifference(ourPixels, baseRaw), 0, "PNG is lossless");
    }
    // GIF: 256 colours; NeuQuant vs libimagequant. Structure must survive (≥ 0.85 on luma).
    const gif = await transformEncoded(backend.socket, { image: base, transforms: [], format: "image/gif" });
    const gifScore = ssimGrey(await decodeWithSharp(gif.bytes), baseRaw);
    report("output image/gif", { ours: gifScore.toFixed(4) });
    assert.ok(gifScore >= 0.85, `GIF SSIM ${gifScore}`);
    // WebP quality 100 is lossless.
    const lossless = await transformEncoded(backend.socket, { image: base, transforms: [], format: "image/webp", quality: 100 });
    assert.equal(meanAbsoluteDifference(await decodeWithSharp(lossless.bytes), baseRaw), 0, "WebP q100 is lossless");
  });

  test("output PNG with quality is a palette PNG, like sharp png({palette: true, quality})", async () => {
    const logoRaw = await sharpRaw(sharp(logo), 4);
    // [name, image, reference, channels, largest size ratio ours / sharp's]. Both pick the fewest
    // colours that meet the quality's error target (libimagequant's curve, `palette.rs`): measured
    // photo 0.98× (q85) and 1.01× (q50) sharp's size, logo 0.89× and 0.82×. (Before the target,
    // quantizr filled the palette to a mapped size and the logo came out 1.6× and 2.2×.) The
    // calibration over the whole corpus and four qualities is tests/png8-quality.test.js.
    for (const [name, image, reference, channels, largestRatio] of [
      ["photo", base, baseRaw, 3, 1.3],
      ["logo (alpha)", logo, logoRaw, 4, 1.3],
    ]) {
      for (const quality of [85, 50]) {
        const [ours, theirs] = await Promise.all([
          transformEncoded(backend.socket, { image, transforms: [], format: "image/png", quality }),
          sharp(image).png({ palette: true, quality }).toBuffer(),
        ]);
        assert.equal(ours.headers["content-type"], "image/png");
        const meta = await sharp(ours.bytes).metadata();
        assert.equal(meta.isPalette, true, `${name} q${quality}: indexed PNG`);
        const [ourPixels, theirPixels] = await Promise.all([
          decodeWithSharp(ours.bytes, channels),
          decodeWithSharp(theirs, channels),
        ]);
        const ssim = channels === 4 ? ssimRgba : ssimChannels;
        const ourScore = ssim(ourPixels, reference);
        const theirScore = ssim(theirPixels, reference);
        const sizeRatio = ours.bytes.length / theirs.length;
        report(`output png8 ${name} q${quality}`, {
          ours: ourScore.toFixed(4),
          sharp: theirScore.toFixed(4),
          bytes: [ours.bytes.length, theirs.length],
        });
        // quantizr (median cut + k-means) against libimagequant: measured photo 0.861 vs 0.847
        // (q85) and 0.861 vs 0.837 (q50); logo 0.996 vs 0.997 and 0.987 vs 0.991. Dithering
        // lowers a photo's SSIM against its truecolour source for both.
        assert.ok(ourScore >= theirScore - 0.03, `${name} q${quality}: SSIM ${ourScore} vs sharp's ${theirScore}`);
        assert.ok(ourScore >= 0.8, `${name} q${quality}: SSIM ${ourScore}`);
        assert.ok(
          sizeRatio > 0.5 && sizeRatio < largestRatio,
          `${name} q${quality}: ${ours.bytes.length} vs sharp's ${theirs.length} bytes`,
        );
      }
    }
    // Without a quality PNG stays truecolour.
    const plain = await transformEncoded(backend.socket, { image: base, transforms: [], format: "image/png" });
    assert.equal((await sharp(plain.bytes).metadata()).isPalette, false);
  });

  test("output JPEG is progressive at 640×400, baseline under 50 px (sharp's reading)", async () => {
    const big = await transformEncoded(backend.socket, { image: base, transforms: [], format: "image/jpeg" });
    assert.equal((await sharp(big.bytes).metadata()).isProgressive, true);
    const small = await transformEncoded(backend.socket, {
      image: base,
      transforms: [{ imageIndex: 0, width: 48 }],
      format: "image/jpeg",
    });
    const meta = await sharp(small.bytes).metadata();
    assert.deepEqual([meta.width, meta.height, meta.isProgressive], [48, 30, false]);
  });

  // -------------------------------------------------------------------------------------------
  // AVIF (the formats work): skipped, with the backend's own answer as the reason, while a build
  // answers 9520 for AVIF; compared like the other formats once it decodes and encodes it.

  test("AVIF input resizes like sharp; AVIF output keeps the image's structure", async (t) => {
    const garden = corpusFile("photo-4mp-garden.avif");
    const probe = await postAvifProbe(garden);
    if (probe) {
      t.skip(`this build does not handle AVIF yet: ${probe}`);
      return;
    }
    // Both decode the same AV1 bitstream (dav1d vs libaom/dav1d), then resize with Lanczos3.
    await compare("avif input", {
      request: on(garden, [{ imageIndex: 0, width: 640 }]),
      reference: () => sharp(garden).resize(640),
      min: 0.97,
    });
    const [ours, theirs] = await Promise.all([
      transformEncoded(backend.socket, { image: base, transforms: [], format: "image/avif", quality: 60 }),
      sharp(base).avif({ quality: 60 }).toBuffer(),
    ]);
    assert.equal(ours.headers["content-type"], "image/avif");
    const ourScore = ssimChannels(await decodeWithSharp(ours.bytes), baseRaw);
    const theirScore = ssimChannels(await decodeWithSharp(theirs), baseRaw);
    report("output image/avif", { ours: ourScore.toFixed(4), sharp: theirScore.toFixed(4), bytes: [ours.bytes.length, theirs.length] });
    // The same `quality` number does not mean the same thing to two AV1 encoders (at 60 imgbind's
    // file is about half the size of sharp's, measured SSIM 0.927 vs 0.966), so this is an
    // absolute bound: the structure survives.
    assert.ok(ourScore >= 0.9, `AVIF: SSIM ${ourScore} (sharp's: ${theirScore})`);
  });

  /** `null` when the backend turns an AVIF into an rgb answer, else its error text. */
  async function postAvifProbe(avif) {
    try {
      await transformPixels(backend.socket, { image: avif, transforms: [{ imageIndex: 0, width: 16 }] });
      await transformEncoded(backend.socket, { image: logo, transforms: [], format: "image/avif" });
      return null;
    } catch (error) {
      if (/ 415: ERROR 9520/.test(error.message)) return error.message;
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------
  // CMYK JPEG with an embedded CMYK profile. No CMYK profile can be committed (licences), so the
  // fixture is made here with libvips's own built-in `cmyk` profile (an Argyll press profile, v2,
  // Lab PCS, 16-bit LUTs), embedded by sharp.

  test("CMYK JPEG with an embedded CMYK profile converts through it, as sharp does", async () => {
    const cmyk = await sharp(base).toColourspace("cmyk").withIccProfile("cmyk").jpeg({ quality: 95 }).toBuffer();
    // It is what it claims: four components, Adobe's APP14 (inverted CMYK), a CMYK ICC profile.
    const meta = await sharp(cmyk).metadata();
    assert.deepEqual([meta.format, meta.space, meta.channels], ["jpeg", "cmyk", 4]);
    assert.equal(meta.icc.subarray(16, 20).toString("latin1"), "CMYK", "profile colour space");
    const segments = jpegSegments(cmyk);
    assert.ok(segments.some((s) => s.marker === 0xee && s.body.subarray(0, 5).toString("latin1") === "Adobe"), "APP14");
    const frame = segments.find((s) => s.marker === 0xc0 || s.marker === 0xc2);
    assert.equal(frame.body[5], 4, "four components in the frame header");

    const [ours, naive, theirs] = await Promise.all([
      transformPixels(backend.socket, { image: cmyk, transforms: [] }),
      // The same pixels without the profile: imgbind's naive (1 − c)(1 − k) conversion.
      transformPixels(backend.socket, { image: withoutIccProfile(cmyk), transforms: [] }),
      decodeWithSharp(cmyk),
    ]);
    // Luma SSIM and mean difference against sharp. Not the lowest channel: libvips' 8-bit lcms
    // transform puts blue 12.6 levels (mean) away from lcms's exact float answer for this profile
    // (`transicc` on 2 640 sampled pixels), ours 3.3; on red and green both are within 1.3.
    const score = ssimGrey(ours, theirs);
    const naiveScore = ssimGrey(naive, theirs);
    const difference = meanAbsoluteDifference(ours, theirs);
    const naiveDifference = meanAbsoluteDifference(naive, theirs);
    report("cmyk with profile", {
      ours: score.toFixed(4),
      naive: naiveScore.toFixed(4),
      mad: [difference.toFixed(2), naiveDifference.toFixed(2)],
      rgb: [0, 1, 2].map((c) => ssimGrey(plane(ours, c), plane(theirs, c)).toFixed(4)),
    });
    // Measured: through the profile with black point compensation luma SSIM 0.997 and mean
    // difference 3.9 levels; the naive formula 0.966 and 11.1; the profile without black point
    // compensation (moxcms alone) 12.0.
    assert.ok(score >= 0.99, `CMYK through its profile: luma SSIM ${score.toFixed(4)} (naive ${naiveScore.toFixed(4)})`);
    assert.ok(difference <= 6, `mean difference ${difference.toFixed(2)}`);
    assert.ok(naiveScore < 0.99 && naiveDifference > 6, `the bounds must reject the naive conversion's ${naiveScore.toFixed(4)} / ${naiveDifference.toFixed(2)}`);
  });

  test("output background flattens alpha like sharp flatten", async () => {
    const ours = await transformEncoded(backend.socket, {
      image: logo,
      transforms: [],
      format: "image/png",
      background: "#ff0000",
    });
    const decoded = await sharp(ours.bytes).metadata();
    assert.equal(decoded.hasAlpha, false, "flattened PNG has no alpha");
    const score = ssimChannels(await decodeWithSharp(ours.bytes), await sharpRaw(sharp(logo).flatten({ background: "#ff0000" })));
    assert.ok(score >= 0.999, `SSIM ${score}`);
  });
});
