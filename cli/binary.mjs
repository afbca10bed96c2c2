// Finds the native `imgbind` backend binary for this machine, the way esbuild and sharp do: it
// ships in a per-platform npm package (`@imgbind/linux-x64-gnu`, …) that the `imgbind` package
// lists in optionalDependencies, so npm installs only the one whose os/cpu/libc fit, with no
// install script. Resolved at run time, in this order:
//   1. IMGBIND_BINARY: a binary the user built (`cargo build --release -p imgbind-backend`).
//   2. The platform package for this machine.
//   3. In a clone of the repository: target/release/imgbind.

import { accessSync, constants, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (the folder holding package.json), whether installed or in a clone. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Platform key → the npm package that carries the binary for it. */
export const PLATFORM_PACKAGES = {
  "linux-x64-glibc": "@imgbind/linux-x64-gnu",
  "linux-arm64-glibc": "@imgbind/linux-arm64-gnu",
};

/** A failure the CLI reports as one clear message and a non-zero exit. */
export class CliError extends Error {}

/** `linux-x64-glibc`, `linux-x64-musl`, `darwin-arm64`, …: what picks the platform package. */
export function platformKey() {
  if (process.platform !== "linux") return `${process.platform}-${process.arch}`;
  // Node's own report says which C library it runs on (glibcVersionRuntime is absent on musl).
  const header = process.report?.getReport?.().header ?? {};
  return `linux-${process.arch}-${header.glibcVersionRuntime ? "glibc" : "musl"}`;
}

function assertExecutable(path, where) {
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new CliError(`${where} names ${path}, which is not an executable file`);
  }
}

/** The path of the backend binary to run, or a CliError that says how to get one. */
export function findBinary() {
  const fromEnv = process.env.IMGBIND_BINARY;
  if (fromEnv) {
    assertExecutable(fromEnv, "IMGBIND_BINARY");
    return fromEnv;
  }
  const key = platformKey();
  const packageName = PLATFORM_PACKAGES[key];
  if (packageName) {
    const require = createRequire(join(PACKAGE_ROOT, "package.json"));
    try {
      const path = require.resolve(`${packageName}/bin/imgbind`);
      assertExecutable(path, packageName);
      return path;
    } catch (error) {
      if (error instanceof CliError) throw error;
      // Not installed (e.g. --omit=optional, or a lockfile made on another platform): fall through.
    }
  }
  const cloneBuild = join(PACKAGE_ROOT, "target/release/imgbind");
  if (existsSync(cloneBuild)) return cloneBuild;

  const shipped = Object.keys(PLATFORM_PACKAGES).join(", ");
  throw new CliError(
    packageName
      ? `the imgbind backend for ${key} is missing: ${packageName} is not installed ` +
          `(was the install run with --omit=optional, or is the lockfile from another platform?). ` +
          `Reinstall with \`npm install imgbind\`, or build it from source ` +
          `(\`cargo install --path backend\` in a clone of imgbind) and set IMGBIND_BINARY=/path/to/imgbind.`
      : `imgbind ships no prebuilt backend for ${key} (prebuilt: ${shipped}). ` +
          `Build it from source (\`cargo install --path backend\` in a clone of imgbind) ` +
          `and set IMGBIND_BINARY=/path/to/imgbind.`,
  );
}
