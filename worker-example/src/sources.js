// Where source images come from: the R2 bucket (IMAGES_BUCKET; under `wrangler dev` a local bucket
// seeded from the corpus by scripts/seed-r2.mjs), or a composed image made on the fly with the
// Images binding (`composed/<recipe>`: a JPEG background with PNG overlays, all read from R2).

/** An error with a Cloudflare Images code and an HTTP status of its own (e.g. 404). */
export class SourceError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Path prefix of composed sources. */
export const COMPOSED_PREFIX = "composed/";

/**
 * Composed images: a background and overlays (R2 keys), each overlay resized by its own
 * transform before it is drawn, so one binding call nests several inputs.
 */
export const RECIPES = {
  "sunset-poster.png": {
    background: "photo-4mp-eveningglow.jpg",
    overlays: [
      { key: "graphic-3mp-emerald-alpha.png", transform: { width: 480 }, draw: { top: 48, left: 48, opacity: 0.85 } },
      { key: "overlay-logo-337x330.png", transform: { width: 240 }, draw: { bottom: 48, right: 48 } },
    ],
    output: { format: "image/png" },
  },
};

const TYPES_BY_EXTENSION = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  gif: "image/gif",
  webp: "image/webp",
  avif: "image/avif",
  svg: "image/svg+xml",
};

/** The content type an R2 object was stored with, else the one its name suggests. */
function typeOf(key, object) {
  const stored = object?.httpMetadata?.contentType;
  if (stored) return stored;
  const extension = key.split(".").pop().toLowerCase();
  return TYPES_BY_EXTENSION[extension] ?? "application/octet-stream";
}

function bucketOf(env) {
  if (!env.IMAGES_BUCKET) throw new SourceError(500, "this Worker has no IMAGES_BUCKET R2 binding");
  return env.IMAGES_BUCKET;
}

/**
 * What identifies the source's current bytes, without reading them: the R2 etag, or for a
 * composed image its recipe plus the etags of all its parts. Part of the cache key, so a changed
 * source is never answered from the cache.
 */
export async function sourceVersion(env, path) {
  const bucket = bucketOf(env);
  if (path.startsWith(COMPOSED_PREFIX)) {
    const recipe = recipeOf(path);
    const keys = [recipe.background, ...recipe.overlays.map((o) => o.key)];
    const heads = await Promise.all(keys.map((key) => bucket.head(key)));
    heads.forEach((head, i) => {
      if (!head) throw new SourceError(404, `${keys[i]} (part of ${path}) is not in the bucket`);
    });
    return `${path}:${heads.map((h) => h.etag).join("+")}`;
  }
  const head = await bucket.head(path);
  if (!head) throw new SourceError(404, `${path} is not in the bucket`);
  return head.etag;
}

/** The source's bytes as `{ stream, contentType }`. */
export async function openSource(env, images, path) {
  if (path.startsWith(COMPOSED_PREFIX)) return compose(env, images, path);
  const object = await bucketOf(env).get(path);
  if (!object) throw new SourceError(404, `${path} is not in the bucket`);
  return { stream: object.body, contentType: typeOf(path, object) };
}

function recipeOf(path) {
  const name = path.slice(COMPOSED_PREFIX.length);
  const recipe = Object.hasOwn(RECIPES, name) ? RECIPES[name] : undefined;
  if (!recipe) throw new SourceError(404, `no composed image ${name}; known: ${Object.keys(RECIPES).join(", ")}`);
  return recipe;
}

/** A composed image: background from R2 with each overlay (from R2, transformed) drawn on it. */
export async function compose(env, images, path) {
  const recipe = recipeOf(path);
  const bucket = bucketOf(env);
  const objects = await Promise.all([recipe.background, ...recipe.overlays.map((o) => o.key)].map((key) => bucket.get(key)));
  const missing = objects.findIndex((object) => !object);
  if (missing >= 0) {
    for (const object of objects) object?.body.cancel();
    const key = missing === 0 ? recipe.background : recipe.overlays[missing - 1].key;
    throw new SourceError(404, `${key} (part of ${path}) is not in the bucket`);
  }
  let canvas = images.input(objects[0].body);
  recipe.overlays.forEach((overlay, i) => {
    canvas = canvas.draw(images.input(objects[i + 1].body).transform(overlay.transform), overlay.draw);
  });
  const result = await canvas.output(recipe.output);
  return { stream: result.image(), contentType: result.contentType() };
}

/** The bucket's images for the playground: `[{ key, size }]`, by key. */
export async function listImages(env) {
  const bucket = bucketOf(env);
  const images = [];
  let cursor;
  do {
    const page = await bucket.list({ cursor, limit: 1000 });
    for (const object of page.objects) {
      if (TYPES_BY_EXTENSION[object.key.split(".").pop().toLowerCase()]) images.push({ key: object.key, size: object.size });
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  images.sort((a, b) => (a.key < b.key ? -1 : 1));
  return images;
}
