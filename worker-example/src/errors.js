// Errors as this Worker answers them: `{"error": {"code", "message"}}` with an HTTP status that
// matches the code (the backend's mapping, wire/src/error.rs).

/** HTTP status for each error code. */
export const STATUS_BY_CODE = {
  9401: 400, 9402: 413, 9412: 415, 9413: 413, 9520: 415, 9522: 503, 9523: 500, 9525: 400, 9529: 504,
  9430: 401, 9431: 404, 9433: 409, 9434: 410,
};

/** An error with a Cloudflare Images code, thrown by this Worker itself (same shape as the SDK's). */
export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function errorResponse(status, code, message, headers = {}) {
  return Response.json({ error: { code, message } }, { status, headers });
}
