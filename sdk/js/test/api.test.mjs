// Node tests of the ESM API shape (sdk/js/api.js over the built wasm): `this` chaining, draw of a
// transformer vs a stream, the exact request, errors, hosted. Run: node --test sdk/js/test/api.test.mjs
// (after scripts/build-sdk.sh). Node cannot import a .wasm as a Module, so the wasm is initialised
// here the way sdk/js/index.js does it in workerd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { initSync } from '../../dist/imgbind_sdk.js';

initSync({ module: new WebAssembly.Module(readFileSync(new URL('../../dist/imgbind_sdk_bg.wasm', import.meta.url))) });
const { createImages } = await import('../api.js');

const bytes = (s) => new TextEncoder().encode(s);
const streamOf = (...chunks) =>
  new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(typeof chunk === 'string' ? bytes(chunk) : chunk);
      c.close();
    },
  });

// A Fetcher that records each request and answers with `reply(bodyText)`.
function mockFetcher(reply = () => new Response('ok', { headers: { 'content-type': 'image/png' } })) {
  const calls = [];
  return {
    calls,
    async fetch(url, init) {
      const body = await new Response(init.body).text();
      calls.push({ url, init, body });
      return reply(body);
    },
  };
}

function parseMultipart(body, contentType) {
  const boundary = contentType.match(/boundary=(.*)$/)[1];
  assert.match(boundary, /^-{26}\d{24}$/);
  assert.ok(body.startsWith(`--${boundary}\r\n`));
  assert.ok(body.endsWith(`\r\n--${boundary}--\r\n`));
  const inner = body.slice(`--${boundary}\r\n`.length, -`\r\n--${boundary}--\r\n`.length);
  return inner.split(`\r\n--${boundary}\r\n`).map((part) => {
    const [head, ...rest] = part.split('\r\n\r\n');
    return { head, value: rest.join('\r\n\r\n') };
  });
}

test('transform and draw return this; nested draws serialise depth first', async () => {
  const f = mockFetcher();
  const images = createImages(f);
  const t = images.input(streamOf('png')).transform({ rotate: 90 });
  assert.equal(t.transform({ width: 5, fit: 'cover' }), t);
  const child = images.input(streamOf('png2')).draw(streamOf('png3')).transform({ rotate: 270 });
  assert.equal(t.draw(images.input(streamOf('png1')).transform({ rotate: 180 })), t);
  t.draw(child, { top: 1, opacity: 0.5 }).draw(streamOf('png4'));
  const result = await t.output({ format: 'image/webp', quality: 80, background: '#fff', anim: false });
  assert.equal(f.calls.length, 1);
  const { url, init, body } = f.calls[0];
  assert.equal(url, 'https://js.images.cloudflare.com/transform');
  assert.equal(init.method, 'POST');
  assert.equal(init.headers['expect'], undefined);
  const parts = parseMultipart(body, init.headers['content-type']);
  assert.deepEqual(
    parts.map((p) => p.head),
    [
      'content-disposition: form-data; name="image"; filename="image"',
      ...Array(4).fill('content-disposition: form-data; name="draw_image"; filename="draw_image"'),
      'content-disposition: form-data; name="transforms"',
      'content-disposition: form-data; name="output_format"',
      'content-disposition: form-data; name="output_quality"',
      'content-disposition: form-data; name="background"',
      'content-disposition: form-data; name="anim"',
    ],
  );
  assert.deepEqual(parts.slice(0, 5).map((p) => p.value), ['png', 'png1', 'png2', 'png3', 'png4']);
  assert.equal(
    parts[5].value,
    '[{"imageIndex":0,"rotate":90},{"imageIndex":0,"width":5,"fit":"cover"},{"imageIndex":1,"rotate":180},' +
      '{"drawImageIndex":1,"targetImageIndex":0},{"drawImageIndex":3,"targetImageIndex":2},' +
      '{"imageIndex":2,"rotate":270},{"drawImageIndex":2,"targetImageIndex":0,"top":1,"opacity":0.5},' +
      '{"drawImageIndex":4,"targetImageIndex":0}]',
  );
  assert.deepEqual(parts.slice(6).map((p) => p.value), ['image/webp', '80', '#fff', 'false']);
  assert.equal(result.contentType(), 'image/png');
  assert.equal(await new Response(result.image()).text(), 'ok');
});

