// imgbind SDK entry for Workers: loads the wasm synchronously at import time (wrangler and workerd
// give a WebAssembly.Module for a `.wasm` import) and exports the Images-binding API.
import module from '../dist/imgbind_sdk_bg.wasm';
import { initSync } from '../dist/imgbind_sdk.js';

initSync({ module });

export { createImages } from './api.js';
