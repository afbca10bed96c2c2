// Perceptual similarity of two same-size raw images, with the SSIM of bench/ssim.mjs (Wang et al.
// 2004, 8×8 windows stepped by 4 px) applied per plane: luma, or each colour channel.

import { ssim } from "../../bench/ssim.mjs";

/** `{data, width, height, channels}` → one plane `{data, width, height}` of channel `c`. */
function plane(image, c) {
  const { data, width, height, channels } = image;
  const out = new Uint8Array(width * height);
  for (let i = 0, j = c; i < out.length; i++, j += channels) out[i] = data[j];
  return { data: out, width, height };
}

/** Rec. 601 luma plane of an RGB(A) or grey image. */
export function luma(image) {
  const { data, width, height, channels } = image;
  if (channels < 3) return plane(image, 0);
  const out = new Uint8Array(width * height);
  for (let i = 0, j = 0; i < out.length; i++, j += channels) {
    out[i] = Math.round(0.299 * data[j] + 0.587 * data[j + 1] + 0.114 * data[j + 2]);
  }
  return { data: out, width, height };
}

function sameSize(a, b) {
  if (a.width !== b.width || a.height !== b.height) {
    throw new Error(`sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  }
}

/** SSIM of the luma planes. */
export function ssimGrey(a, b) {
  sameSize(a, b);
  return ssim(luma(a), luma(b));
}

/** The lowest per-channel SSIM over the first `channels` channels (3 = RGB, 4 = RGBA). */
export function ssimChannels(a, b, channels = 3) {
  sameSize(a, b);
  let lowest = 1;
  for (let c = 0; c < channels; c++) lowest = Math.min(lowest, ssim(plane(a, c), plane(b, c)));
  return lowest;
}

/**
 * For images with alpha: the lowest of the alpha plane's SSIM and the colour SSIM after both are
 * flattened onto mid-grey, so colours hidden under transparent pixels (which encoders and
 * resizers treat differently) do not count, and visible colour and coverage both do.
 */
export function ssimRgba(a, b) {
  sameSize(a, b);
  const onGrey = (image) => ({ ...flatten(image, [128, 128, 128]), channels: 3 });
  return Math.min(ssimChannels(onGrey(a), onGrey(b), 3), ssim(plane(a, 3), plane(b, 3)));
}

/**
 * Raw pixels converted to `channels` (3 or 4): grey is expanded, alpha is added as opaque or
 * removed by flattening onto `background` (straight alpha, rounded like the backend does).
 */
export function toChannels(image, channels, background = [255, 255, 255]) {
  if (image.channels === channels) return image;
  const { width, height } = image;
  const grey = image.channels < 3;
  const hasAlpha = image.channels === 2 || image.channels === 4;
  const out = Buffer.alloc(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const src = i * image.channels;
    const rgb = grey ? [image.data[src], image.data[src], image.data[src]] : [image.data[src], image.data[src + 1], image.data[src + 2]];
    const alpha = hasAlpha ? image.data[src + image.channels - 1] : 255;
    const dst = i * channels;
    if (channels === 4) {
      out.set([...rgb, alpha], dst);
    } else {
      for (let c = 0; c < 3; c++) out[dst + c] = Math.round((rgb[c] * alpha + background[c] * (255 - alpha)) / 255);
    }
  }
  return { data: out, width, height, channels };
}

function flatten(image, background) {
  return toChannels(image, 3, background);
}

/** Mean absolute difference per sample (0–255), for exact operations. */
export function meanAbsoluteDifference(a, b) {
  sameSize(a, b);
  if (a.data.length !== b.data.length) throw new Error("channel counts differ");
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
  return sum / a.data.length;
}
