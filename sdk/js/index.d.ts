// Types of the imgbind SDK. They mirror Cloudflare's Images-binding types
// (`ImagesBinding` in @cloudflare/workers-types), so `createImages(…)` can stand in for `env.IMAGES`.

/** Image bytes the SDK accepts: Cloudflare's `ReadableStream`, plus buffers, blobs and bodies. */
export type ImageInput =
  | ReadableStream<Uint8Array>
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | { readonly body: ReadableStream<Uint8Array> | null; arrayBuffer(): Promise<ArrayBuffer> };

/** Where requests go: a service binding (or any object with `fetch`), or a base URL. */
export type ImagesBackend =
  | { fetch(input: string, init?: RequestInit): Promise<Response> }
  | string
  | URL;

export type ImageInfoResponse =
  | { format: 'image/svg+xml' }
  | { format: string; fileSize: number; width: number; height: number };

export type TextOptions = {
  /**
   * A TrueType/OpenType font. With imgbind: a `data:…;base64,` URL, a file name in the backend's
   * `--font-dir`, or `DejaVuSans.ttf` (bundled). `http(s)` URLs are refused (9401), WOFF/WOFF2 too
   * (9520); see docs/TEXT.md.
   */
  font: { url: string };
  /** Size in points, 1–1000 (default 12 = 16 px per em). */
  size?: number;
  /** `#RRGGBB`, `#RRGGBBAA`, `rgb()`, `rgba()` or a named colour (default black). */
  color?: string;
};

export type ImageTransform = {
  width?: number;
  height?: number;
  background?: string;
  blur?: number;
  border?:
    | { color?: string; width?: number }
    | { top?: number; bottom?: number; left?: number; right?: number };
  brightness?: number;
  contrast?: number;
  fit?: 'scale-down' | 'contain' | 'pad' | 'squeeze' | 'cover' | 'crop';
  flip?: 'h' | 'v' | 'hv';
  gamma?: number;
  segment?: 'foreground';
  gravity?:
    | 'face'
    | 'left'
    | 'right'
    | 'top'
    | 'bottom'
    | 'center'
    | 'auto'
    | 'entropy'
    | { x?: number; y?: number; mode: 'remainder' | 'box-center' };
  rotate?: 0 | 90 | 180 | 270;
  saturation?: number;
  sharpen?: number;
  trim?:
    | 'border'
    | {
        top?: number;
        bottom?: number;
        left?: number;
        right?: number;
        width?: number;
        height?: number;
        border?: boolean | { color?: string; tolerance?: number; keep?: number };
      };
};

export type ImageCompositeMode = 'over' | 'in' | 'atop' | 'out' | 'xor' | 'lighter';

export type ImageDrawOptions = {
  opacity?: number;
  repeat?: boolean | string;
  composite?: ImageCompositeMode;
  top?: number;
  left?: number;
  bottom?: number;
  right?: number;
};

export type ImageInputOptions = { encoding?: 'base64' };

export type ImageOutputOptions = {
  format: 'image/jpeg' | 'image/png' | 'image/gif' | 'image/webp' | 'image/avif' | 'rgb' | 'rgba';
  quality?: number;
  background?: string;
  anim?: boolean;
};

export type ImageTransformationOutputOptions = { encoding?: 'base64' };

export type ImageTransformationResponseOptions = { headers?: HeadersInit };

export interface ImageTransformationResult {
  /** `new Response(image(), {headers})` with `content-type` forced to `contentType()`. */
  response(options?: ImageTransformationResponseOptions): Response;
  /** @throws {@link ImagesError} 9523 if the backend sent no content-type. */
  contentType(): string;
  /** The output bytes. The stream errors (never ends cleanly) if the body is cut short. */
  image(options?: ImageTransformationOutputOptions): ReadableStream<Uint8Array>;
}

export interface ImageTransformer {
  /** Adds a transform; returns this transformer. */
  transform(transform: ImageTransform): ImageTransformer;
  /**
   * Draws an image or transformer onto this one; returns this transformer.
   * @throws {@link ImagesError} 9525 if the transformer was already output or drawn.
   */
  draw(image: ImageInput | ImageTransformer, options?: ImageDrawOptions): ImageTransformer;
  /** Sends the request. Rejects with {@link ImagesError} 9525 if already consumed. */
  output(options: ImageOutputOptions): Promise<ImageTransformationResult>;
}

/** What the SDK throws: an `Error` with Cloudflare's numeric code (9412, 9523, 9525, …). */
export interface ImagesError extends Error {
  readonly code: number;
  readonly message: string;
  readonly stack?: string;
}

export interface ImageMetadata {
  id: string;
  filename?: string;
  uploaded?: string;
  requireSignedURLs: boolean;
  meta?: Record<string, unknown>;
  variants: string[];
  draft?: boolean;
  creator?: string;
}