test('consumed twice is 9525, from draw (sync) and output (rejection)', async () => {
  const images = createImages(mockFetcher());
  const child = images.input(new Uint8Array([1]));
  images.input(new Uint8Array([2])).draw(child);
  assert.throws(() => images.input(new Uint8Array([3])).draw(child), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.code, 9525);
    assert.equal(
      e.message,
      'IMAGES_TRANSFORM_ERROR 9525: ImageTransformer consumed; you may only call .output() or draw a transformer once',
    );
    return true;
  });
  const t = images.input(new ArrayBuffer(1));
  await t.output({ format: 'image/png' });
  await assert.rejects(t.output({ format: 'image/png' }), (e) => e instanceof Error && e.code === 9525);
});

test('text() sends text_input JSON like Cloudflare', async () => {
  const f = mockFetcher();
  const images = createImages(f);
  await images
    .text('hi', { font: { url: 'https://f/x.ttf' }, color: 'red' })
    .draw(images.text('o', { font: { url: 'u' }, size: 12 }), { left: 1 })
    .output({ format: 'image/png' });
  const parts = parseMultipart(f.calls[0].body, f.calls[0].init.headers['content-type']);
  assert.deepEqual(parts.slice(0, 2), [
    { head: 'content-disposition: form-data; name="text_input"', value: '{"text":"hi","font":{"url":"https://f/x.ttf"},"color":"red"}' },
    { head: 'content-disposition: form-data; name="draw_text"', value: '{"text":"o","font":{"url":"u"},"size":12}' },
  ]);
});

test('text in a draw tree: draw_text and draw_image share the draw index, children first (as workerd)', async () => {
  const f = mockFetcher();
  const images = createImages(f);
  const font = { url: 'DejaVuSans.ttf' };
  // Cloudflare's test_images_mixed_overlays, plus a tree three deep with text on text on an image.
  await images
    .input(streamOf('product'))
    .draw(streamOf('logo'))
    .draw(images.text('SALE!', { font, size: 72, color: '#FF0000' }))
    .draw(
      images
        .input(streamOf('box'))
        .transform({ width: 160 })
        .draw(images.text('GG', { font, color: 'lime' }).draw(images.text('r', { font }), { top: 0 }), { right: 0 }),
      { left: 30 },
    )
    .output({ format: 'image/jpeg' });
  const parts = parseMultipart(f.calls[0].body, f.calls[0].init.headers['content-type']);
  assert.deepEqual(
    parts.map((p) => [p.head.replace('content-disposition: form-data; ', ''), p.value]),
    [
      ['name="image"; filename="image"', 'product'],
      ['name="draw_image"; filename="draw_image"', 'logo'],
      ['name="draw_text"', '{"text":"SALE!","font":{"url":"DejaVuSans.ttf"},"size":72,"color":"#FF0000"}'],
      ['name="draw_image"; filename="draw_image"', 'box'],
      ['name="draw_text"', '{"text":"GG","font":{"url":"DejaVuSans.ttf"},"color":"lime"}'],
      ['name="draw_text"', '{"text":"r","font":{"url":"DejaVuSans.ttf"}}'],
      [
        'name="transforms"',
        JSON.stringify([
          { drawImageIndex: 1, targetImageIndex: 0 },
          { drawImageIndex: 2, targetImageIndex: 0 },
          { imageIndex: 3, width: 160 },
          { drawImageIndex: 5, targetImageIndex: 4, top: 0 },
          { drawImageIndex: 4, targetImageIndex: 3, right: 0 },
          { drawImageIndex: 3, targetImageIndex: 0, left: 30 },
        ]),
      ],
      ['name="output_format"', 'image/jpeg'],
    ],
  );
});

