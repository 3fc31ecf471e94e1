/**
 * Node entry point: gRPC over HTTP/2 (connect-node), with TLS and mutual TLS, or grpc-web.
 *
 * ```ts
 * import { connect } from "@dbforge/sdk/node";
 * const client = connect();            // DBFORGE_ENDPOINT, DBFORGE_API_KEY
 * await client.createDatabase("scratch");
 * client.close();
 * ```
 */
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent, type RequestOptions as HttpsRequestOptions } from "node:https";
import { Http2SessionManager, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { DBForgeClient } from "./client.js";
import { DEFAULT_ENDPOINT, type ConnectOptions } from "./options.js";

export * from "./index.js";

/** Options of `connect` in Node. */
export interface NodeConnectOptions extends ConnectOptions {
  /** PEM of the CA that signed the server's certificate (TLS), or `caFile`. Default: the system roots. */
  ca?: string | Uint8Array;
  caFile?: string;
  /** PEM certificate and key presented to the server (mutual TLS), or the files holding them. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  certFile?: string;
  keyFile?: string;
  /** The name to check the server's certificate against, when it differs from the endpoint's host. */
  serverName?: string;
  /** "grpc" (default): gRPC over HTTP/2. "grpc-web": grpc-web over HTTP/1.1, as browsers speak it (no transactions, no imports). */
  protocol?: "grpc" | "grpc-web";
}

function pem(inline: string | Uint8Array | undefined, file: string | undefined): Buffer | undefined {
  if (inline !== undefined) return Buffer.from(inline);
  return file === undefined ? undefined : readFileSync(file);
}

/** Options from `DBFORGE_ENDPOINT` and `DBFORGE_API_KEY`, then `overrides`. */
export function optionsFromEnv(overrides: NodeConnectOptions = {}): NodeConnectOptions {
  const out: NodeConnectOptions = { endpoint: process.env.DBFORGE_ENDPOINT || DEFAULT_ENDPOINT };
  if (process.env.DBFORGE_API_KEY) out.apiKey = process.env.DBFORGE_API_KEY;
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** A client over gRPC (HTTP/2) or grpc-web; unset options come from the environment. */
export function connect(options: NodeConnectOptions = {}): DBForgeClient {
  const opts = optionsFromEnv(options);
  const baseUrl = (opts.endpoint ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  const tls: SecureClientSessionOptions = {};
  const ca = pem(opts.ca, opts.caFile);
  const cert = pem(opts.cert, opts.certFile);
  const key = pem(opts.key, opts.keyFile);
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError("a client certificate and its key go together (mutual TLS)");
  }
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (opts.serverName) tls.servername = opts.serverName;
  const settings = { apiKey: opts.apiKey, timeoutMs: opts.timeoutMs };
  // Requests and responses may be as large as the server allows; the server enforces its limit.
  const limits = { readMaxBytes: 0xffffffff, writeMaxBytes: 0xffffffff };

  if (opts.protocol === "grpc-web") {
    // Keep-alive: the gateway reads a grpc-web request's body before answering, even a refused
    // call's, so a pooled HTTP/1.1 connection stays usable for the next call.
    const agent = baseUrl.startsWith("https:") ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    const nodeOptions: HttpsRequestOptions = { agent };
    if (tls.ca) nodeOptions.ca = tls.ca;
    if (tls.cert) nodeOptions.cert = tls.cert;
    if (tls.key) nodeOptions.key = tls.key;
    if (tls.servername) nodeOptions.servername = tls.servername;
    const transport = createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions, ...limits });
    return new DBForgeClient(transport, settings, undefined, false);
  }
  const sessionManager = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: 15_000 }, tls);
  const transport = createGrpcTransport({ baseUrl, sessionManager, ...limits });
  return new DBForgeClient(transport, settings, () => sessionManager.abort(), true);
}
