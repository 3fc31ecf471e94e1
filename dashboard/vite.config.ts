/**
 * Vite build of the dashboard. The SDK is imported from its sources (`@dbforge/sdk` →
 * ../sdk-typescript/src), so the dashboard uses exactly the client the SDK tests test.
 * Output file names carry a content hash; `scripts/build.mjs --check` rebuilds and compares.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const sdk = fileURLToPath(new URL("../sdk-typescript/src/", import.meta.url));

export default defineConfig({
  base: "/",
  // `npx vite` for development: grpc-web calls go to the page's origin, so the dev server passes
  // them on to a running gateway ($DBFORGE_GATEWAY, default http://127.0.0.1:50051).
  server: {
    proxy: { "^/dbforge\\.v1\\.": { target: process.env.DBFORGE_GATEWAY ?? "http://127.0.0.1:50051", changeOrigin: false } },
  },
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  resolve: {
    alias: [{ find: /^@dbforge\/sdk\/(.*)$/, replacement: `${sdk}$1` }],
    // One copy of the protobuf and Connect runtimes for the SDK's sources and the dashboard's own
    // generated health client (same pinned versions in both package.json files).
    dedupe: ["@bufbuild/protobuf", "@connectrpc/connect"],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        entryFileNames: "assets/[name]-[hash].js",
        chunkFileNames: "assets/[name]-[hash].js",
        assetFileNames: "assets/[name]-[hash][extname]",
      },
    },
  },
});
