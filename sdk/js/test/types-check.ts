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
