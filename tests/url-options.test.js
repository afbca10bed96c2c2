// The URL-interface grammar (worker-example/src/url-options.js) on its own: every option and alias
// to the binding's transform/output options, the canonical cache-key form, and bad input.

import assert from "node:assert/strict";
import { test } from "node:test";
import { negotiateFormat, parseOptions, splitImagePath } from "../worker-example/src/url-options.js";

test("splits options from the source path (decoded, leading slashes dropped)", () => {
  assert.deepEqual(splitImagePath("/cdn-cgi/image/width=80,f=png/photos/a%20b.jpg"), { optionsText: "width=80,f=png", source: "photos/a b.jpg" });
  assert.deepEqual(splitImagePath("/cdn-cgi/image/w=1//x.png"), { optionsText: "w=1", source: "x.png" });
  assert.equal(splitImagePath("/images/x.png"), null);
  assert.throws(() => splitImagePath("/cdn-cgi/image/width=80"), { code: 9401 });
  assert.throws(() => splitImagePath("/cdn-cgi/image/width=80/"), { code: 9401 });
});

test("every option and short name maps to transform() and output()", () => {
  const parsed = parseOptions(
    "w=800,h=600,fit=cover,g=0.25x0.75,q=70,f=webp,rotate=90,flip=hv,blur=3,sharpen=1.5,brightness=1.1,contrast=0.9,gamma=1.2,saturation=0,background=#ff0000,anim=false,metadata=none",
  );
  assert.deepEqual(parsed.transform, {
    width: 800,
    height: 600,
    fit: "cover",
    gravity: { x: 0.25, y: 0.75, mode: "remainder" },
    rotate: 90,
    flip: "hv",
    blur: 3,
    sharpen: 1.5,
    brightness: 1.1,
    contrast: 0.9,
    gamma: 1.2,
    saturation: 0,
    background: "#ff0000",
  });
  assert.deepEqual(parsed.output, { format: "image/webp", quality: 70, anim: false });
  assert.equal(parsed.autoFormat, false);
  assert.deepEqual(parseOptions("gravity=left").transform, { gravity: "left" });
  assert.deepEqual(parseOptions("quality=medium-low,format=baseline-jpeg").output, { format: "image/jpeg", quality: 65 });
  assert.deepEqual(parseOptions("format=auto"), { transform: {}, output: { format: null }, autoFormat: true, canonical: "format=auto" });
});

test("trim: sides, trim.* fields, border; dpr scales width and height", () => {
  assert.deepEqual(parseOptions("trim=1;2;3;4").transform, { trim: { top: 1, right: 2, bottom: 3, left: 4 } });
  assert.deepEqual(parseOptions("trim=border").transform, { trim: "border" });
  assert.deepEqual(parseOptions("trim.width=100,trim.height=50,trim.left=5,trim.top=6").transform, {
    trim: { width: 100, height: 50, left: 5, top: 6 },
  });
  assert.deepEqual(parseOptions("trim.border.color=white,trim.border.tolerance=10,trim.border.keep=2").transform, {
    trim: { border: { color: "white", tolerance: 10, keep: 2 } },
  });
  assert.deepEqual(parseOptions("width=300,height=101,dpr=1.5").transform, { width: 450, height: 152 });
});

test("the canonical form is order- and alias-independent", () => {
  assert.equal(parseOptions("w=500,q=60,f=jpeg").canonical, parseOptions("format=jpeg,width=500,quality=60").canonical);
  assert.notEqual(parseOptions("w=500").canonical, parseOptions("w=501").canonical);
});

test("bad and unsupported options are coded errors, never ignored", () => {
  for (const text of ["widht=1", "width", "width=", "width=-1", "width=0", "w=1,width=2", "format=bmp", "anim=maybe", "dpr=3", "trim=1;2;3", "trim.nope=1", "border=5", "trim=border,trim.top=1"]) {
    assert.throws(() => parseOptions(text), { code: 9401 }, text);
  }
  for (const text of ["width=auto", "segment=foreground", "upscale=generate", "onerror=redirect", "metadata=keep", "zoom=0.5"]) {
    assert.throws(() => parseOptions(text), { code: 9520 }, text);
  }
});

test("format=auto negotiation from Accept", () => {
  assert.equal(negotiateFormat("image/avif,image/webp,*/*", "image/jpeg"), "image/avif");
  assert.equal(negotiateFormat("image/webp;q=0.9, */*", "image/jpeg"), "image/webp");
  assert.equal(negotiateFormat("*/*", "image/jpeg"), "image/jpeg");
  assert.equal(negotiateFormat(null, "image/png"), "image/png");
  assert.equal(negotiateFormat("text/html", "image/webp"), "image/png");
});
