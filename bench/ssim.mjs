// SSIM (Wang et al. 2004) of two greyscale images of the same size: the mean over 8x8 windows
// stepped by 4 px, with the paper's constants for 8-bit data. 1 = identical.

const C1 = (0.01 * 255) ** 2;
const C2 = (0.03 * 255) ** 2;
const WINDOW = 8;
const STEP = 4;

/** `a`, `b`: `{ data, width, height }`, one byte per pixel. */
export function ssim(a, b) {
  if (a.width !== b.width || a.height !== b.height) throw new Error("ssim: sizes differ");
  const { width, height } = a;
  let sum = 0;
  let windows = 0;
  for (let y = 0; y + WINDOW <= height; y += STEP) {
    for (let x = 0; x + WINDOW <= width; x += STEP) {
      let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      for (let j = 0; j < WINDOW; j++) {
        const row = (y + j) * width + x;
        for (let i = 0; i < WINDOW; i++) {
          const pa = a.data[row + i];
          const pb = b.data[row + i];
          sa += pa;
          sb += pb;
          saa += pa * pa;
          sbb += pb * pb;
          sab += pa * pb;
        }
      }
      const n = WINDOW * WINDOW;
      const ma = sa / n;
      const mb = sb / n;
      const va = saa / n - ma * ma;
      const vb = sbb / n - mb * mb;
      const cov = sab / n - ma * mb;
      sum += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
      windows += 1;
    }
  }
  return sum / windows;
}
