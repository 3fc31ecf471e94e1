/**
 * Moving data in and out of a database (`TransferService`): exports, dumps and imports.
 *
 * Exports (`exportTable`, `exportQuery`, `dumpDatabase`) resolve an `Export`: an async iterable
 * of `Uint8Array` chunks read from the server as they are consumed, so a file of any size streams
 * in constant memory. Concatenated, the chunks are the file; `bytes()` / `text()` (or
 * `collectBytes` / `collectText` on any chunk iterable) gather it when it fits in memory.
 *
 * Imports (`importCsv`, `importSql`, `importNdjson`) are client-streaming: a header naming the
 * target, then the source in chunks. They need a transport that streams requests (gRPC over
 * HTTP/2 in Node); grpc-web has no client streaming, so over grpc-web (and so in browsers) they
 * reject with `Unimplemented` before sending anything.
 */
import type { ColumnType } from "./gen/dbforge/v1/table_pb.js";
import { ExportFormat, RdfFormat, type FileChunk, type ImportCsvResponse } from "./gen/dbforge/v1/transfer_pb.js";
import { Code, Internal, errorFor, toDBForgeError } from "./errors.js";

export { ExportFormat, RdfFormat };

/** An export format: the enum, or its name. */
export type ExportFormatLike = ExportFormat | "csv" | "json" | "ndjson";

/** What an import reads: bytes, a string (the file's text, sent as UTF-8), or chunks of bytes
 * from a (sync or async) iterable — a Node `fs.createReadStream(path)` is one. */
export type ImportSource = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Bytes per import message: well under gRPC's 4 MiB message limit, large enough that the
 * per-message overhead does not matter. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024;

/** Options of `exportTable` and `exportQuery`. */
export interface ExportOptions {
  /** "csv" (default), "json" (one array of objects) or "ndjson" (one object per line). */
  format?: ExportFormatLike;
  /** CSV field delimiter: one ASCII character other than a quote or line break; "," by default. */
  delimiter?: string;
  /** CSV text written for NULL; the empty field by default (the empty string is then `""`). */
  nullText?: string;
  /** Cancels the export. */
  signal?: AbortSignal;
}

/** Options of `importCsv`. */
export interface ImportCsvOptions {
  /**
   * Create the table from the header, inferring column types from the first `sampleRows` rows
   * (true), or with these types for the named columns and inferred ones for the rest (an
   * object). AlreadyExists when the table exists. Default: the table must exist and header
   * names must match its columns.
   */
  create?: boolean | Record<string, ColumnType>;
  /** Rows read to infer column types (100 when 0). */
  sampleRows?: number;
  /** Insert the good rows and report the bad ones (line, reason) instead of failing on the first. */
  skipBadRows?: boolean;
  /** The field delimiter; "," by default. */
  delimiter?: string;
  /** The text read as NULL (the empty field by default); a quoted `""` is always the empty string. */
  nullText?: string;
  /** The file has no header row; columns are taken in the table's order. */
  noHeader?: boolean;
  /** Bytes per message (64 KiB by default). */
  chunkSize?: number;
  /**
   * Cancels the import. While the file is still being sent (checked at each chunk) the server
   * fails it and applies nothing; once all of it has been sent, aborting only stops waiting for
   * the answer, and the server may still apply it.
   */
  signal?: AbortSignal;
}

/** Options of `importSql` and `importNdjson`. */
export interface ImportOptions {
  /** Bytes per message (64 KiB by default). */
  chunkSize?: number;
  /** Cancels the import; see `ImportCsvOptions.signal`. */
  signal?: AbortSignal;
}

/** A row `importCsv(..., { skipBadRows: true })` rejected. */
export interface RejectedRow {
  /** The 1-based line of the file the row starts on. */
  line: number;
  reason: string;
}

/** The answer of `importCsv`. */
export interface ImportCsvResult {
  /** Data rows read (the header excluded). */
  rowsRead: number;
  rowsInserted: number;
  rowsRejected: number;
  /** The first 1 000 rejected rows. */
  rejected: RejectedRow[];
  /** Whether the call created the table. */
  tableCreated: boolean;
}

/** The answer of `importSql`: statements run, and rows changed summed over them. */
export interface ImportSqlResult {
  statements: number;
  rowsAffected: number;
}

