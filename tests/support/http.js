// A plain HTTP/1.1 POST that keeps the response exactly as it came off the socket (no content
// decoding), so tests can compare the received byte count with `content-length`.

import { request } from "node:http";

/**
 * POSTs `body` (Buffer, or FormData which is encoded as multipart) to `url`.
 * Resolves with `{ status, headers, bytes }`; rejects after `timeoutMs` or if the body is cut.
 */
export async function post(url, body, { headers = {}, timeoutMs = 60_000 } = {}) {
  if (body instanceof FormData) {
    const encoded = new Request("http://encode.invalid/", { method: "POST", body });
    headers = { ...headers, "content-type": encoded.headers.get("content-type") };
    body = Buffer.from(await encoded.arrayBuffer());
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: { ...headers, "content-length": body?.length ?? 0 }, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("aborted", () => reject(new Error(`${url}: response aborted`)));
        res.on("error", reject);
        res.on("end", () => {
          if (!res.complete) {
            reject(new Error(`${url}: response ended before its end`));
            return;
          }
          resolve({ status: res.statusCode, headers: res.headers, bytes: Buffer.concat(chunks) });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}
