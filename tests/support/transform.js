// A `/transform` request to the imgbind backend over its Unix socket, framed exactly as
// Cloudflare's client (workerd's StreamableFormData) frames it, and its answer read back as
// pixels: raw `rgb`/`rgba` answers carry their size in `imgbind-width`/`imgbind-height`.

import { request } from "node:http";

const BOUNDARY = "--------------------------fidelity0123456789ab";

/** One multipart part, as workerd writes it: no per-part content-type. */
function part(name, body, file) {
  const filename = file ? `; filename="${name}"` : "";
  return [
    Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"${filename}\r\n\r\n`),
    Buffer.isBuffer(body) ? body : Buffer.from(String(body)),
    Buffer.from("\r\n"),
  ];
}

/**
 * The multipart body for `input(image).<steps>.output({format, quality, background})`.
 * `draws` are the `draw_image` parts in the client's depth-first order; `transforms` is the op
 * list (`{imageIndex, ...}` / `{drawImageIndex, targetImageIndex, ...}`).
 */
export function transformBody({ image, draws = [], transforms, format, quality, background }) {
  const chunks = [...part("image", image, true)];
  for (const draw of draws) chunks.push(...part("draw_image", draw, true));
  chunks.push(...part("transforms", JSON.stringify(transforms), false));
  chunks.push(...part("output_format", format, false));
  if (quality !== undefined) chunks.push(...part("output_quality", quality, false));
  if (background !== undefined) chunks.push(...part("background", background, false));
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

/** POSTs a `/transform` request to the backend on `socketPath`; resolves `{status, headers, bytes}`. */
export function postTransform(socketPath, options, { timeoutMs = 60_000 } = {}) {
  const body = transformBody(options);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path: "/transform",
        method: "POST",
        timeout: timeoutMs,
        headers: {
          host: "images.local",
          "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
          "content-length": body.length,
        },
      },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("error", reject);
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, bytes: Buffer.concat(chunks) }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Runs a transform whose output format is `rgb` or `rgba` and returns its pixels as
 * `{data, width, height, channels}`. Fails with the backend's coded error text otherwise.
 */
export async function transformPixels(socketPath, options) {
  const format = options.format ?? "rgb";
  const response = await postTransform(socketPath, { ...options, format });
  if (response.status !== 200) {
    throw new Error(`backend answered ${response.status}: ${response.bytes.toString("utf8")}`);
  }
  const width = Number(response.headers["imgbind-width"]);
  const height = Number(response.headers["imgbind-height"]);
  const channels = format === "rgba" ? 4 : 3;
  if (response.bytes.length !== width * height * channels) {
    throw new Error(`raw answer of ${response.bytes.length} bytes is not ${width}x${height}x${channels}`);
  }
  return { data: response.bytes, width, height, channels };
}

/** Runs a transform with an encoded output format; resolves with the encoded bytes. */
export async function transformEncoded(socketPath, options) {
  const response = await postTransform(socketPath, options);
  if (response.status !== 200) {
    throw new Error(`backend answered ${response.status}: ${response.bytes.toString("utf8")}`);
  }
  return response;
}
