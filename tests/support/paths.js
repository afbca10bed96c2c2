// Where things are: the repo root, the corpus (../shared/corpus beside the clone, or
// $IMGBIND_CORPUS), the built backend, and the Node that runs the tools (Node 22 from npm).

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is tests/support/paths.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The public image corpus. */
export const CORPUS_DIR = process.env.IMGBIND_CORPUS
  ? resolve(process.env.IMGBIND_CORPUS)
  : resolve(REPO_ROOT, "../shared/corpus");

/** The backend binary `scripts/build.sh` makes. */
export const BACKEND_BIN = join(REPO_ROOT, "target/release/imgbind");

/** The workerd binary from npm. */
export const WORKERD_BIN = join(REPO_ROOT, "node_modules/.bin/workerd");

/** wrangler's entry script; run it with `process.execPath` (Node 22 under `npm test`). */
export const WRANGLER_JS = join(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js");

/** The bytes of one corpus file; fails with a hint when the corpus is not where expected. */
export function corpusFile(name) {
  const path = join(CORPUS_DIR, name);
  if (!existsSync(path)) {
    throw new Error(`corpus file ${path} not found: put shared/ beside the clone or set IMGBIND_CORPUS`);
  }
  return readFileSync(path);
}

/** The compatibility date in the root wrangler.toml, so workerd runs as `wrangler dev` would. */
export function wranglerCompatibilityDate() {
  const toml = readFileSync(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const match = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml);
  if (!match) throw new Error("wrangler.toml has no compatibility_date");
  return match[1];
}