test('errors: coded header, bare 500, info mapping', async () => {
  const coded = createImages(mockFetcher(() => new Response('ERROR 9412: not an image\n', { status: 415, headers: { 'cf-images-binding': 'err=9412' } })));
  await assert.rejects(coded.input(new Uint8Array([1])).output({ format: 'image/png' }), (e) => {
    assert.ok(e instanceof Error);
    assert.deepEqual([e.code, e.message], [9412, 'IMAGES_TRANSFORM_ERROR 9412: not an image']);
    return true;
  });
  await assert.rejects(coded.info(new Uint8Array([1])), { code: 9412, message: 'IMAGES_INFO_ERROR 9412: not an image' });
  const bare = createImages(mockFetcher(() => new Response('boom', { status: 500 })));
  await assert.rejects(bare.input(new Uint8Array([1])).output({ format: 'image/png' }), { code: 9523, message: 'Unexpected error response 500: boom' });
  const info = createImages(mockFetcher(() => Response.json({ format: 'image/png', file_size: 3, width: 2, height: 1 })));
  assert.deepEqual(await info.info(new Blob([bytes('x')])), { fileSize: 3, width: 2, height: 1, format: 'image/png' });
  const svg = createImages(mockFetcher(() => Response.json({ format: 'image/svg+xml' })));
  assert.deepEqual(await svg.info(streamOf('<svg/>')), { format: 'image/svg+xml' });
});

test('response() forces content-type and keeps other headers', async () => {
  const images = createImages(mockFetcher());
  const r = await images.input(new Uint8Array([1])).output({ format: 'image/png' });
  const res = r.response({ headers: { 'content-type': 'text/html', 'cache-control': 'max-age=1' } });
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('cache-control'), 'max-age=1');
  assert.equal(await res.text(), 'ok');
});

// hosted: the backend's HTTP API (docs/HOSTED.md) through the Fetcher, with the token if given.
function hostedFetcher(answer) {
  const calls = [];
  return {
    calls,
    async fetch(url, init) {
      const body = init.body === undefined ? undefined : await new Response(init.body).text();
      calls.push({ url, method: init.method, headers: init.headers, body });
      return answer(url, init);
    },
  };
}
const backendError = (code, status, message) =>
  new Response(`ERROR ${code}: ${message}`, { status, headers: { 'cf-images-binding': `err=${code}` } });

test('hosted: each method is its HTTP request, with the bearer token', async () => {
  const meta = { id: 'a/b', requireSignedURLs: false, variants: ['http://x/hosted/delivery/h/a/b/public'] };
  const f = hostedFetcher((url, init) => {
    if (url.endsWith('/signed-url')) return Response.json({ url: 'http://x/s?sig=1' });
    if (init.method === 'DELETE') return Response.json({ deleted: true });
    if (url.includes('direct-uploads')) return Response.json({ id: 'u', uploadURL: 'http://x/hosted/upload/u' }, { status: 201 });
    if (url.includes('/hosted/images?') && init.method === 'GET') return Response.json({ images: [meta], listComplete: true });
    return Response.json(meta);
  });
  const hosted = createImages(f, { token: 't0k' }).hosted;
  assert.deepEqual(await hosted.upload(streamOf('img', 'bytes'), { id: 'a/b', encoding: 'base64' }), meta);
  assert.deepEqual(await hosted.list({ limit: 2, filter: { metadata: { n: { gt: 1 } } } }), { images: [meta], listComplete: true });
  assert.deepEqual(await hosted.image('a/b').details(), meta);
  assert.deepEqual(await hosted.image('a/b').update({ creator: 'c' }), meta);
  assert.equal(await hosted.image('a/b').signedUrl({ variant: 'public' }), 'http://x/s?sig=1');
  assert.equal(await hosted.image('a/b').delete(), true);
  assert.deepEqual(await hosted.createDirectUpload(), { id: 'u', uploadURL: 'http://x/hosted/upload/u' });
  const origin = 'https://js.images.cloudflare.com/hosted';
  const q = (o) => `?options=${encodeURIComponent(JSON.stringify(o))}`;
  assert.deepEqual(
    f.calls.map((c) => [c.method, c.url, c.body]),
    [
      ['POST', `${origin}/images${q({ id: 'a/b', encoding: 'base64' })}`, 'imgbytes'],
      ['GET', `${origin}/images${q({ limit: 2, filter: { metadata: { n: { gt: 1 } } } })}`, undefined],
      ['GET', `${origin}/images/a%2Fb`, undefined],
      ['PATCH', `${origin}/images/a%2Fb`, '{"creator":"c"}'],
      ['POST', `${origin}/images/a%2Fb/signed-url`, '{"variant":"public"}'],
      ['DELETE', `${origin}/images/a%2Fb`, undefined],
      ['POST', `${origin}/direct-uploads`, '{}'],
    ],
  );
  for (const c of f.calls) assert.equal(c.headers.authorization, 'Bearer t0k');
});

