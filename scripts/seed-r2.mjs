// Fills the example Worker's local R2 bucket (IMAGES_BUCKET in wrangler.toml, persisted where
// `wrangler dev` keeps it: .wrangler/state) with the corpus images, under their file names.
// Objects already there with the same size are left alone. scripts/run.sh calls it.
// Usage: node_modules/.bin/node scripts/seed-r2.mjs [CORPUS_DIR]   (default ../shared/corpus)

import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { getPlatformProxy } from "wrangler";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const corpus = resolve(process.argv[2] ?? process.env.IMGBIND_CORPUS ?? join(ROOT, "../shared/corpus"));
const TYPES = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif" };

const proxy = await getPlatformProxy({ configPath: join(ROOT, "wrangler.toml"), persist: true });
try {
  const bucket = proxy.env.IMAGES_BUCKET;
  let put = 0;
  let kept = 0;
  for (const name of readdirSync(corpus).sort()) {
    const type = TYPES[extname(name).toLowerCase()];
    if (!type) continue;
    const path = join(corpus, name);
    const existing = await bucket.head(name);
    if (existing && existing.size === statSync(path).size) {
      kept++;
      continue;
    }
    await bucket.put(name, readFileSync(path), { httpMetadata: { contentType: type } });
    put++;
  }
  process.stderr.write(`[seed-r2] IMAGES_BUCKET: ${put} put, ${kept} already there (from ${corpus})\n`);
} finally {
  await proxy.dispose();
}
