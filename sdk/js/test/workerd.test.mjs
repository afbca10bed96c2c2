// The ESM entry (sdk/js/index.js, wasm imported as a module) inside workerd via Miniflare, with an
// in-Worker mock Fetcher: loading, Content-Length kept by response(), truncation and upstream
// errors surfacing as stream errors — with and without a content-length (streamed results). Run: node --test sdk/js/test/workerd.test.mjs (after
// scripts/build-sdk.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Miniflare } from 'miniflare';

const root = new URL('../../../', import.meta.url);
const read = (path) => readFileSync(new URL(path, root));

// The Worker under test. `mode` picks how the mock backend answers.
const WORKER = `
import { createImages } from './sdk/js/index.js';

function backend(mode) {
  return {
    async fetch(url, init) {
      await new Response(init.body).arrayBuffer();
      const body = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('012345'));
          if (mode.endsWith('error')) c.error(new Error('connection reset'));
          else c.close();
        },
      });
      // chunked*: a result streamed as it is encoded has no content-length.
      if (mode.startsWith('chunked')) return new Response(body, { headers: { 'content-type': 'image/png' } });
      const length = mode.endsWith('short') ? '10' : mode.endsWith('long') ? '4' : '6';
      return new Response(body, { headers: { 'content-type': 'image/png', 'content-length': length } });
    },
  };
}

export default {
  async fetch(request) {
    const mode = new URL(request.url).searchParams.get('mode');
    const images = createImages(backend(mode));
    const result = await images.input(new Uint8Array([1, 2, 3])).transform({ width: 1 }).output({ format: 'image/png' });
    if (mode === 'response' || mode === 'chunked-response') return result.response({ headers: { 'cache-control': 'no-store' } });
    if (mode.startsWith('response-')) {
      // response() read inside the Worker: a body that does not match its length must fail.
      try {
        const text = await result.response().text();
        return Response.json({ ok: text });
      } catch (e) {
        return Response.json({ failed: true });
      }
    }
    try {
      const text = await new Response(result.image()).text();
      return Response.json({ ok: text });
    } catch (e) {
      return Response.json({ error: String(e && e.message), code: e && e.code });
    }
  },
};
`;

let mf;
before(async () => {
  mf = new Miniflare({
    workers: [
      {
        config: {
          name: 'sdk-workerd-test',
          compatibilityDate: '2026-11-01',
          manifest: {
            mainModule: 'worker.js',
            modules: {
              'worker.js': { type: 'esm', contents: WORKER },
              'sdk/js/index.js': { type: 'esm', contents: read('sdk/js/index.js').toString() },
              'sdk/js/api.js': { type: 'esm', contents: read('sdk/js/api.js').toString() },
              'sdk/js/hosted.js': { type: 'esm', contents: read('sdk/js/hosted.js').toString() },
              'sdk/dist/imgbind_sdk.js': { type: 'esm', contents: read('sdk/dist/imgbind_sdk.js').toString() },
              'sdk/dist/imgbind_sdk_bg.wasm': { type: 'wasm', contents: new Uint8Array(read('sdk/dist/imgbind_sdk_bg.wasm')) },
            },
          },
        },
      },
    ],
  });
  await mf.ready;
});
after(() => mf?.dispose());

test('response() keeps the content-length and forces content-type', async () => {
  const res = await mf.dispatchFetch('http://x/?mode=response');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('content-length'), '6');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(await res.text(), '012345');
});

test('a complete body reads cleanly', async () => {
  assert.deepEqual(await (await mf.dispatchFetch('http://x/?mode=ok')).json(), { ok: '012345' });
});

test('a body shorter than its content-length is a stream error', async () => {
  const r = await (await mf.dispatchFetch('http://x/?mode=short')).json();
  assert.deepEqual(r, {
    error: 'IMAGES_TRANSFORM_ERROR 9523: image body truncated: expected 10 bytes (content-length), got 6',
    code: 9523,
  });
});

// With a JS Fetcher (whose bodies are JS streams) response() is the length-checked stream through a
// FixedLengthStream; a real binding's body is handed on as it is (tests/sdk-input-errors.test.js).
for (const [mode, what] of [['response-short', 'ends short'], ['response-long', 'runs long'], ['response-error', 'fails']]) {
  test(`response(): a body that ${what} is an error, never a short success`, async () => {
    assert.deepEqual(await (await mf.dispatchFetch(`http://x/?mode=${mode}`)).json(), { failed: true });
  });
}

test('an upstream error is a stream error', async () => {
  const r = await (await mf.dispatchFetch('http://x/?mode=error')).json();
  assert.deepEqual(r, { error: 'IMAGES_TRANSFORM_ERROR 9523: image body failed: connection reset', code: 9523 });
});

test('without content-length (chunked answer) response() streams the body as it is', async () => {
  const res = await mf.dispatchFetch('http://x/?mode=chunked-response');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('content-length'), null);
  assert.equal(await res.text(), '012345');
});

test('without content-length a complete body reads cleanly', async () => {
  assert.deepEqual(await (await mf.dispatchFetch('http://x/?mode=chunked')).json(), { ok: '012345' });
});

test('without content-length an upstream error (a chunked body cut short) is a stream error', async () => {
  const r = await (await mf.dispatchFetch('http://x/?mode=chunked-error')).json();
  assert.deepEqual(r, { error: 'IMAGES_TRANSFORM_ERROR 9523: image body failed: connection reset', code: 9523 });
});
