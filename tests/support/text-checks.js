// Pixel checks for the text scenes (tests/fixtures/text-scenes.js), shared by the Cloudflare-client
// and imgbind-SDK workerd tests so both clients are held to the same pictures. PNG answers are
// decoded with sharp (a dev dependency) into raw RGBA.

import assert from "node:assert/strict";
import sharp from "sharp";
import { solidPng } from "./images.js";

/** The multipart form the scenes read: the two canvases and the bundled font as a data: URL. */
export function sceneForm(fontBytes) {
  const form = new FormData();
  form.set("white", new Blob([solidPng(320, 200, [255, 255, 255, 255])]), "white");
  form.set("blue", new Blob([solidPng(320, 200, [0, 0, 255, 255])]), "blue");
  form.set("fontUrl", `data:font/ttf;base64,${Buffer.from(fontBytes).toString("base64")}`);
  return form;
}

/** `{ data, width, height, at(x, y) }` of a PNG, as RGBA. */
export async function decodePng(png) {
  const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (x, y) => [...data.subarray((y * info.width + x) * 4, (y * info.width + x) * 4 + 4)];
  return { data, width: info.width, height: info.height, at };
}

/** Every pixel `[x, y]` for which `test([r, g, b, a])` holds. */
function where(img, test) {
  const found = [];
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) if (test(img.at(x, y))) found.push([x, y]);
  }
  return found;
}

const isRed = ([r, g, b, a]) => r > 200 && g < 60 && b < 60 && a > 200;
const isBlueInk = ([r, , b]) => b > 200 && r < 60;
const isGreen = ([r, g, b]) => g > 200 && r < 60 && b < 60;
const mean = (points) => points.reduce(([sx, sy], [x, y]) => [sx + x / points.length, sy + y / points.length], [0, 0]);

/** Asserts the pixels of `scene`'s PNG answer; resolves with the decoded image. */
export async function checkScene(scene, png) {
  const img = await decodePng(png);
  switch (scene) {
    case "base":
    case "data-font": {
      // 48 pt = 64 px per em with DejaVu Sans: "Hello" advances 162.2 px, a line is 74.5 px.
      assert.deepEqual([img.width, img.height], [163, 75]);
      assert.ok(where(img, isRed).length > 1000, "red glyph pixels");
      assert.equal(img.at(0, 0)[3], 0, "transparent outside the glyphs");
      assert.ok(where(img, ([r, g, b, a]) => a > 0 && !(r === 255 && g === 0 && b === 0)).length === 0, "every inked pixel is the text colour");
      break;
    }
    case "base-transformed": {
      // 163x75 turned is 75x163; height 100 gives 46x100.
      assert.deepEqual([img.width, img.height], [46, 100]);
      assert.ok(where(img, isRed).length > 200, "red glyph pixels");
      break;
    }
    case "overlay": {
      assert.deepEqual([img.width, img.height], [320, 200], "the canvas keeps its size");
      const blue = where(img, isBlueInk);
      assert.ok(blue.length > 200, `${blue.length} blue pixels`);
      // 40 pt "IIII" is ~63x62 px, placed at (20, 10).
      assert.ok(blue.every(([x, y]) => x >= 20 && y >= 10 && x < 90 && y < 75), "ink inside the overlay box");
      assert.deepEqual(img.at(319, 199), [255, 255, 255, 255]);
      break;
    }
    case "tree": {
      assert.deepEqual([img.width, img.height], [320, 200]);
      // The blue child, resized to 160x100, at (30, 20).
      assert.deepEqual(img.at(31, 21), [0, 0, 255, 255]);
      assert.deepEqual(img.at(29, 21), [255, 255, 255, 255]);
      assert.deepEqual(img.at(200, 150), [255, 255, 255, 255]);
      const inside = ([x, y]) => x >= 30 && x < 190 && y >= 20 && y < 120;
      const green = where(img, isGreen);
      const red = where(img, isRed);
      assert.ok(green.length > 100, `${green.length} green pixels`);
      assert.ok(red.length > 20, `${red.length} red pixels`);
      assert.ok([...green, ...red].every(inside), "text only inside the blue child");
      // "GG" sits in the child's bottom-right corner; the red block at the text's top-left.
      const [gx, gy] = mean(green);
      const [rx, ry] = mean(red);
      assert.ok(gx > 110 && gy > 70, `green centre (${gx}, ${gy})`);
      assert.ok(rx < gx && ry < gy, `red (${rx}, ${ry}) left of and above green (${gx}, ${gy})`);
      break;
    }
    default:
      throw new Error(`no check for ${scene}`);
  }
  return img;
}

/** Scenes that answer an image; `remote-font` is the one that throws. */
export const IMAGE_SCENES = ["base", "base-transformed", "data-font", "overlay", "tree"];
