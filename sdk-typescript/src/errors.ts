/**
 * Errors: one class per gRPC status code, all under `DBForgeError`, carrying the server's
 * message, its machine-readable reason and the ErrorInfo metadata.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export { Code };

/** Base of every error the SDK throws for a failed call. */
export class DBForgeError extends Error {
  /** The gRPC status code (`Code.NotFound` = 5, …). */
  readonly code: Code;
  /**
   * The server's message, with the gateway's RPC names replaced by this SDK's methods and options
   * (see `sdkWords`): "use batch(..., { transaction: true }) or client.transaction(database)"
   * where the server said "use ExecuteBatch with `transaction` or a Session".
   */
  readonly rawMessage: string;
  /** The server's message as it sent it. */
  readonly grpcMessage: string;
  /** The machine-readable reason of the server's ErrorInfo (`UNIQUE_VIOLATION`, `SQL_ERROR`, …). */
  readonly reason: string | undefined;
  /** ErrorInfo metadata: `native_code`, `statement_index`, `field`, `backend`. */
  readonly metadata: Record<string, string>;

  constructor(code: Code, message: string, reason?: string, metadata?: Record<string, string>, options?: DBForgeErrorOptions) {
    super(`${codeName(code)}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.rawMessage = message;
    this.grpcMessage = options?.grpcMessage ?? message;
    this.reason = reason;
    this.metadata = metadata ?? {};
  }

  /** The code's name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return codeName(this.code);
  }
}

/** Options of an error: its cause, and the server's message as sent when `message` rewords it. */
export interface DBForgeErrorOptions {
  /** What the error came from (the transport's error). */
  cause?: unknown;
  /** The server's message as sent; defaults to `message`. */
  grpcMessage?: string;
}

/**
 * The class of one status code: constructed from the message alone, with the code as a static.
 * Spelled out so the published declarations name it instead of inlining `typeof Error`, whose
 * statics (`captureStackTrace`, `prepareStackTrace`) would make them need @types/node.
 */
export interface CodeErrorClass {
  new (message: string, reason?: string, metadata?: Record<string, string>, options?: DBForgeErrorOptions): DBForgeError;
  /** The gRPC status code every instance has. */
  readonly code: Code;
}

function codeClass(code: Code): CodeErrorClass {
  return class extends DBForgeError {
    static readonly code = code;
    constructor(message: string, reason?: string, metadata?: Record<string, string>, options?: DBForgeErrorOptions) {
      super(code, message, reason, metadata, options);
    }
  };
}

/** CANCELLED */
export class Cancelled extends codeClass(Code.Canceled) {}
/** UNKNOWN */
export class Unknown extends codeClass(Code.Unknown) {}
/** A bad name, value or request field, or an SQL error (INVALID_ARGUMENT). */
export class InvalidArgument extends codeClass(Code.InvalidArgument) {}
/** The call or statement ran out of time (DEADLINE_EXCEEDED). */
export class DeadlineExceeded extends codeClass(Code.DeadlineExceeded) {}
/** No such database, table or key (NOT_FOUND). */
export class NotFound extends codeClass(Code.NotFound) {}
/** The name is taken (ALREADY_EXISTS). */
export class AlreadyExists extends codeClass(Code.AlreadyExists) {}
/** The key lacks the grant, or the statement would leave its database (PERMISSION_DENIED). */
export class PermissionDenied extends codeClass(Code.PermissionDenied) {}
/** A size, row or rate limit was hit (RESOURCE_EXHAUSTED). */
export class ResourceExhausted extends codeClass(Code.ResourceExhausted) {}
/** A constraint was violated, or the backend is not configured (FAILED_PRECONDITION). */
export class FailedPrecondition extends codeClass(Code.FailedPrecondition) {}
/** A serialization failure or deadlock: retrying the transaction is safe (ABORTED). */
export class Aborted extends codeClass(Code.Aborted) {}
/** OUT_OF_RANGE */
export class OutOfRange extends codeClass(Code.OutOfRange) {}
/** The backend (or this transport) lacks the operation (UNIMPLEMENTED). */
export class Unimplemented extends codeClass(Code.Unimplemented) {}
/** A server fault, or a response this SDK does not understand (INTERNAL). */
export class Internal extends codeClass(Code.Internal) {}
/** The gateway or its backend cannot be reached (UNAVAILABLE). */
export class Unavailable extends codeClass(Code.Unavailable) {}
/** DATA_LOSS */
export class DataLoss extends codeClass(Code.DataLoss) {}
/** No API key, or a wrong, expired or revoked one (UNAUTHENTICATED). */
export class Unauthenticated extends codeClass(Code.Unauthenticated) {}

const CLASSES: Record<number, CodeErrorClass> = {
  [Code.Canceled]: Cancelled,
  [Code.Unknown]: Unknown,
  [Code.InvalidArgument]: InvalidArgument,
  [Code.DeadlineExceeded]: DeadlineExceeded,
  [Code.NotFound]: NotFound,
  [Code.AlreadyExists]: AlreadyExists,
  [Code.PermissionDenied]: PermissionDenied,
  [Code.ResourceExhausted]: ResourceExhausted,
  [Code.FailedPrecondition]: FailedPrecondition,
  [Code.Aborted]: Aborted,
  [Code.OutOfRange]: OutOfRange,
  [Code.Unimplemented]: Unimplemented,
  [Code.Internal]: Internal,
  [Code.Unavailable]: Unavailable,
  [Code.DataLoss]: DataLoss,
  [Code.Unauthenticated]: Unauthenticated,
};

const NAMES: Record<number, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** The gRPC name of a code, e.g. "NOT_FOUND". */
export function codeName(code: Code): string {
  return NAMES[code] ?? `CODE_${code}`;
}

/**
 * The gateway's messages name RPCs ("use ExecuteBatch with `transaction`…"); a user of this SDK
 * knows its methods and options. Each pair is the gateway's words and this SDK's, replaced in
 * order (a longer phrase before any phrase it contains). The gateway's messages are in server/src
 * (api/status.rs `alternative`, the backends' limit and transaction-control refusals,
 * core/error.rs `Unsupported`); cli/src/error.rs `CLI_WORDS` does the same for the CLI.
 */
export const SDK_WORDS: readonly (readonly [string, string])[] = [
  ["use ExecuteBatch with `transaction` or a Session", "use batch(..., { transaction: true }) or client.transaction(database)"],
  ["use ExecuteBatch with `transaction` for MULTI/EXEC", "use batch(..., { transaction: true }) for MULTI/EXEC"],
  [
    "group statements atomically with ExecuteBatch and `transaction` instead",
    "group statements atomically with batch(..., { transaction: true }) instead",
  ],
  ["use ExecuteBatch for several", "use batch() for several"],
  [
    "KEYS is not available in ExecuteBatch (the gateway emulates it with SCAN): use Execute or Query, or SCAN",
    "KEYS is not available in batch() (the gateway emulates it with SCAN): use execute() or query(), or SCAN",
  ],
  ["use Query to stream large results", "use query() to stream large results"],
  ["use Query (it streams) or SCAN", "use query() (it streams) or SCAN"],
  ["use Query, or a ranged or SCAN command, for large results", "use query(), or a ranged or SCAN command, for large results"],
  ["(use `transaction` for all-or-nothing)", "(pass { transaction: true } to batch() for all-or-nothing)"],
  ["use QueryService.Execute with the backend's own commands instead", "use execute() with the backend's own commands instead"],
  ["InsertRows takes at most", "insertRows() takes at most"],
  ["Session is not supported", "client.transaction() is not supported"],
  ["CreateTable is not", "createTable() is not"],
  ["InsertRows is not", "insertRows() is not"],
  ["SelectRows is not", "selectRows() is not"],
  ["UpdateRows is not", "updateRows() is not"],
  ["DeleteRows is not", "deleteRows() is not"],
  ["ExportTable is not", "exportTable() is not"],
  ["ExportQuery is not", "exportQuery() is not"],
  ["DumpDatabase of keys of module types is not", "dumpDatabase() of keys of module types is not"],
  ["DumpDatabase is not", "dumpDatabase() is not"],
  ["ImportCsv is not", "importCsv() is not"],
  ["ImportSql is not", "importSql() is not"],
  ["ImportNdjson is not", "importNdjson() is not"],
  ["GetSchema is not", "getSchema() is not"],
  ["Explain with analyze is not", "explain(..., { analyze: true }) is not"],
  ["Explain is not", "explain() is not"],
];

/** `message` in this SDK's words: the gateway's RPC names replaced by the methods and options that call them. */
export function sdkWords(message: string): string {
  return SDK_WORDS.reduce((m, [rpc, sdk]) => m.split(rpc).join(sdk), message);
}

/**
 * The error for a code and the server's message, said in this SDK's words (`grpcMessage` keeps
 * the server's own text).
 */
export function errorFor(code: number, message: string, reason?: string, metadata?: Record<string, string>, cause?: unknown): DBForgeError {
  const cls = CLASSES[code];
  const options: DBForgeErrorOptions = { cause, grpcMessage: message };
  const text = sdkWords(message);
  return cls ? new cls(text, reason, metadata, options) : new DBForgeError(code as Code, text, reason, metadata, options);
}

const ERROR_INFO = "google.rpc.ErrorInfo";

/** google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string, string> metadata = 3; } */
function decodeErrorInfo(bytes: Uint8Array): { reason: string; metadata: Record<string, string> } {
  const r = new BinaryReader(bytes);
  let reason = "";
  const metadata: Record<string, string> = {};
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) {
      reason = r.string();
    } else if (field === 3 && wire === WireType.LengthDelimited) {
      const entry = new BinaryReader(r.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
        else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
        else entry.skip(w);
      }
      metadata[key] = value;
    } else {
      r.skip(wire);
    }
  }
  return { reason, metadata };
}

// Node error codes of a connection that could not be made or kept: refused, reset, DNS, and
// every TLS handshake failure (untrusted certificate, missing client certificate, ...).
const CONNECTION_FAILURE = /^(ECONN|EPIPE|ENOTFOUND|EAI_|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_HTTP2_)/;

function connectionFailure(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_FAILURE.test(code)) return code;
  }
  return undefined;
}

// The server's gRPC codec refuses a message over --max-message-size before DB-Forge sees it, so
// the status carries no ErrorInfo: tonic's "Error, decoded message length too large: found N
// bytes, the limit is: M bytes" ("encoded" for a response).
const MESSAGE_SIZE = /\b(decoded|encoded) message length too large: found (\d+) bytes, the limit is: (\d+) bytes/;

/**
 * The SDK's LIMIT_EXCEEDED error for the server's refusal of a too-large message, naming the
 * limit and what to do, as the server's own limit errors do; undefined for any other error.
 */
function messageSizeError(code: Code, message: string, cause: unknown): DBForgeError | undefined {
  if (code !== Code.ResourceExhausted && code !== Code.OutOfRange) return undefined;
  const m = MESSAGE_SIZE.exec(message);
  if (!m) return undefined;
  const [, direction, size, limit] = m as unknown as [string, string, string, string];
  const whose = `the server's limit of ${limit} bytes (--max-message-size, DBFORGE_MAX_MESSAGE_SIZE)`;
  const text =
    direction === "decoded" // the server decodes requests and encodes responses
      ? `the request is ${size} bytes, more than ${whose}. Split large values across rows or statements, ` +
        "load bulk data with importCsv or importSql (they stream it in chunks), or raise the server's --max-message-size"
      : `the response is ${size} bytes, more than ${whose}. Read large results with query() or ` +
        "selectRows() (they stream rows in batches), or raise the server's --max-message-size";
  const metadata = { limit: "max_message_size", message_bytes: size, limit_bytes: limit };
  return new ResourceExhausted(text, "LIMIT_EXCEEDED", metadata, { cause });
}

/**
 * Converts anything a call threw into the SDK's error (DBForgeError passes through). As in
 * gRPC's own clients, a connection that cannot be made (refused, TLS handshake failed) is
 * UNAVAILABLE.
 */
export function toDBForgeError(err: unknown): DBForgeError {
  if (err instanceof DBForgeError) return err;
  const ce = ConnectError.from(err);
  const failure = ce.code === Code.Unavailable ? undefined : connectionFailure(ce.cause ?? err);
  if (failure) return new Unavailable(`cannot connect (${failure}): ${ce.rawMessage}`, undefined, undefined, { cause: err });
  let reason: string | undefined;
  let metadata: Record<string, string> = {};
  for (const d of ce.details) {
    if ("type" in d && d.type === ERROR_INFO) {
      try {
        ({ reason, metadata } = decodeErrorInfo(d.value));
      } catch {
        // A malformed detail must not hide the error itself.
      }
    }
  }
  // gRPC's own size refusals carry no ErrorInfo; the gateway's say which limit it was. Either
  // way the SDK's message names its own methods.
  const sizeLimit = reason === undefined || (reason === "LIMIT_EXCEEDED" && metadata.limit === "max_message_size");
  const sizeError = sizeLimit ? messageSizeError(ce.code, ce.rawMessage, err) : undefined;
  return sizeError ?? errorFor(ce.code, ce.rawMessage, reason, metadata, err);
}
