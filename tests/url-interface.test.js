// The example Worker's URL interface (/cdn-cgi/image/<options>/<source>) with sources in R2, the
// nested pipeline (composed/<recipe>: a JPEG background and PNG overlays from R2 composed with the
// binding, then resized and transcoded again through the URL interface) and the Cache API. The
// wrangler bundle runs in Miniflare against a real backend; results are fully decoded with sharp.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { startExampleWorker } from "./support/example-worker.js";
import { imageHeader, isComplete } from "./support/images.js";
import { corpusFile } from "./support/paths.js";

const TEST_TIMEOUT_MS = 60_000;

describe("example Worker: URL interface, R2 sources, composition, cache", () => {
  let worker;
  let origin;

  before(async () => {
    worker = await startExampleWorker();
    origin = worker.origin;
  });

  after(async () => {
    await worker?.stop();
  });

  async function get(path, headers = {}) {
    const response = await fetch(origin + path, { headers, signal: AbortSignal.timeout(45_000) });
    const bytes = Buffer.from(await response.arrayBuffer());
    return { status: response.status, headers: response.headers, bytes };
  }

  function details(answer) {
    return `status ${answer.status}: ${answer.bytes.subarray(0, 400)}\n${worker.backend.child.describe()}`;
  }

  /** GETs an image and checks type, header dimensions, completeness and a full decode. */
  async function expectImage(path, { format, width, height }, headers) {
    const answer = await get(path, headers);
    assert.equal(answer.status, 200, details(answer));
    assert.equal(answer.headers.get("content-type"), format);
    assert.deepEqual(imageHeader(answer.bytes), { format, width, height });
    assert.ok(isComplete(answer.bytes), `${format} is complete`);
    const { info } = await sharp(answer.bytes, { failOn: "truncated" }).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [width, height], "decodes fully to the same size");
    return answer;
  }

  async function expectError(path, status, code) {
    const answer = await get(path);
    assert.equal(answer.status, status, details(answer));
    const { error } = JSON.parse(answer.bytes);
    assert.equal(error.code, code, JSON.stringify(error));
    return error;
  }

  test("a gallery page's 30 thumbnails requested at once are all served", { timeout: TEST_TIMEOUT_MS }, async () => {
    // Distinct widths, so that no answer comes from the cache: 30 real jobs at once.
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => get(`/cdn-cgi/image/width=${200 + i},format=webp/photo-4mp-eveningglow.jpg`)),
    );
    const refused = answers.filter((answer) => answer.status !== 200);
    assert.equal(refused.length, 0, `${refused.length} of 30 refused; first: ${refused[0] && details(refused[0])}`);
    answers.forEach((answer, i) => {
      assert.equal(imageHeader(answer.bytes).width, 200 + i);
      assert.ok(isComplete(answer.bytes));
    });
    console.log(`# 30 thumbnails at once through the example Worker: all 200 in ${Date.now() - started} ms`);
  });

  test("width, fit and format (long and short names) on R2 sources", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectImage("/cdn-cgi/image/width=800,format=webp/photo-4mp-twowings.jpg", { format: "image/webp", width: 800, height: 500 });
    await expectImage("/cdn-cgi/image/w=300,h=300,fit=cover,g=left,q=70,f=jpeg/photo-6mp-life.webp", {
      format: "image/jpeg",
      width: 300,
      height: 300,
    });
    await expectImage("/cdn-cgi/image/rotate=90,flip=h,f=png/overlay-logo-337x330.png", { format: "image/png", width: 330, height: 337 });
    await expectImage("/cdn-cgi/image/width=200,dpr=2,format=png/overlay-logo-337x330.png", { format: "image/png", width: 337, height: 330 });
  });

  test("filters, pad with background, trim: saturation=0 gives grey pixels", { timeout: TEST_TIMEOUT_MS }, async () => {
    const answer = await expectImage(
      "/cdn-cgi/image/width=400,height=400,fit=pad,background=%23ff0000,blur=2,sharpen=1,brightness=1.1,contrast=1.2,gamma=1.1,saturation=0,format=png/photo-4mp-twowings.jpg",
      { format: "image/png", width: 400, height: 400 },
    );
    const { data, info } = await sharp(answer.bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const pixel = (x, y) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
    // 2560x1600 padded into 400x400: the photo is 400x250, red bars above and below.
    const [r, g, b] = pixel(200, 200);
    assert.ok(Math.abs(r - g) <= 3 && Math.abs(g - b) <= 3, `photo pixel is grey: ${[r, g, b]}`);
    // The bars are the red background, made grey too by saturation=0 (filters come after the pad):
    // pure red's luma is 0.299 × 255 ≈ 76.
    for (const [x, y] of [[200, 10], [10, 390]]) {
      const bar = pixel(x, y);
      assert.ok(bar.every((c) => Math.abs(c - 76) <= 12), `pad at (${x}, ${y}) is desaturated red: ${bar}`);
    }
    await expectImage("/cdn-cgi/image/trim=10;20;30;40,format=png/overlay-logo-337x330.png", { format: "image/png", width: 277, height: 290 });
  });

  test("format=auto follows Accept and answers Vary: Accept", { timeout: TEST_TIMEOUT_MS }, async () => {
    const webp = await expectImage("/cdn-cgi/image/width=320,format=auto/photo-4mp-twowings.jpg", { format: "image/webp", width: 320, height: 200 }, {
      accept: "image/webp,*/*",
    });
    assert.equal(webp.headers.get("vary"), "accept");
    await expectImage("/cdn-cgi/image/width=320,format=auto/photo-4mp-twowings.jpg", { format: "image/jpeg", width: 320, height: 200 }, { accept: "*/*" });
    await expectImage("/cdn-cgi/image/width=320,f=auto/overlay-logo-337x330.png", { format: "image/png", width: 320, height: 313 }, { accept: "*/*" });
    // AVIF when accepted, or WebP where the backend cannot encode AVIF (9520).
    const avif = await get("/cdn-cgi/image/width=320,format=auto/photo-4mp-twowings.jpg", { accept: "image/avif,image/webp" });
    assert.equal(avif.status, 200, details(avif));
    assert.ok(["image/avif", "image/webp"].includes(avif.headers.get("content-type")), avif.headers.get("content-type"));
  });

  test("nested pipeline: composed JPEG + PNG overlays from R2, resized and transcoded again", { timeout: TEST_TIMEOUT_MS }, async () => {
    const composed = await expectImage("/cdn-cgi/image/width=800,format=png/composed/sunset-poster.png", { format: "image/png", width: 800, height: 500 });
    const plain = await expectImage("/cdn-cgi/image/width=800,format=png/photo-4mp-eveningglow.jpg", { format: "image/png", width: 800, height: 500 });
    const raw = async (bytes) => (await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true })).data;
    const [a, b] = await Promise.all([raw(composed.bytes), raw(plain.bytes)]);
    /** Mean absolute difference over a box of the two 800x500 images. */
    const difference = (x0, y0, w, h) => {
      let sum = 0;
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) for (let c = 0; c < 3; c++) sum += Math.abs(a[(y * 800 + x) * 3 + c] - b[(y * 800 + x) * 3 + c]);
      return sum / (w * h * 3);
    };
    // Overlays (scaled by 800/2560): the emerald graphic 480 px wide at top/left 48 → ~150 px at 15
    // (its opaque shape near x 45–95, y 80–130); the logo 240 px wide at bottom/right 48 → ~75 px
    // ending 15 px from the corner.
    assert.ok(difference(45, 80, 50, 50) > 20, `emerald overlay at top left (${difference(45, 80, 50, 50)})`);
    assert.ok(difference(725, 425, 40, 40) > 20, `logo at bottom right (${difference(725, 425, 40, 40)})`);
    assert.ok(difference(350, 200, 100, 100) < 4, `background elsewhere (${difference(350, 200, 100, 100)})`);
    await expectImage("/cdn-cgi/image/width=640,format=webp/composed/sunset-poster.png", { format: "image/webp", width: 640, height: 400 });
  });

  test("Cache API: the second request is a hit with identical bytes; a changed source is not", { timeout: TEST_TIMEOUT_MS }, async () => {
    const path = "/cdn-cgi/image/width=500,quality=60,format=jpeg/photo-4mp-twowings.jpg";
    const first = await get(path);
    assert.equal(first.status, 200, details(first));
    assert.equal(first.headers.get("imgbind-cache"), "miss");
    assert.match(first.headers.get("cache-control"), /max-age=\d+/);
    // The put runs in waitUntil after the first answer: allow it a moment.
    let second;
    for (let attempt = 0; attempt < 50; attempt++) {
      second = await get(path);
      if (second.headers.get("imgbind-cache") === "hit") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("imgbind-cache"), "hit");
    assert.equal(second.headers.get("content-type"), "image/jpeg");
    assert.ok(second.bytes.equals(first.bytes), "identical bytes from the cache");
    // Same options written differently (short names, another order) share the entry.
    const reordered = await get("/cdn-cgi/image/f=jpeg,q=60,w=500/photo-4mp-twowings.jpg");
    assert.equal(reordered.headers.get("imgbind-cache"), "hit");
    // Other options: a miss.
    const other = await get("/cdn-cgi/image/width=501,quality=60,format=jpeg/photo-4mp-twowings.jpg");
    assert.equal(other.headers.get("imgbind-cache"), "miss");
    // New bytes under the same key (a new etag): a miss, and the new image.
    await worker.bucket.put("photo-4mp-twowings.jpg", corpusFile("photo-6mp-life.webp"));
    try {
      const changed = await get(path);
      assert.equal(changed.headers.get("imgbind-cache"), "miss");
      assert.deepEqual(imageHeader(changed.bytes), { format: "image/jpeg", width: 500, height: 333 });
    } finally {
      await worker.bucket.put("photo-4mp-twowings.jpg", corpusFile("photo-4mp-twowings.jpg"));
    }
  });

  test("errors: bad option 9401, unsupported option 9520, missing source 404, backend's 9401", { timeout: TEST_TIMEOUT_MS }, async () => {
    await expectError("/cdn-cgi/image/widht=100/photo-4mp-twowings.jpg", 400, 9401);
    await expectError("/cdn-cgi/image/width=abc/photo-4mp-twowings.jpg", 400, 9401);
    await expectError("/cdn-cgi/image/width=100/", 400, 9401);
    await expectError("/cdn-cgi/image/width=auto/photo-4mp-twowings.jpg", 415, 9520);
    await expectError("/cdn-cgi/image/segment=foreground/photo-4mp-twowings.jpg", 415, 9520);
    await expectError("/cdn-cgi/image/fit=sideways/photo-4mp-twowings.jpg", 400, 9401);
    const missing = await get("/cdn-cgi/image/width=100/no-such-image.jpg");
    assert.equal(missing.status, 404, details(missing));
    const noRecipe = await get("/cdn-cgi/image/width=100/composed/nothing.png");
    assert.equal(noRecipe.status, 404, details(noRecipe));
  });
});
