// The Images-binding shape over the wasm exports. The transform half's logic (serialisation,
// streaming, errors) is in Rust (sdk/src); these classes only make transform()/draw() return
// `this` and tell a transformer from a stream in draw(). The stored half, `hosted`, is the
// backend's HTTP API through sdk/js/hosted.js (shared with the binding's entrypoint Worker).
// The wasm must be initialised before createImages() runs.
import { createImages as createWasmImages } from '../dist/imgbind_sdk.js';
import { createHostedClient, imagesError } from './hosted.js';

/** The origin Cloudflare's client posts to through a service binding; the binding decides where it goes. */
const BINDING_ORIGIN = 'https://js.images.cloudflare.com';

/**
 * The Images binding for a backend: a Fetcher (an object with `fetch`, e.g. a service binding) or
 * a base URL such as "http://127.0.0.1:9999". `options.token`: the backend's --api-token, which
 * `hosted` calls need over TCP (not on its Unix socket).
 */
export function createImages(backend, options) {
  const inner = createWasmImages(backend);
  return new ImagesBinding(inner, createHostedClient(hostedTarget(backend, options)));
}

/** Where hosted requests go: the Fetcher's fetch, or the global fetch on the base URL. */
function hostedTarget(backend, options) {
  const token = options?.token;
  if (token !== undefined && (typeof token !== 'string' || token === '')) {
    throw imagesError(9401, 'createImages(backend, {token}): token must be a non-empty string');
  }
  if (backend !== null && typeof backend === 'object' && typeof backend.fetch === 'function') {
    return { fetch: (url, init) => backend.fetch(url, init), base: BINDING_ORIGIN, token };
  }
  // The wasm accepted it, so it is a URL string or URL object.
  const base = String(typeof backend === 'string' ? backend : backend.href).trim().replace(/\/+$/, '');
  return { fetch: (url, init) => fetch(url, init), base, token };
}

class ImagesBinding {
  #inner;
  #hosted;

  constructor(inner, hosted) {
    this.#inner = inner;
    this.#hosted = hosted;
  }

  get hosted() {
    return this.#hosted;
  }

  info(stream, options) {
    return this.#inner.info(stream, options);
  }

  input(stream, options) {
    return new ImageTransformer(this.#inner.input(stream, options));
  }

  text(content, options) {
    return new ImageTransformer(this.#inner.text(content, options));
  }
}

class ImageTransformer {
  #inner;

  constructor(inner) {
    this.#inner = inner;
  }

  transform(transform) {
    this.#inner.transform(transform);
    return this;
  }

  draw(image, options) {
    if (image !== null && typeof image === 'object' && #inner in image) {
      this.#inner.drawTransformer(image.#inner, options);
    } else {
      this.#inner.drawSource(image, options);
    }
    return this;
  }

  output(options) {
    return this.#inner.output(options);
  }
}
