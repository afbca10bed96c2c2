import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

// The environment of a user's shell for the tests that install and run the packages as a user
// would (tests/npm-package.test.js, tests/vitest.test.js): their HOME, a PATH without a Rust
// toolchain, wrangler's telemetry off, and whatever the machine needs to reach the npm registry.
// A machine behind a TLS-inspecting proxy trusts its CA through NODE_EXTRA_CA_CERTS (or a proxy
// variable); a user's npm has it from their shell, so the test's npm must too. Without it, each
// registry fetch fails SELF_SIGNED_CERT_IN_CHAIN three times with backoff, and an install that
// needs a package document not yet in npm's cache runs past its timeout (two CI runs did).

/** Variables passed through from the test's own environment when set. */
const NETWORK = [
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/** A user's PATH: Node 22 (wrangler needs it) and the system's tools, but no cargo or rustc. */
export const USER_PATH = [dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"]
  .filter((dir) => !existsSync(join(dir, "cargo")) && !existsSync(join(dir, "rustc")))
  .join(":");

/** `{HOME, PATH: USER_PATH, …network settings, WRANGLER_SEND_METRICS, CLOUDFLARE_CF_FETCH_ENABLED, CI}`. */
export function userEnv() {
  const env = { HOME: process.env.HOME, PATH: USER_PATH };
  for (const name of NETWORK) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return { ...env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", CI: "true" };
}
