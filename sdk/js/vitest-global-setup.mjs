// `imgbind/vitest/global-setup`: a Vitest globalSetup that starts one imgbind backend for the test
// run, provides its Unix socket as "imgbindSocket" (read it with `inject` in cloudflareTest's
// options and pass it to imagesBinding from "imgbind/vitest"), and stops it when the run ends.

import { startImgbind } from "./vitest.mjs";

export default async function setup({ provide }) {
  const backend = await startImgbind();
  provide("imgbindSocket", backend.socket);
  return () => backend.stop();
}
