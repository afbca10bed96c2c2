#!/usr/bin/env node
// The `imgbind` command of the npm package (`npx imgbind …`):
//   imgbind serve [flags]   the backend (the native binary; same flags and IMGBIND_* variables)
//   imgbind dev [...]       the user's Worker under wrangler's dev server, env.IMAGES served by imgbind
// Plain Node (>= 20) so that `serve` works wherever the package installs; `dev` runs wrangler,
// which needs the Node version wrangler asks for.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CliError, PACKAGE_ROOT, findBinary } from "./binary.mjs";

const HELP = `imgbind: a self-hostable Images binding for Cloudflare Workers

usage:
  imgbind serve [flags]     run the backend (\`imgbind serve --help\` lists its flags and IMGBIND_* variables)
  imgbind dev [--port N] [--ip ADDR] [--data DIR] [CONFIG]
                            run your Worker (CONFIG: wrangler.toml, wrangler.jsonc or wrangler.json in this
                            folder by default) under wrangler's dev server, its [images] binding served by an
                            imgbind backend started and stopped with it (\`imgbind dev --help\` for more)
  imgbind --version         print the version
  imgbind --help            print this

The backend binary comes from the platform package npm installed (@imgbind/linux-x64-gnu), or from
IMGBIND_BINARY=/path/to/imgbind.`;

function version() {
  return JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")).version;
}

/** Runs the binary with `args`, passing signals on; resolves with the exit code to use. */
function runBinary(args) {
  const child = spawn(findBinary(), args, { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  return new Promise((resolve, reject) => {
    child.on("error", (error) => reject(new CliError(`could not start the imgbind backend: ${error.message}`)));
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + (signalNumbers[signal] ?? 1) : 1)));
  });
}
const signalNumbers = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

async function main(argv) {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return runBinary(["serve", ...rest]);
    case "dev": {
      const { dev } = await import("./dev.mjs");
      return dev(rest);
    }
    case "--version":
    case "-V":
    case "version":
      process.stdout.write(`imgbind ${version()}\n`);
      return 0;
    case undefined:
    case "--help":
    case "-h":
    case "help":
      process.stdout.write(`${HELP}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new CliError(`unknown command '${command}'\n\n${HELP}`);
  }
}

try {
  const code = await main(process.argv.slice(2));
  if (typeof code === "number") process.exitCode = code;
} catch (error) {
  if (!(error instanceof CliError)) throw error;
  process.stderr.write(`imgbind: ${error.message}\n`);
  process.exitCode = 2;
}
