// Just enough image-format knowledge to check answers without a decoder: read the format and
// dimensions from the header, check that the file is complete (its end marker or its declared
// size is there), and make small solid-colour PNGs with known pixels for placement checks.

import { crc32, deflateSync } from "node:zlib";

/** `{ format, width, height }` read from the header of a PNG, JPEG, WebP, GIF or AVIF file. */
export function imageHeader(bytes) {
  const b = Buffer.from(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength);
  if (b.length >= 24 && b.subarray(0, 8).equals(PNG_SIGNATURE)) {
    return { format: "image/png", width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) return { format: "image/jpeg", ...jpegSize(b) };
  if (b.length >= 30 && b.toString("latin1", 0, 4) === "RIFF" && b.toString("latin1", 8, 12) === "WEBP") {
    return { format: "image/webp", ...webpSize(b) };
  }
  if (b.length >= 10 && b.toString("latin1", 0, 4) === "GIF8") {
    return { format: "image/gif", width: b.readUInt16LE(6), height: b.readUInt16LE(8) };
  }
  if (b.length >= 12 && b.toString("latin1", 4, 8) === "ftyp" && /avi[fs]/.test(b.toString("latin1", 8, 12))) {
    return { format: "image/avif", ...avifSize(b) };
  }
  throw new Error(`not a PNG/JPEG/WebP/GIF/AVIF file (starts ${b.subarray(0, 16).toString("hex")})`);
}

/**
 * Whether the file ends where its format says it ends: PNG's IEND chunk, JPEG's EOI marker,
 * GIF's trailer, WebP's RIFF size. A truncated answer fails this even when it parses.
 */
export function isComplete(bytes) {
  const b = Buffer.from(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, bytes.byteLength);
  const { format } = imageHeader(b);
  switch (format) {
    case "image/png":
      return b.subarray(-12).equals(PNG_IEND);
    case "image/jpeg":
      return b[b.length - 2] === 0xff && b[b.length - 1] === 0xd9;
    case "image/webp":
      return b.readUInt32LE(4) + 8 === b.length;
    case "image/gif":
      return b[b.length - 1] === 0x3b;
    default:
      return true;
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_IEND = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

function jpegSize(b) {
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) throw new Error(`JPEG: no marker at ${i}`);
    const marker = b[i + 1];
    if (marker === 0xff) {
      i += 1; // fill byte
      continue;
    }
    const length = b.readUInt16BE(i + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
    }
    i += 2 + length;
  }
  throw new Error("JPEG: no SOF marker");
}

function webpSize(b) {
  const chunk = b.toString("latin1", 12, 16);
  if (chunk === "VP8X") {
    return { width: 1 + b.readUIntLE(24, 3), height: 1 + b.readUIntLE(27, 3) };
  }
  if (chunk === "VP8L") {
    const bits = b.readUInt32LE(21);
    return { width: 1 + (bits & 0x3fff), height: 1 + ((bits >>> 14) & 0x3fff) };
  }
  if (chunk === "VP8 ") {
    return { width: b.readUInt16LE(26) & 0x3fff, height: b.readUInt16LE(28) & 0x3fff };
  }
  throw new Error(`WebP: unknown first chunk ${chunk}`);
}

function avifSize(b) {
  // The first `ispe` (image spatial extent) property: version/flags, then width and height.
  const at = b.indexOf("ispe", 0, "latin1");
  if (at < 0 || at + 16 > b.length) throw new Error("AVIF: no ispe box");
  return { width: b.readUInt32BE(at + 8), height: b.readUInt32BE(at + 12) };
}

/** A `width`×`height` RGBA PNG filled with one colour `[r, g, b, a]`. */
export function solidPng(width, height, rgba) {
  const row = Buffer.alloc(1 + width * 4); // filter byte 0, then pixels
  for (let x = 0; x < width; x++) row.set(rgba, 1 + x * 4);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(raw)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typeAndData = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typeAndData));
  return Buffer.concat([length, typeAndData, crc]);
}

/** The `[r, g, b, a]` pixel at (x, y) of raw RGBA bytes `width` pixels wide. */
export function rgbaPixel(bytes, width, x, y) {
  const at = (y * width + x) * 4;
  return [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
}

/** Whether two pixels differ by at most `tolerance` in every channel (resampling blurs edges). */
export function closeTo(pixel, expected, tolerance = 8) {
  return pixel.every((value, i) => Math.abs(value - expected[i]) <= tolerance);
}
