#!/usr/bin/env node
/**
 * Builds the dashboard into dist/ (what dbforge-server embeds), with a gzip copy of each text
 * file beside it (`x.js.gz`, served when the browser accepts gzip), and prints the first-load
 * size.
 *
 *   node scripts/build.mjs          rebuild dist/
 *   node scripts/build.mjs --check  build into a temporary directory and fail when dist/ differs
 *                                   (the committed bundle is stale against its sources)
 *
 * The gzip copies are checked by content (they must decompress to their file), not byte for
 * byte: another zlib may compress differently and still be right.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync, gzipSync } from "node:zlib";
import { build } from "vite";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = process.argv.includes("--check");
const out = check ? mkdtempSync(join(tmpdir(), "dbforge-dashboard-")) : join(root, "dist");

function files(dir) {
  return readdirSync(dir, { recursive: true })
    .map((f) => String(f))
    .filter((f) => statSync(join(dir, f)).isFile())
    .sort();
}

await build({ root, configFile: join(root, "vite.config.ts"), logLevel: "warn", build: { outDir: out, emptyOutDir: true } });

const compressible = /\.(js|css|html|svg|json)$/;
for (const f of files(out)) {
  if (compressible.test(f)) writeFileSync(join(out, f + ".gz"), gzipSync(readFileSync(join(out, f)), { level: 9 }));
}

// First load: index.html's own script and its static imports (modulepreload links).
const html = readFileSync(join(out, "index.html"), "utf8");
const firstLoad = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
const gz = (f) => gzipSync(readFileSync(join(out, f)), { level: 9 }).length;
const firstKb = firstLoad.reduce((n, f) => n + gz(f), 0) / 1024;
console.log(`first-load JavaScript: ${firstLoad.join(", ")} = ${firstKb.toFixed(1)} KB gzipped (budget 300 KB)`);
for (const f of files(out).filter((f) => f.endsWith(".js"))) console.log(`  ${f}: ${(gz(f) / 1024).toFixed(1)} KB gz`);

if (check) {
  const dist = join(root, "dist");
  const want = files(out);
  const have = files(dist);
  const problems = [];
  for (const f of new Set([...want, ...have])) {
    if (!want.includes(f)) problems.push(`${f}: in dist/ but not built from the sources`);
    else if (!have.includes(f)) problems.push(`${f}: built from the sources but missing from dist/`);
    else if (f.endsWith(".gz")) {
      const plain = f.slice(0, -3);
      if (!gunzipSync(readFileSync(join(dist, f))).equals(readFileSync(join(dist, plain)))) problems.push(`${f}: does not decompress to ${plain}`);
    } else if (!readFileSync(join(out, f)).equals(readFileSync(join(dist, f)))) problems.push(`${f}: differs from a fresh build`);
  }
  rmSync(out, { recursive: true, force: true });
  if (problems.length) {
    console.error(`dashboard/dist is stale against its sources (${relative(process.cwd(), dist) || "dist"}):\n  ${problems.join("\n  ")}\nrun: (cd dashboard && npm run build) and commit dist/`);
    process.exit(1);
  }
  console.log("dashboard/dist matches its sources");
}
