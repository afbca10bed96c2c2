// Compile-only check (tsc --noEmit): the SDK's binding is assignable to Cloudflare's ImagesBinding.
import type {
  ImagesBinding as CloudflareImagesBinding,
  ImageTransformer as CloudflareImageTransformer,
  ImageTransformationResult as CloudflareResult,
} from '@cloudflare/workers-types/index.ts';
import { createImages, type ImagesError } from '../index.js';

const images: CloudflareImagesBinding = createImages('http://127.0.0.1:9999');
const fromFetcher: CloudflareImagesBinding = createImages({
  fetch: (input: string, init?: RequestInit) => fetch(input, init),
});

export async function example(stream: ReadableStream<Uint8Array>): Promise<Response> {
  const overlay: CloudflareImageTransformer = images.input(stream).transform({ width: 10 });
  const result: CloudflareResult = await fromFetcher
    .input(stream)
    .transform({ rotate: 90 })
    .draw(overlay, { opacity: 0.5, composite: 'over' })
    .output({ format: 'image/avif', quality: 50 });
  try {
    await images.info(stream);
  } catch (e) {
    const code: number = (e as ImagesError).code;
    void code;
  }
  return result.response({ headers: { 'cache-control': 'max-age=60' } });
}

// Beyond Cloudflare's ReadableStream: buffers, any ArrayBufferView, Blob and bodies are inputs too.
export async function otherInputs(buffer: ArrayBuffer, view: Uint16Array, data: DataView, blob: Blob, response: Response) {
  const sdk = createImages('http://127.0.0.1:9999');
  await sdk.info(buffer);
  await sdk.input(view).draw(sdk.input(data), { top: 0 }).draw(blob).output({ format: 'image/png' });
  await sdk.input(response).output({ format: 'image/webp' });
  // @ts-expect-error a string is not image bytes
  sdk.input('not bytes');
}

// Stored images: the SDK's `hosted` is Cloudflare's HostedImagesBinding, over a URL with a token too.
import type {
  HostedImagesBinding as CloudflareHosted,
  ImageMetadata as CloudflareImageMetadata,
  ImageList as CloudflareImageList,
} from '@cloudflare/workers-types/index.ts';

export async function hosted(stream: ReadableStream<Uint8Array>, buffer: ArrayBuffer) {
  const store: CloudflareHosted = createImages('http://127.0.0.1:9999', { token: 'secret' }).hosted;
  const viaBinding: CloudflareHosted = createImages({ fetch: (input: string, init?: RequestInit) => fetch(input, init) }).hosted;
  const meta: CloudflareImageMetadata = await store.upload(stream, { id: 'a', metadata: { n: 1 }, creator: 'c' });
  await viaBinding.upload(buffer, { encoding: 'base64' });
  const page: CloudflareImageList = await store.list({ limit: 10, sortOrder: 'desc', filter: { metadata: { n: { gte: 1 } } } });
  const details: CloudflareImageMetadata | null = await store.image(meta.id).details();
  const bytes: ReadableStream<Uint8Array> | null = await store.image(meta.id).bytes();
  const deleted: boolean = await store.image(meta.id).delete();
  const url: string = await store.image(meta.id).signedUrl({ variant: 'public', expiresIn: 60 });
  const link = await store.createDirectUpload({ expiresIn: 600 });
  // @ts-expect-error the token is a string
  createImages('http://127.0.0.1:9999', { token: 1 });
  return [page, details, bytes, deleted, url, link.uploadURL];
}
