// AVIF `quality` means what it means to sharp (issue #15, item 1). Every still image of the corpus
// (photos and graphics), scaled to 384 px wide and flattened, is encoded by imgbind and by sharp
// 0.35 (libvips → libheif → libaom 3.15, effort 4, its default 4:4:4) at each quality from 30 to
// 95. Both results are decoded by sharp and scored by luma SSIM against the lossless reference.
//
// What must hold, per quality:
//   - over the corpus, imgbind's SSIM is within 0.005 of sharp's on average (the calibration);
//   - no single image is further from sharp than the spread measured between libaom 3.11 (ours,
//     from the libaom-sys crate) and sharp's 3.15, which differ per image at low qualities
//     (SPREAD below; at q30 one photo is +0.077 and another −0.042 with the same cq-level);
//   - the files are about sharp's size (geometric mean within 0.8–1.3×).
// Before the calibration (an anchored mapping and 4:2:0) every quality failed: q60 averaged 0.040
// below sharp (one photo 0.133 below) in files 0.40× the size.

import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { CORPUS_DIR } from "./support/paths.js";
import { startBackend } from "./support/processes.js";
import { ssimGrey } from "./support/similarity.js";
import { postTransform } from "./support/transform.js";

const WIDTH = 384;
const QUALITIES = [30, 45, 60, 75, 90, 95];
const MEAN_BOUND = 0.005;
/** Largest |ours − sharp| allowed for one image, per quality: the measured spread plus margin. */
const SPREAD = { 30: 0.1, 45: 0.065, 60: 0.03, 75: 0.015, 90: 0.006, 95: 0.004 };

const STILLS = readdirSync(CORPUS_DIR)
  .filter((f) => /\.(jpe?g|png|webp|avif)$/.test(f) && !f.startsWith("anim-") && !f.startsWith("overlay-"))
  .sort();

async function pixels(bytes) {
  const { data, info } = await sharp(bytes).flatten({ background: "#ffffff" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe("AVIF quality calibrated to sharp", () => {
  let backend;
  const rows = [];
  before(async () => {
    backend = await startBackend();
  });
  after(async () => {
    await backend?.stop();
  });

  test(`every still corpus image at quality ${QUALITIES.join(", ")}`, { timeout: 300_000 }, async () => {
    assert.ok(STILLS.length >= 10, `corpus stills: ${STILLS}`);
    for (const name of STILLS) {
      const { data, info } = await sharp(`${CORPUS_DIR}/${name}`)
        .rotate()
        .resize({ width: WIDTH, withoutEnlargement: true })
        .flatten({ background: "#ffffff" })
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const reference = { data, width: info.width, height: info.height, channels: 3 };
      const png = await sharp(data, { raw: info }).png({ compressionLevel: 1 }).toBuffer();
      for (const quality of QUALITIES) {
        const answer = await postTransform(backend.socket, { image: png, transforms: [], format: "image/avif", quality });
        assert.equal(answer.status, 200, `${name} q${quality}: ${answer.bytes.subarray(0, 200)}`);
        assert.equal(answer.headers["content-type"], "image/avif");
        const theirs = await sharp(data, { raw: info }).avif({ quality }).toBuffer();
        const ours = ssimGrey(reference, await pixels(answer.bytes));
        const sharps = ssimGrey(reference, await pixels(theirs));
        rows.push({ name, quality, ours, sharps, diff: ours - sharps, bytes: answer.bytes.length, sharpBytes: theirs.length });
      }
    }

    const problems = [];
    for (const quality of QUALITIES) {
      const at = rows.filter((r) => r.quality === quality);
      const mean = at.reduce((sum, r) => sum + r.diff, 0) / at.length;
      const size = Math.exp(at.reduce((sum, r) => sum + Math.log(r.bytes / r.sharpBytes), 0) / at.length);
      const worst = at.reduce((a, r) => (Math.abs(r.diff) > Math.abs(a.diff) ? r : a));
      console.log(
        `AVIF q${quality}: SSIM ours − sharp mean ${mean.toFixed(4)}, worst ${worst.diff.toFixed(4)} (${worst.name}); size ours/sharp ${size.toFixed(2)}×`,
      );
      if (Math.abs(mean) > MEAN_BOUND) problems.push(`q${quality}: mean SSIM difference ${mean.toFixed(4)} exceeds ${MEAN_BOUND}`);
      if (Math.abs(worst.diff) > SPREAD[quality]) {
        problems.push(`q${quality}: ${worst.name} differs by ${worst.diff.toFixed(4)} (ours ${worst.ours.toFixed(4)}, sharp ${worst.sharps.toFixed(4)})`);
      }
      if (size < 0.8 || size > 1.3) problems.push(`q${quality}: files ${size.toFixed(2)}× sharp's`);
    }
    assert.deepEqual(problems, []);
  });
});