test('hosted: a missing image is null/false; update throws it; other errors keep their code', async () => {
  const f = hostedFetcher(() => backendError(9431, 404, 'image not found: x'));
  const image = createImages(f).hosted.image('x');
  assert.equal(await image.details(), null);
  assert.equal(await image.bytes(), null);
  assert.equal(await image.delete(), false);
  await assert.rejects(image.update({}), { code: 9431, message: 'IMAGES_HOSTED_ERROR 9431: image not found: x' });
  assert.equal(f.calls[0].headers.authorization, undefined, 'no token, no header');
  // 9431 for "hosted images are off" is an error, not an empty store.
  const off = createImages(hostedFetcher(() => backendError(9431, 404, 'hosted images are not enabled: start with --data'))).hosted;
  await assert.rejects(off.image('x').details(), { code: 9431, message: /not enabled/ });
  await assert.rejects(off.image('x').delete(), { code: 9431 });
  const denied = createImages(hostedFetcher(() => backendError(9430, 401, 'missing or wrong API token'))).hosted;
  await assert.rejects(denied.list(), { code: 9430, message: 'IMAGES_HOSTED_ERROR 9430: missing or wrong API token' });
  const odd = createImages(hostedFetcher(() => new Response('bad gateway', { status: 502 }))).hosted;
  await assert.rejects(odd.list(), { code: 9523, message: /Unexpected error response 502: bad gateway/ });
  await assert.rejects(createImages('http://127.0.0.1:1').hosted.list(), { code: 9523 });
  await assert.rejects(createImages(hostedFetcher(() => Response.json({}))).hosted.upload('a string'), { code: 9401 });
  assert.throws(() => createImages('http://127.0.0.1:1', { token: 5 }), { code: 9401 });
});

test('hosted: bytes() that end short of their content-length are a stream error', async () => {
  const body = (length) => () =>
    new Response(streamOf('0123'), { headers: { 'content-length': String(length), 'content-type': 'image/png' } });
  const whole = await createImages(hostedFetcher(body(4))).hosted.image('x').bytes();
  assert.equal(await new Response(whole).text(), '0123');
  const short = await createImages(hostedFetcher(body(9))).hosted.image('x').bytes();
  await assert.rejects(new Response(short).text(), { code: 9523, message: /truncated: expected 9 bytes/ });
  const long = await createImages(hostedFetcher(body(2))).hosted.image('x').bytes();
  await assert.rejects(new Response(long).text(), { code: 9523, message: /longer than its content-length/ });
});

test('createImages rejects a bad backend with 9401', () => {
  assert.throws(() => createImages(42), { code: 9401 });
});

// A real HTTP server answering /transform with a chunked body (no content-length), as the backend
// does for results streamed while they are encoded; `cut` destroys the socket mid-body (no
// terminating chunk).
async function chunkedBackend(cut) {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write('first-');
      setTimeout(() => {
        if (cut) {
          res.socket.destroy();
          return;
        }
        res.write('second-');
        res.end('last');
      }, 20);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

test('Node: a chunked answer reads whole through image() and response(), without a length', async () => {
  const { server, url } = await chunkedBackend(false);
  try {
    const images = createImages(url);
    const r = await images.input(new Uint8Array([1])).output({ format: 'image/png' });
    assert.equal(r.contentType(), 'image/png');
    assert.equal(await new Response(r.image()).text(), 'first-second-last');
    const again = await images.input(new Uint8Array([1])).output({ format: 'image/png' });
    const res = again.response();
    assert.equal(res.headers.get('content-length'), null);
    assert.equal(await res.text(), 'first-second-last');
  } finally {
    server.close();
  }
});

test('Node: a chunked answer cut before its terminating chunk errors the stream (9523), never a clean end', async () => {
  const { server, url } = await chunkedBackend(true);
  try {
    const r = await createImages(url).input(new Uint8Array([1])).output({ format: 'image/png' });
    const reader = r.image().getReader();
    let got = '';
    await assert.rejects(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          got += new TextDecoder().decode(value);
        }
      })(),
      (e) => {
        assert.equal(e.code, 9523);
        assert.match(e.message, /image body failed/);
        return true;
      },
    );
    assert.equal(got, 'first-');
  } finally {
    server.close();
  }
});
