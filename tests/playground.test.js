// The playground page (GET /playground on the example Worker, wrangler bundle in Miniflare, R2
// seeded, real backend) driven in headless Chromium: Debian's /usr/bin/chromium through
// playwright-core (which never downloads a browser). Picks an R2 image, adds a transform with a
// width, picks an output format, runs, and checks the shown image, its natural size and the byte
// count displayed against the bytes the page received. Set IMGBIND_PLAYGROUND_SCREENSHOT=path to
// keep a screenshot.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { chromium } from "playwright-core";
import { startExampleWorker } from "./support/example-worker.js";
import { imageHeader } from "./support/images.js";

const CHROMIUM = process.env.IMGBIND_CHROMIUM ?? "/usr/bin/chromium";
const TEST_TIMEOUT_MS = 90_000;

describe("playground page in headless Chromium", () => {
  let worker;
  let browser;
  let page;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/setup.sh installs Debian's chromium`);
    [worker, browser] = await Promise.all([
      startExampleWorker(),
      chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] }),
    ]);
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    page.setDefaultTimeout(45_000);
  });

  after(async () => {
    await browser?.close();
    await worker?.stop();
  });

  test("pick an R2 image, width 480 and WebP, run: the result shows at 480x300 with its byte count", { timeout: TEST_TIMEOUT_MS }, async () => {
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(`${worker.origin}/playground`);
    await page.waitForSelector("body[data-ready=true]");

    // The source list comes from the bucket.
    const keys = await page.$$eval("#source option", (options) => options.map((o) => o.value));
    assert.ok(keys.includes("photo-4mp-twowings.jpg"), `bucket images listed: ${keys}`);
    await page.selectOption("#source", "photo-4mp-twowings.jpg");

    await page.click("#add-transform");
    await page.fill('#steps .step[data-kind=transform] [data-field=width]', "480");
    await page.click("#add-draw");
    await page.selectOption("#steps .step[data-kind=draw] [data-source]", "overlay-logo-337x330.png");
    await page.fill("#steps .step[data-kind=draw] [data-overlay=width]", "80");
    await page.selectOption("#steps .step[data-kind=draw] [data-place]", "bottom-right");
    await page.selectOption("#format", "image/webp");

    const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/api/run")), page.click("#run")]);
    assert.equal(response.status(), 200);
    assert.equal(response.headers()["imgbind-chain"], "input.transform.draw.output");

    await page.waitForFunction(() => {
      const img = document.querySelector("#result-img");
      return !img.hidden && img.complete && img.naturalWidth > 0 && document.querySelector("#result-dims").textContent !== "–";
    });
    const shown = await page.$eval("#result-img", (img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
    assert.deepEqual(shown, { width: 480, height: 300 });
    // The bytes the page shows, read back from its blob URL.
    const body = Buffer.from(
      await page.$eval("#result-img", async (img) => [...new Uint8Array(await (await fetch(img.src)).arrayBuffer())]),
    );
    assert.deepEqual(imageHeader(body), { format: "image/webp", width: 480, height: 300 });
    assert.equal(await page.textContent("#result-dims"), "480 × 300");
    assert.equal(await page.getAttribute("#result-bytes", "data-bytes"), String(body.length));
    assert.equal(await page.textContent("#result-bytes"), body.length.toLocaleString("en-US"));
    assert.equal(await page.textContent("#result-type"), "image/webp");
    assert.match(await page.textContent("#result-time"), /^\d+$/);
    assert.equal(await page.textContent("#error"), "");
    assert.deepEqual(errors, [], "no script errors");

    if (process.env.IMGBIND_PLAYGROUND_SCREENSHOT) await page.screenshot({ path: process.env.IMGBIND_PLAYGROUND_SCREENSHOT, fullPage: true });
  });

  test("an upload is used instead of the bucket image; a bad option shows the coded error", { timeout: TEST_TIMEOUT_MS }, async () => {
    await page.setInputFiles("#upload", { name: "logo.png", mimeType: "image/png", buffer: (await import("./support/paths.js")).corpusFile("overlay-logo-337x330.png") });
    await page.click("#steps .step[data-kind=draw] .remove");
    await page.fill("#steps .step[data-kind=transform] [data-field=width]", "100");
    await page.selectOption("#format", "image/png");
    await page.click("#run");
    await page.waitForFunction(() => document.querySelector("#result-dims").textContent === "100 × 98");

    await page.fill("#steps .step[data-kind=transform] [data-field=blur]", "999");
    await page.click("#run");
    await page.waitForFunction(() => document.querySelector("#error").textContent !== "");
    assert.match(await page.textContent("#error"), /^9401: /);
  });
});
