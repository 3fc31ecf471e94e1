/** Streamed results: an async iterator of rows that reads from the server as it is consumed. */
import { Internal, toDBForgeError } from "./errors.js";
import type { StreamPart as Part } from "./fastpath.js";
import { rowObjects, type Column, type Row, type Summary } from "./types.js";
import type { SqlValue } from "./values.js";

/**
 * A streamed result (`query`, `selectRows`): `for await (const row of rows)` yields rows as
 * arrays of values, reading batches from the server as they are needed. `objects()` yields
 * them as column name → value objects instead. The columns are known when the call returns;
 * `summary` once the stream has ended. `cancel()` (or leaving a `for await` loop early) stops
 * the query on the server.
 */
export class Rows implements AsyncIterable<Row> {
  /** The result columns. */
  readonly columns: Column[];
  private summaryValue: Summary | undefined;
  private buffer: Row[] = [];
  private pos = 0;
  private done = false;
  /** On a resumable stream: the stream id and the rows received, from the last batch's token. */
  private position: [string, number] | undefined;

  private constructor(
    private readonly parts: AsyncIterator<Part>,
    private readonly abort: AbortController,
    columns: Column[],
  ) {
    this.columns = columns;
  }

  /** Waits for the header. */
  static async start(parts: Promise<AsyncIterable<Part>>, abort: AbortController): Promise<Rows> {
    let it: AsyncIterator<Part>;
    let first: IteratorResult<Part>;
    try {
      it = (await parts)[Symbol.asyncIterator]();
      first = await it.next();
    } catch (e) {
      abort.abort();
      throw toDBForgeError(e);
    }
    if (first.done) throw new Internal("the stream ended before its header");
    if (first.value.case !== "header") throw new Internal("the stream did not start with a header");
    return new Rows(it, abort, first.value.columns);
  }

  /** The column names, in order. */
  get columnNames(): string[] {
    return this.columns.map((c) => c.name);
  }

  /** Counts, timing and truncation, once the stream has ended. */
  get summary(): Summary | undefined {
    return this.summaryValue;
  }

  /**
   * On a resumable stream (`query(..., { resumable: true })`): the token that resumes at the
   * first row not yet read from this result (`client.resumeQuery`), after an error or after a
   * budget cut the page. Undefined on other streams and once the whole result was read.
   */
  get resumeToken(): string | undefined {
    if (this.summaryValue) return this.summaryValue.resumeToken;
    if (!this.position) return undefined;
    const [stream, received] = this.position;
    return `${stream}.${received - (this.buffer.length - this.pos)}`;
  }

  /** The next batch of rows as the server sent it (the rest of the current one first); undefined at the end. */
  async nextBatch(): Promise<Row[] | undefined> {
    if (this.pos < this.buffer.length) {
      const rest = this.buffer.slice(this.pos);
      this.buffer = [];
      this.pos = 0;
      return rest;
    }
    while (!this.done) {
      let r: IteratorResult<Part>;
      try {
        r = await this.parts.next();
      } catch (e) {
        this.done = true;
        throw toDBForgeError(e);
      }
      if (r.done) {
        this.done = true;
        if (!this.summaryValue) throw new Internal("the stream ended without a summary");
        return undefined;
      }
      const k = r.value;
      if (k.case === "batch") {
        const token = k.resumeToken?.split(".");
        if (token?.length === 2 && /^\d+$/.test(token[1]!)) this.position = [token[0]!, Number(token[1])];
        if (k.rows.length) return k.rows;
      } else if (k.case === "summary") {
        this.summaryValue = k.summary;
      }
    }
    return undefined;
  }

  /** The remaining rows a batch at a time. */
  async *batches(): AsyncGenerator<Row[]> {
    try {
      for (let b = await this.nextBatch(); b; b = await this.nextBatch()) yield b;
    } finally {
      this.stopIfUnfinished();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Row> {
    return {
      next: async (): Promise<IteratorResult<Row>> => {
        if (this.pos >= this.buffer.length) {
          const b = await this.nextBatch();
          if (!b) return { done: true, value: undefined };
          this.buffer = b;
          this.pos = 0;
        }
        return { done: false, value: this.buffer[this.pos++]! };
      },
      return: async (): Promise<IteratorResult<Row>> => {
        this.stopIfUnfinished();
        return { done: true, value: undefined };
      },
    };
  }

  /** The remaining rows as column name → value objects. */
  async *objects(): AsyncGenerator<Record<string, SqlValue>> {
    for await (const row of this) yield rowObjects(this.columns, [row])[0]!;
  }

  /** Every remaining row. */
  async toArray(): Promise<Row[]> {
    const out: Row[] = this.buffer.slice(this.pos);
    this.buffer = [];
    this.pos = 0;
    for (let b = await this.nextBatch(); b; b = await this.nextBatch()) {
      for (const r of b) out.push(r);
    }
    return out;
  }

  /** Stops reading; the server cancels the query. */
  cancel(): void {
    this.done = true;
    this.abort.abort();
    // Reading on until the aborted call settles clears its deadline timer.
    void (async () => {
      try {
        while (!(await this.parts.next()).done);
      } catch {
        // the abort surfaces here: settled
      }
    })();
  }

  private stopIfUnfinished(): void {
    if (!this.done) this.cancel();
  }
}
