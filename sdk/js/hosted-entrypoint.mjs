// The inner `fetcher` of the native Images binding (`env.IMAGES`, workerd's own client
// `cloudflare-internal:images-api`) when imgbind serves it (sdk/js/miniflare-plugin.mjs runs this
// module as a Worker of its own). Cloudflare's client reaches its fetcher two ways:
//   - HTTP `fetch` for info() and input().output() (`/info`, `/transform`): passed to the backend
//     unchanged, bodies streamed both ways;
//   - JS-RPC for the stored half, `hosted.*`: image(id) (synchronous, an RpcTarget handle with
//     details/bytes/signedUrl/update/delete), upload, list, createDirectUpload. These become the
//     backend's HTTP API (sdk/js/hosted.js, docs/HOSTED.md), with the same results, nulls, false and
//     coded errors as Cloudflare's binding.
// Bindings: BACKEND (a service binding to the backend: its Unix socket or TCP address) and, when the
// backend is reached over TCP, API_TOKEN (text: the backend's --api-token).
// The Worker runs at a compatibility date of 2026-04-21 or later (enhanced error serialization), so
// a thrown error's numeric `code` reaches the calling Worker.

import { RpcTarget, WorkerEntrypoint } from 'cloudflare:workers';
import { createHostedClient } from './hosted.js';

/** The origin hosted requests are sent to; the service binding decides where they really go. */
const BACKEND_ORIGIN = 'http://imgbind-backend';

/** `hosted.image(id)`: a handle whose methods the caller's stub calls over RPC. */
class ImageHandle extends RpcTarget {
  #handle;

  constructor(handle) {
    super();
    this.#handle = handle;
  }

  details() {
    return this.#handle.details();
  }

  bytes() {
    return this.#handle.bytes();
  }

  signedUrl(options) {
    return this.#handle.signedUrl(options);
  }

  update(options) {
    return this.#handle.update(options);
  }

  delete() {
    return this.#handle.delete();
  }
}

export default class ImgbindImages extends WorkerEntrypoint {
  #client;

  #hosted() {
    if (!this.#client) {
      const backend = this.env.BACKEND;
      this.#client = createHostedClient({
        fetch: (url, init) => backend.fetch(url, init),
        base: BACKEND_ORIGIN,
        token: this.env.API_TOKEN,
      });
    }
    return this.#client;
  }

  /** info() and output(): the request goes to the backend as it came (streamed). */
  fetch(request) {
    return this.env.BACKEND.fetch(request);
  }

  /** Cheap and never failing, as the client pipelines it with the handle's method. */
  image(imageId) {
    return new ImageHandle(this.#hosted().image(imageId));
  }

  upload(image, options) {
    return this.#hosted().upload(image, options);
  }

  list(options) {
    return this.#hosted().list(options);
  }

  createDirectUpload(options) {
    return this.#hosted().createDirectUpload(options);
  }
}
