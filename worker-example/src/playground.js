// The playground's API. POST /api/run takes multipart/form-data: `chain` (JSON, below) and any
// uploaded files it names. It runs the chain through the binding and answers the image, with
// `imgbind-elapsed-ms` (time until the backend's answer began) and `imgbind-chain` (the calls made).
//
//   chain = { source, steps: [step…], output: { format, quality?, background?, anim? } }
//   source = { key: "<R2 key>" } | { upload: "<form field>" }
//   step = { transform: {…ImageTransform} } | { draw: { source, transform?: {…}, options?: {…ImageDrawOptions} } }

import { RequestError } from "./errors.js";
import { openSource } from "./sources.js";

/** At most this many steps in one chain (the backend bounds the work of each). */
const MAX_STEPS = 32;

export async function runChain(images, request, env) {
  let form;
  try {
    form = await request.formData();
  } catch {
    throw new RequestError(9401, "expected multipart/form-data with a `chain` field");
  }
  let chain;
  try {
    chain = JSON.parse(form.get("chain") ?? "");
  } catch {
    throw new RequestError(9401, "`chain` must be JSON: {source, steps, output}");
  }
  if (!chain || typeof chain !== "object") throw new RequestError(9401, "`chain` must be an object");
  const steps = chain.steps ?? [];
  if (!Array.isArray(steps) || steps.length > MAX_STEPS) {
    throw new RequestError(9401, `\`steps\` must be an array of at most ${MAX_STEPS} steps`);
  }

  const open = async (source) => {
    if (typeof source?.key === "string") return (await openSource(env, images, source.key)).stream;
    if (typeof source?.upload === "string") {
      const file = form.get(source.upload);
      if (!file || typeof file === "string") throw new RequestError(9401, `no uploaded file \`${source.upload}\``);
      // A Blob goes to the SDK as it is (one of the input types it takes besides streams).
      return file;
    }
    throw new RequestError(9401, "a source is {key: <R2 key>} or {upload: <form field>}");
  };

  const started = Date.now();
  const calls = ["input"];
  let transformer = images.input(await open(chain.source));
  for (const step of steps) {
    if (step?.transform) {
      transformer = transformer.transform(step.transform);
      calls.push("transform");
    } else if (step?.draw) {
      let overlay = images.input(await open(step.draw.source));
      if (step.draw.transform) overlay = overlay.transform(step.draw.transform);
      transformer = transformer.draw(overlay, step.draw.options ?? {});
      calls.push("draw");
    } else {
      throw new RequestError(9401, "each step is {transform: {…}} or {draw: {source, transform?, options?}}");
    }
  }
  const result = await transformer.output(chain.output ?? {});
  calls.push("output");
  return result.response({
    headers: {
      "imgbind-elapsed-ms": String(Date.now() - started),
      "imgbind-chain": calls.join("."),
      "cache-control": "no-store",
    },
  });
}
