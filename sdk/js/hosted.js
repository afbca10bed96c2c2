// Hosted images (`hosted.upload/list/image(id).*/createDirectUpload`, Cloudflare's
// `HostedImagesBinding`) over the imgbind backend's HTTP API (docs/HOSTED.md). One client for both
// users: our SDK (`createImages(backend).hosted`, sdk/js/api.js) and the Worker entrypoint that
// serves Cloudflare's own client (sdk/js/hosted-entrypoint.mjs). Plain JS with only `fetch`, so it
// runs in workerd and in Node alike.
//
// Results are the backend's JSON as it is (the shapes of workerd's images.d.ts). A missing image is
// `null` from details()/bytes() and `false` from delete(); everything else that fails throws an
// `Error` with a numeric own `code`: the backend's `err=N` with its message
// (`IMAGES_HOSTED_ERROR N: …`), 9523 for a backend that cannot be reached or answers nonsense,
// 9401 for arguments that cannot be sent.

const ERROR_HEADER = 'cf-images-binding';
const CODE_INVALID = 9401;
const CODE_NOT_FOUND = 9431;
const CODE_INTERNAL = 9523;

/** An `Error` with Cloudflare's numeric `code` (an own property, so it survives RPC). */
export function imagesError(code, detail, cause) {
  const error = new Error(`IMAGES_HOSTED_ERROR ${code}: ${detail}`, cause === undefined ? undefined : { cause });
  error.code = code;
  return error;
}

/** The thrown error of a backend error response (its body is `ERROR N: message`). */
async function responseError(response) {
  let text = '';
  try {
    text = await response.text();
  } catch (e) {
    text = `(the error body could not be read: ${e?.message ?? e})`;
  }
  const header = /^err=(\d+)$/.exec(response.headers.get(ERROR_HEADER)?.trim() ?? '');
  if (!header) {
    return imagesError(CODE_INTERNAL, `Unexpected error response ${response.status}: ${text.slice(0, 1000)}`);
  }
  const code = Number(header[1]);
  const message = /^ERROR \d+: ([\s\S]*)$/.exec(text)?.[1] ?? text;
  return imagesError(code, message.trim());
}

/**
 * Whether an error says that the image does not exist: 9431 "image not found" (9431 also means
 * "hosted images are not enabled", which must throw, not look like an empty store).
 */
function isMissingImage(error) {
  return error.code === CODE_NOT_FOUND && /image not found/i.test(error.message);
}

/** Whether a response is a success (true) or says the image does not exist (false); throws otherwise. */
async function found(response) {
  if (response.ok) return true;
  const error = await responseError(response);
  if (isMissingImage(error)) return false;
  throw error;
}

/**
 * A body that errors, rather than ending, when it carries fewer or more bytes than its
 * `content-length` said: a cut-off download is never a short success.
 */
function lengthChecked(response) {
  const body = response.body;
  const declared = response.headers.get('content-length');
  if (body === null) return new Response(new Uint8Array(0)).body;
  if (declared === null || response.headers.has('content-encoding') || !/^\d+$/.test(declared)) return body;
  const expected = Number(declared);
  let received = 0;
  const truncated = () =>
    imagesError(CODE_INTERNAL, `image body truncated: expected ${expected} bytes (content-length), got ${received}`);
  return body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        received += chunk.byteLength;
        if (received > expected) {
          controller.error(imagesError(CODE_INTERNAL, `image body longer than its content-length (${expected} bytes)`));
          return;
        }
        controller.enqueue(chunk);
      },
      flush(controller) {
        if (received !== expected) controller.error(truncated());
      },
    }),
  );
}

/** `options` as the backend's `?options=` query (absent means `{}`). */
function optionsQuery(options) {
  return options === undefined || options === null ? '' : `?options=${encodeURIComponent(JSON.stringify(options))}`;
}

/** An upload body the fetch can send as it is: a stream (sent as it comes) or bytes. */
function uploadBody(image) {
  if (image instanceof ReadableStream) return image;
  if (image instanceof ArrayBuffer || ArrayBuffer.isView(image)) return image;
  if (typeof Blob !== 'undefined' && image instanceof Blob) return image;
  const kind = image === null ? 'null' : typeof image === 'object' ? (image.constructor?.name ?? 'object') : typeof image;
  throw imagesError(CODE_INVALID, `upload(image): image must be a ReadableStream or an ArrayBuffer, not ${kind}`);
}

/**
 * The hosted-images client: `fetch(url, init)` sends a request (the global fetch, or a service
 * binding's), `base` is the backend's origin (no trailing `/`), `token` the bearer token for TCP
 * (omit it on a Unix socket).
 */
export function createHostedClient({ fetch, base, token }) {
  async function send(method, path, { query = '', json, body } = {}) {
    const headers = {};
    if (token !== undefined && token !== null && token !== '') headers.authorization = `Bearer ${token}`;
    const init = { method, headers };
    if (json !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body;
      // Node's fetch needs this for a stream body; workerd ignores it.
      if (body instanceof ReadableStream) init.duplex = 'half';
    }
    try {
      return await fetch(`${base}/hosted/${path}${query}`, init);
    } catch (e) {
      if (typeof e?.code === 'number') throw e;
      throw imagesError(CODE_INTERNAL, `request to the images backend failed: ${e?.message ?? e}`, e);
    }
  }

  async function json(response) {
    if (!response.ok) throw await responseError(response);
    try {
      return await response.json();
    } catch (e) {
      throw imagesError(CODE_INTERNAL, `the images backend's answer is not JSON: ${e?.message ?? e}`, e);
    }
  }

  function image(imageId) {
    const segment = `images/${encodeURIComponent(String(imageId))}`;
    return {
      async details() {
        const response = await send('GET', segment);
        return (await found(response)) ? json(response) : null;
      },
      async bytes() {
        const response = await send('GET', `${segment}/bytes`);
        return (await found(response)) ? lengthChecked(response) : null;
      },
      async signedUrl(options) {
        const answer = await json(await send('POST', `${segment}/signed-url`, { json: options ?? {} }));
        if (typeof answer?.url !== 'string') throw imagesError(CODE_INTERNAL, 'the images backend answered no signed URL');
        return answer.url;
      },
      async update(options) {
        return json(await send('PATCH', segment, { json: options ?? {} }));
      },
      async delete() {
        const response = await send('DELETE', segment);
        if (!(await found(response))) return false;
        const answer = await json(response);
        return answer?.deleted === true;
      },
    };
  }

  return {
    image,
    async upload(image, options) {
      const body = uploadBody(image);
      return json(await send('POST', 'images', { query: optionsQuery(options), body }));
    },
    async list(options) {
      return json(await send('GET', 'images', { query: optionsQuery(options) }));
    },
    async createDirectUpload(options) {
      return json(await send('POST', 'direct-uploads', { json: options ?? {} }));
    },
  };
}
