// One test suite for every way a Worker reaches stored images: the routes of
// tests/fixtures/hosted-images-worker/src/routes.js (each calls one `hosted` method and answers
// `{ok}` or `{error: {name, message, code}}`), served by whatever `hosted` the suite gives them —
// Cloudflare's own client through our entrypoint, or our SDK over a service binding or a URL.
// Every id and creator is prefixed with `tag`, so suites may share a backend.

import assert from "node:assert/strict";
import { test } from "node:test";
import { solidPng } from "./images.js";

const TIMEOUT = { timeout: 60_000 };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * Registers the tests. `context()` resolves (after the suite's `before`) to `{origin, params?}`:
 * the Worker's origin and query parameters to add to every route. The backend must have a
 * `default` signing key.
 */
export function hostedScenario(tag, context) {
  const alice = `${tag}-alice`;
  const png1 = solidPng(8, 4, [255, 0, 0, 255]);
  const png2 = solidPng(6, 6, [0, 255, 0, 255]);
  const png3 = solidPng(4, 2, [0, 0, 255, 255]);
  const state = {};

  async function route(path, { params = {}, body, method = body === undefined ? "GET" : "POST" } = {}) {
    const { origin, params: fixed = {} } = await context();
    const url = new URL(path, origin);
    for (const [name, value] of Object.entries({ ...fixed, ...params })) {
      url.searchParams.set(name, typeof value === "string" ? value : JSON.stringify(value));
    }
    const response = await fetch(url, { method, body });
    if (response.headers.get("x-bytes") === "1") return { bytes: Buffer.from(await response.arrayBuffer()) };
    const text = await response.text();
    assert.equal(response.status, 200, text);
    return JSON.parse(text);
  }
  const ok = async (...args) => {
    const answer = await route(...args);
    assert.ok(!("error" in answer), `expected success: ${JSON.stringify(answer)}`);
    return answer.ok;
  };
  const fails = async (code, ...args) => {
    const answer = await route(...args);
    assert.ok(answer.error, `expected error ${code}: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.code, code, JSON.stringify(answer.error));
    assert.equal(answer.error.name, "Error");
    return answer.error;
  };
  const upload = (as, options, image) => ok("/upload", { params: { as, options }, body: image });
  const list = (options) => ok("/list", { params: { options } });

  test(`${tag}: upload from a stream, with every option`, TIMEOUT, async () => {
    const options = { id: `${tag}/photo one`, filename: "one.png", metadata: { n: 1, kind: "cat", deep: { a: "x" } }, creator: alice };
    const meta = await upload("stream", options, png1);
    assert.equal(meta.id, options.id);
    assert.equal(meta.filename, "one.png");
    assert.equal(meta.requireSignedURLs, false);
    assert.deepEqual(meta.meta, options.metadata);
    assert.equal(meta.creator, alice);
    assert.ok(!Number.isNaN(Date.parse(meta.uploaded)), meta.uploaded);
    assert.ok(Array.isArray(meta.variants) && meta.variants.length >= 1, JSON.stringify(meta));
    const publicUrl = meta.variants.find((v) => v.endsWith("/public"));
    assert.match(publicUrl, new RegExp(`/hosted/delivery/[^/]+/${tag}/photo%20one/public$`));
    // The variant URL is reachable from this machine, and the public variant is the stored image.
    const delivered = await fetch(publicUrl, { headers: { accept: "image/png" } });
    assert.equal(delivered.status, 200, publicUrl);
    assert.deepEqual(Buffer.from(await delivered.arrayBuffer()), png1);
    state.first = meta;
  });

  test(`${tag}: upload an ArrayBuffer: a generated UUID`, TIMEOUT, async () => {
    const meta = await upload("buffer", { creator: `${tag}-bob`, metadata: { n: 2 } }, png2);
    assert.match(meta.id, UUID);
    assert.equal(meta.creator, `${tag}-bob`);
    assert.deepEqual(meta.meta, { n: 2 });
    state.generated = meta;
  });

  test(`${tag}: upload base64 text with encoding: "base64"; the bytes are the decoded image`, TIMEOUT, async () => {
    const id = `${tag}-b64`;
    const meta = await upload("stream", { id, encoding: "base64", creator: alice, metadata: { n: 3, kind: "dog" } }, png3.toString("base64"));
    assert.equal(meta.id, id);
    assert.deepEqual((await route("/bytes", { params: { id } })).bytes, png3);
  });

  test(`${tag}: upload errors: a taken id 9433, not an image 9412`, TIMEOUT, async () => {
    await fails(9433, "/upload", { params: { as: "buffer", options: { id: `${tag}/photo one` } }, body: png2 });
    await fails(9412, "/upload", { params: { as: "stream", options: { creator: alice } }, body: "this is not an image" });
  });

  test(`${tag}: details and bytes; a missing id is null`, TIMEOUT, async () => {
    assert.deepEqual(await ok("/details", { params: { id: `${tag}/photo one` } }), state.first);
    assert.deepEqual((await route("/bytes", { params: { id: `${tag}/photo one` } })).bytes, png1);
    assert.equal(await ok("/details", { params: { id: `${tag}-missing` } }), null);
    assert.equal(await ok("/bytes", { params: { id: `${tag}-missing` } }), null);
  });

  test(`${tag}: list: limit and cursor, sortOrder, creator, filter.metadata; a bad filter is 9401`, TIMEOUT, async () => {
    const ids = (page) => page.images.map((image) => image.id);
    const first = await list({ creator: alice, limit: 1 });
    assert.deepEqual(ids(first), [`${tag}/photo one`]);
    assert.equal(first.listComplete, false);
    assert.equal(typeof first.cursor, "string");
    const second = await list({ creator: alice, limit: 1, cursor: first.cursor });
    assert.deepEqual(ids(second), [`${tag}-b64`]);
    assert.equal(second.listComplete, true);
    assert.equal(second.cursor, undefined);
    assert.deepEqual(ids(await list({ creator: alice, sortOrder: "desc" })), [`${tag}-b64`, `${tag}/photo one`]);
    assert.deepEqual(ids(await list({ creator: alice, filter: { metadata: { kind: "dog" } } })), [`${tag}-b64`]);
    assert.deepEqual(ids(await list({ creator: alice, filter: { metadata: { n: { gt: 1, lte: 3 } } } })), [`${tag}-b64`]);
    assert.deepEqual(ids(await list({ creator: alice, filter: { metadata: { kind: { in: ["cat", "dog"] }, "deep.a": "x" } } })), [`${tag}/photo one`]);
    assert.deepEqual(ids(await list({ creator: `${tag}-bob` })), [state.generated.id]);
    const six = Object.fromEntries(["a", "b", "c", "d", "e", "f"].map((k) => [k, 1]));
    await fails(9401, "/list", { params: { options: { filter: { metadata: six } } } });
    await fails(9401, "/list", { params: { options: { filter: { metadata: { "bad-name": 1 } } } } });
  });

  test(`${tag}: update replaces metadata and creator; a missing id throws "not found"`, TIMEOUT, async () => {
    const id = `${tag}-b64`;
    const updated = await ok("/update", { params: { id }, body: JSON.stringify({ metadata: { n: 30 }, creator: `${tag}-carol` }) });
    assert.deepEqual(updated.meta, { n: 30 });
    assert.equal(updated.creator, `${tag}-carol`);
    assert.deepEqual(await ok("/details", { params: { id } }), updated);
    const error = await fails(9431, "/update", { params: { id: `${tag}-missing` }, body: JSON.stringify({ creator: "x" }) });
    assert.match(error.message, /not found/);
  });

  test(`${tag}: signedUrl: a private image is served only with a valid signature`, TIMEOUT, async () => {
    const meta = await upload("buffer", { requireSignedURLs: true, creator: `${tag}-private` }, png2);
    assert.equal(meta.requireSignedURLs, true);
    const unsigned = meta.variants.find((v) => v.endsWith("/public"));
    assert.equal((await fetch(unsigned)).status, 401);
    const signed = await ok("/signed-url", { params: { id: meta.id }, body: JSON.stringify({ variant: "public", expiresIn: 600 }) });
    const url = new URL(signed);
    assert.match(url.searchParams.get("exp"), /^\d+$/);
    assert.match(url.searchParams.get("sig"), /^[0-9a-f]{64}$/);
    const delivered = await fetch(signed, { headers: { accept: "image/png" } });
    assert.equal(delivered.status, 200, signed);
    assert.deepEqual(Buffer.from(await delivered.arrayBuffer()), png2);
    const forever = new URL(await ok("/signed-url", { params: { id: meta.id }, body: JSON.stringify({ variant: "public" }) }));
    assert.equal(forever.searchParams.has("exp"), false);
    assert.equal((await fetch(forever)).status, 200);
    url.searchParams.set("sig", "0".repeat(64));
    assert.equal((await fetch(url)).status, 401);
    await fails(9401, "/signed-url", { params: { id: meta.id }, body: JSON.stringify({ variant: "public", keyName: "no-such-key" }) });
  });

  test(`${tag}: delete: true, then false; the image is gone`, TIMEOUT, async () => {
    const id = state.generated.id;
    assert.equal(await ok("/delete", { params: { id } }), true);
    assert.equal(await ok("/delete", { params: { id } }), false);
    assert.equal(await ok("/details", { params: { id } }), null);
    assert.equal(await ok("/bytes", { params: { id } }), null);
  });

  test(`${tag}: createDirectUpload, then the upload link takes a multipart file once`, TIMEOUT, async () => {
    const link = await ok("/direct-upload", { body: JSON.stringify({ metadata: { n: 7 }, creator: `${tag}-dave`, expiresIn: 600 }) });
    assert.deepEqual(Object.keys(link).sort(), ["id", "uploadURL"]);
    assert.match(link.id, UUID);
    assert.equal((await ok("/details", { params: { id: link.id } })).draft, true);
    const form = () => {
      const data = new FormData();
      data.append("file", new Blob([png3], { type: "image/png" }), "from-browser.png");
      return data;
    };
    const done = await fetch(link.uploadURL, { method: "POST", body: form() });
    assert.equal(done.status, 200, await done.clone().text());
    assert.equal((await done.json()).success, true);
    const meta = await ok("/details", { params: { id: link.id } });
    assert.notEqual(meta.draft, true);
    assert.deepEqual(meta.meta, { n: 7 });
    assert.deepEqual((await route("/bytes", { params: { id: link.id } })).bytes, png3);
    const again = await fetch(link.uploadURL, { method: "POST", body: form() });
    assert.equal(again.status, 409);
    await again.arrayBuffer();
    await fails(9433, "/direct-upload", { body: JSON.stringify({ id: `${tag}/photo one` }) });
  });
}