/** The proto enum of a format (CSV when unset); RangeError for an unknown name, before any call. */
export function formatPb(format: ExportFormatLike | undefined): ExportFormat {
  if (format === undefined) return ExportFormat.CSV;
  if (typeof format === "number") return format;
  switch (format) {
    case "csv":
      return ExportFormat.CSV;
    case "json":
      return ExportFormat.JSON;
    case "ndjson":
      return ExportFormat.NDJSON;
  }
  throw new RangeError(`unknown export format ${JSON.stringify(format)}: use "csv", "json" or "ndjson"`);
}

/** The SDK's result from the response (64-bit counts as numbers: they count rows). */
export function importCsvResultFromPb(r: ImportCsvResponse): ImportCsvResult {
  return {
    rowsRead: Number(r.rowsRead),
    rowsInserted: Number(r.rowsInserted),
    rowsRejected: Number(r.rowsRejected),
    rejected: r.rejected.map((x) => ({ line: Number(x.line), reason: x.reason })),
    tableCreated: r.tableCreated,
  };
}

// ---- exports ------------------------------------------------------------------------------------

/** A message of an export stream (ExportTableResponse, ExportQueryResponse, DumpDatabaseResponse). */
export type ChunkMessage = { chunk?: FileChunk | undefined };

/**
 * A streamed export or dump: `for await (const chunk of exp)` yields the file as `Uint8Array`
 * chunks (at most about 64 KiB each). `rows` counts the rows (or Redis keys) written so far and
 * is the total once the stream has ended; `done` tells that the server sent the last chunk. The
 * first chunk is read before the call resolves, so a bad request rejects there. `cancel()` (or
 * leaving a `for await` loop early) stops the export on the server.
 *
 * In Node, `await pipeline(Readable.from(exp), createWriteStream(path))` writes it to a file.
 */
export class Export implements AsyncIterable<Uint8Array> {
  /** Rows (or keys) written so far; the total once the stream has ended. */
  rows = 0;
  /** Whether the server sent the last chunk. */
  done = false;
  private pending: Uint8Array | undefined;
  private finished = false;

  private constructor(
    private readonly messages: AsyncIterator<ChunkMessage>,
    private readonly abort: AbortController,
  ) {}

  /** Starts the call and reads its first chunk. */
  static async start(call: () => AsyncIterable<ChunkMessage>, abort: AbortController): Promise<Export> {
    let exp: Export;
    try {
      exp = new Export(call()[Symbol.asyncIterator](), abort);
      exp.pending = await exp.read();
    } catch (e) {
      abort.abort();
      throw toDBForgeError(e);
    }
    return exp;
  }

  /** The next non-empty chunk; undefined at the end of the stream. */
  private async read(): Promise<Uint8Array | undefined> {
    while (!this.finished) {
      let r: IteratorResult<ChunkMessage>;
      try {
        r = await this.messages.next();
      } catch (e) {
        this.finished = true;
        throw toDBForgeError(e);
      }
      if (r.done) {
        this.finished = true;
        // Without the `done` chunk the file would be silently truncated.
        if (!this.done) throw new Internal("the export ended before its last chunk");
        return undefined;
      }
      const c = r.value.chunk;
      if (this.done) throw new Internal("the export sent a chunk after its last one");
      if (!c) throw new Internal("the export sent a message without a chunk");
      this.rows = Number(c.rows);
      this.done = c.done;
      if (c.data.length > 0) return c.data;
    }
    return undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    try {
      const first = this.pending;
      this.pending = undefined;
      if (first) yield first;
      for (let d = await this.read(); d; d = await this.read()) yield d;
    } finally {
      if (!this.finished) this.cancel();
    }
  }

  /** The rest of the file in one `Uint8Array` (it must fit in memory). */
  bytes(): Promise<Uint8Array> {
    return collectBytes(this);
  }

  /** The rest of the file decoded as UTF-8 (CSV, JSON, NDJSON and SQL dumps are UTF-8). */
  text(): Promise<string> {
    return collectText(this);
  }

  /** Stops reading; the server cancels the export. */
  cancel(): void {
    this.finished = true;
    this.abort.abort();
  }
}

