// The Images-binding shape over the wasm exports. All logic (serialisation, streaming, errors) is in
// Rust (sdk/src); these classes only make transform()/draw() return `this`, tell a transformer from
// a stream in draw(), and expose `hosted`. The wasm must be initialised before createImages() runs.
import { createImages as createWasmImages } from '../dist/imgbind_sdk.js';

/**
 * The Images binding for a backend: a Fetcher (an object with `fetch`, e.g. a service binding) or
 * a base URL such as "http://127.0.0.1:9999".
 */
export function createImages(backend) {
  return new ImagesBinding(createWasmImages(backend));
}

class ImagesBinding {
  #inner;
  #hosted;

  constructor(inner) {
    this.#inner = inner;
    this.#hosted = new HostedImagesBinding(inner);
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

// Stored images are RPC methods of the backend service, as in Cloudflare's binding.
class HostedImagesBinding {
  #inner;

  constructor(inner) {
    this.#inner = inner;
  }

  image(imageId) {
    return this.#inner.hostedCall('image', [imageId]);
  }

  async upload(image, options) {
    return this.#inner.hostedCall('upload', [image, options]);
  }

  async list(options) {
    return this.#inner.hostedCall('list', [options]);
  }

  async createDirectUpload(options) {
    return this.#inner.hostedCall('createDirectUpload', [options]);
  }
}