export interface ImageUploadOptions {
  id?: string;
  filename?: string;
  requireSignedURLs?: boolean;
  metadata?: Record<string, unknown>;
  creator?: string;
  encoding?: 'base64';
}

export interface ImageUpdateOptions {
  requireSignedURLs?: boolean;
  metadata?: Record<string, unknown>;
  creator?: string;
}

export type ImageMetadataFilterOperators = {
  eq?: string | number | boolean;
  in?: string[] | number[];
  gt?: number;
  gte?: number;
  lt?: number;
  lte?: number;
};

export type ImageMetadataFilterValue = string | number | boolean | ImageMetadataFilterOperators;

export interface ImageListFilter {
  metadata?: Record<string, ImageMetadataFilterValue>;
}

export interface ImageListOptions {
  limit?: number;
  cursor?: string;
  sortOrder?: 'asc' | 'desc';
  creator?: string;
  filter?: ImageListFilter;
}

export interface ImageSignedUrlOptions {
  variant: string;
  expiresIn?: number;
  keyName?: string;
}

export interface ImageDirectUploadOptions {
  id?: string;
  requireSignedURLs?: boolean;
  metadata?: Record<string, unknown>;
  creator?: string;
  expiresIn?: number;
}

export interface ImageDirectUploadResult {
  id: string;
  uploadURL: string;
}

export interface ImageList {
  images: ImageMetadata[];
  cursor?: string;
  listComplete: boolean;
}

export interface ImageHandle {
  /** The image's metadata, or `null` if there is no such image. */
  details(): Promise<ImageMetadata | null>;
  /** The stored bytes, streamed (an error, never a short end, if cut off), or `null` if there is no such image. */
  bytes(): Promise<ReadableStream<Uint8Array> | null>;
  /** A delivery URL with `exp` (with `expiresIn`) and `sig` (HMAC-SHA256 with the backend's key `keyName`). */
  signedUrl(options: ImageSignedUrlOptions): Promise<string>;
  /** @throws {@link ImagesError} 9431 ("image not found: …") if there is no such image. */
  update(options: ImageUpdateOptions): Promise<ImageMetadata>;
  /** `true`, or `false` if there was no such image. */
  delete(): Promise<boolean>;
}

/**
 * Stored images, over the imgbind backend's HTTP API (docs/HOSTED.md): Cloudflare's
 * `HostedImagesBinding`, with its results, `null`s and `false`. Failures throw
 * {@link ImagesError} with the backend's code: 9401 bad options, 9402/9413 too big, 9412 not an
 * image, 9430 missing or wrong token, 9431 not found, 9433 id taken; 9523 backend unreachable.
 */
export interface HostedImagesBinding {
  /** A handle for one image; no request is made until one of its methods is called. */
  image(imageId: string): ImageHandle;
  /** The body is streamed; with `encoding: 'base64'` it is base64 text, decoded by the backend. */
  upload(
    image: ReadableStream<Uint8Array> | ArrayBuffer | ArrayBufferView | Blob,
    options?: ImageUploadOptions,
  ): Promise<ImageMetadata>;
  list(options?: ImageListOptions): Promise<ImageList>;
  createDirectUpload(options?: ImageDirectUploadOptions): Promise<ImageDirectUploadResult>;
}

export interface ImagesOptions {
  /**
   * The backend's API token (`--api-token` / `IMGBIND_API_TOKEN`), sent as
   * `Authorization: Bearer …` by `hosted` calls; needed over TCP, not on the backend's Unix socket.
   */
  token?: string;
}

export interface ImagesBinding {
  /**
   * Image metadata (type, width and height).
   * @throws {@link ImagesError} with code 9412 if the input is not an image.
   */
  info(stream: ImageInput, options?: ImageInputOptions): Promise<ImageInfoResponse>;
  /** Begins a chain of transformations on image bytes. */
  input(stream: ImageInput, options?: ImageInputOptions): ImageTransformer;
  /** Begins a chain of transformations on rasterised text. */
  text(content: string, options: TextOptions): ImageTransformer;
  readonly hosted: HostedImagesBinding;
}

/**
 * The Images binding for a backend: a `Fetcher` (e.g. a service binding; requests go to
 * `https://js.images.cloudflare.com/transform` like Cloudflare's client, and `…/hosted/…` for
 * stored images) or a base URL string (requests go to `<base>/transform`, `<base>/hosted/…` with
 * the global `fetch`).
 * @throws {@link ImagesError} 9401 if `backend` is neither, or `options.token` is not a non-empty string.
 */
export function createImages(backend: ImagesBackend, options?: ImagesOptions): ImagesBinding;