/** Concatenates the chunks of an export (or any async iterable of bytes). */
export async function collectBytes(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const c of chunks) {
    parts.push(c);
    size += c.length;
  }
  const out = new Uint8Array(size);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** The chunks of an export (or any async iterable of bytes) decoded as one UTF-8 string. */
export async function collectText(chunks: AsyncIterable<Uint8Array>): Promise<string> {
  // Streaming decode: a character split across two chunks is joined, not replaced.
  const decoder = new TextDecoder("utf-8");
  let out = "";
  for await (const c of chunks) out += decoder.decode(c, { stream: true });
  return out + decoder.decode();
}

// ---- imports ------------------------------------------------------------------------------------

const ENCODER = new TextEncoder();

function* splitBytes(b: Uint8Array, size: number): Generator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(i + size, b.length));
}

/** A string as UTF-8 chunks of at most `size` bytes, encoded a piece at a time (never the whole
 * string at once). A piece never ends inside a surrogate pair, which would encode as U+FFFD. */
function* encodeChunks(s: string, size: number): Generator<Uint8Array> {
  const chars = Math.max(1, Math.floor(size / 3)); // a UTF-16 unit encodes to at most 3 bytes
  for (let pos = 0; pos < s.length; ) {
    let end = Math.min(pos + chars, s.length);
    const last = s.charCodeAt(end - 1);
    if (end < s.length && last >= 0xd800 && last <= 0xdbff) end += end - pos > 1 ? -1 : 1;
    yield* splitBytes(ENCODER.encode(s.slice(pos, end)), size);
    pos = end;
  }
}

function bytesOf(piece: unknown): Uint8Array {
  if (piece instanceof Uint8Array) return piece;
  throw new TypeError(`an import source must yield Uint8Array chunks, not ${typeof piece === "string" ? "strings" : typeof piece}`);
}

/** The source as chunks of at most `size` bytes. */
export async function* sourceChunks(source: ImportSource, size: number): AsyncGenerator<Uint8Array> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError("chunkSize must be a positive integer");
  if (typeof source === "string") {
    yield* encodeChunks(source, size);
  } else if (source instanceof Uint8Array) {
    yield* splitBytes(source, size);
  } else if (source && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === "function") {
    for await (const piece of source as AsyncIterable<unknown>) yield* splitBytes(bytesOf(piece), size);
  } else if (source && typeof (source as Iterable<Uint8Array>)[Symbol.iterator] === "function") {
    for (const piece of source as Iterable<unknown>) yield* splitBytes(bytesOf(piece), size);
  } else {
    throw new TypeError("an import source is a Uint8Array, a string, or an (async) iterable of Uint8Array chunks");
  }
}

/**
 * The requests of a client-streaming import: the header, then one message per chunk.
 *
 * When reading the source fails, or the caller aborts while the file is still being sent, the
 * import must fail on the server too. Cancelling the call is not enough from Node: its HTTP/2
 * stream sends END_STREAM before RST_STREAM when closed, so the server would see a complete file
 * and apply what it had read. Instead the header is sent a second time, which the protocol
 * always rejects (only the first message may carry it), so the server fails the import and
 * applies nothing. The error (the source's, or Cancelled) is kept for the caller.
 */
export class RequestSource<T> {
  failed = false;
  error: unknown;
  /** Whether every request has been handed to the transport (the file is complete). */
  sent = false;

  async *iterate(
    header: T,
    chunks: AsyncIterable<Uint8Array>,
    wrap: (chunk: Uint8Array) => T,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<T> {
    yield header;
    const it = chunks[Symbol.asyncIterator]();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(errorFor(Code.Canceled, "the import was cancelled before the file was sent; nothing was applied"));
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
    aborted.catch(() => undefined); // observed through the race below
    try {
      for (;;) {
        // Only reading the source (or the caller's abort) counts as its failure; an error the
        // transport throws in at `yield` ends this generator as it is.
        let r: IteratorResult<Uint8Array>;
        try {
          r = await Promise.race([it.next(), aborted]);
        } catch (e) {
          this.failed = true;
          this.error = e;
          void it.return?.()?.catch(() => undefined); // release the source (an open file, say)
          break;
        }
        if (r.done) break;
        yield wrap(r.value);
      }
    } finally {
      if (onAbort) signal?.removeEventListener("abort", onAbort);
    }
    if (this.failed) yield header;
    this.sent = !this.failed;
  }
}


