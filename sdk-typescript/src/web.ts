/**
 * Browser entry point: grpc-web over `fetch` (connect-web). The gateway must allow the page's
 * origin (`dbforge-server --cors-origin https://app.example`).
 *
 * ```ts
 * import { connectWeb } from "@dbforge/sdk/web";
 * const client = connectWeb({ endpoint: "https://db.example:50051", apiKey });
 * for await (const row of await client.query("scratch", "SELECT * FROM t")) render(row);
 * ```
 */
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { DBForgeClient } from "./client.js";
import { DEFAULT_ENDPOINT, type ConnectOptions } from "./options.js";

export * from "./index.js";

/**
 * A client over grpc-web. Exports, dumps, `getSchema` and `explain` work as everywhere.
 * Interactive transactions and imports (`importCsv`, `importSql`, `importNdjson`) are not
 * available: they stream requests, which grpc-web cannot, so they reject with `Unimplemented`
 * before sending anything. Use `batch(..., { transaction: true })` and `insertRows` instead.
 */
export function connectWeb(options: ConnectOptions = {}): DBForgeClient {
  const baseUrl = (options.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const transport = createGrpcWebTransport({ baseUrl });
  return new DBForgeClient(transport, { apiKey: options.apiKey, timeoutMs: options.timeoutMs }, undefined, false);
}
