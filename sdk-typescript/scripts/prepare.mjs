// npm's `prepare` script: builds dist/ whenever the package is installed from its folder or packed.
//
// `npm install ./sdk-typescript` links the folder and runs its `prepare`, but installs none of its
// dependencies there (nor devDependencies such as TypeScript), and `npm pack` in a fresh clone has
// none either. So when TypeScript is missing, the package's own lock file is installed first
// (`npm ci`, scripts off so this script does not run again), then `tsc` builds dist/. A tarball
// from `npm pack` carries dist/, so installing it runs nothing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: pkg, stdio: "inherit", shell: process.platform === "win32" });
  if (r.status !== 0) {
    console.error(`@dbforge/sdk prepare: \`${cmd} ${args.join(" ")}\` failed in ${pkg}`);
    process.exit(r.status ?? 1);
  }
}

const tsc = join(pkg, "node_modules", "typescript", "bin", "tsc");
if (!existsSync(tsc)) {
  run(npm, ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", pkg]);
}
run(process.execPath, [tsc, "-p", "tsconfig.json"]);
