/** Connection options shared by the Node and browser entry points. */

/** The default endpoint when none is configured. */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:50051";

/** How to reach a gateway. */
export interface ConnectOptions {
  /** `http://host:port`, or `https://host:port` for TLS. Node default: `DBFORGE_ENDPOINT`, else `http://127.0.0.1:50051`. */
  endpoint?: string;
  /** API key, sent as `authorization: Bearer <key>` on every call. Node default: `DBFORGE_API_KEY`. */
  apiKey?: string;
  /** Deadline of each call in milliseconds (streams: of the whole stream). */
  timeoutMs?: number;
}
