/**
 * JavaScript values to and from `dbforge.v1.Value`.
 *
 * | JavaScript | Value kind |
 * |---|---|
 * | `null`, `undefined` | null |
 * | `boolean` | bool |
 * | `number` (a safe integer) / `bigint` | int (64-bit) |
 * | `number` (any other), `float(n)` | float |
 * | `string` | text |
 * | `Uint8Array` | bytes |
 * | `Decimal` (`new Decimal("12.30")`) | decimal (exact, as text) |
 * | plain objects, arrays, `json(v)` | json |
 * | `Date` | timestamp |
 * | `CalendarDate` | date |
 * | `TimeOfDay` | time |
 * | `uuid("…")` | uuid |
 * | `sqlArray([…])` | array |
 *
 * Results map back: an int as a `number` when it is within ±2^53 and as a `bigint` beyond,
 * JSON as the parsed document, a timestamp as a `Date` (millisecond precision), a uuid as its
 * text, an array as a JS array.
 */
import { create } from "@bufbuild/protobuf";
import { NullValue, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  DateSchema,
  TimeOfDaySchema,
  ValueListSchema,
  ValueSchema,
  type Value,
} from "./gen/dbforge/v1/types_pb.js";

/** An exact decimal, kept as text so no digit is lost. */
export class Decimal {
  readonly text: string;
  constructor(text: string) {
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      throw new TypeError(`not a decimal number: ${JSON.stringify(text)}`);
    }
    this.text = text;
  }
  /** A decimal the server sent (already valid: not checked again). */
  static fromServer(text: string): Decimal {
    const d = Object.create(Decimal.prototype) as { text: string };
    d.text = text;
    return d as Decimal;
  }
  toString(): string {
    return this.text;
  }
  toJSON(): string {
    return this.text;
  }
  /** The nearest double (may round). */
  toNumber(): number {
    return Number(this.text);
  }
}

/** A calendar date without a time zone. */
export class CalendarDate {
  constructor(
    readonly year: number,
    readonly month: number,
    readonly day: number,
  ) {}
  /** Parses `YYYY-MM-DD`. */
  static parse(text: string): CalendarDate {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    if (!m) throw new TypeError(`not a YYYY-MM-DD date: ${JSON.stringify(text)}`);
    return new CalendarDate(Number(m[1]), Number(m[2]), Number(m[3]));
  }
  toString(): string {
    const p = (n: number, w: number) => String(n).padStart(w, "0");
    return `${p(this.year, 4)}-${p(this.month, 2)}-${p(this.day, 2)}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** A time of day without a date or time zone. */
export class TimeOfDay {
  constructor(
    readonly hours: number,
    readonly minutes: number,
    readonly seconds = 0,
    readonly nanos = 0,
  ) {}
  toString(): string {
    const p = (n: number) => String(n).padStart(2, "0");
    const frac = this.nanos ? "." + String(this.nanos).padStart(9, "0").replace(/0+$/, "") : "";
    return `${p(this.hours)}:${p(this.minutes)}:${p(this.seconds)}${frac}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** A parameter wrapper that forces a kind where the JS value alone is ambiguous. */
export class Tagged {
  constructor(
    readonly kind: "float" | "json" | "uuid" | "array",
    readonly value: unknown,
  ) {}
}

/** A float parameter even when the number is integral (`float(1)`). */
export const float = (n: number): Tagged => new Tagged("float", n);
/** A JSON parameter from any `JSON.stringify`-able value (strings included). */
export const json = (v: unknown): Tagged => new Tagged("json", JSON.stringify(v));
/** A JSON parameter from JSON text as is. */
export const rawJson = (text: string): Tagged => new Tagged("json", text);
/** A UUID parameter. */
export const uuid = (text: string): Tagged => new Tagged("uuid", text);
/** An array parameter (PostgreSQL arrays); elements convert like any parameter. */
export const sqlArray = (items: readonly SqlParam[]): Tagged => new Tagged("array", items);

/** What a result cell converts to. */
export type SqlValue =
  | null
  | number
  | bigint
  | string
  | boolean
  | Uint8Array
  | Date
  | Decimal
  | CalendarDate
  | TimeOfDay
  | JsonDocument
  | SqlValue[];

/** A parsed JSON document. */
export type JsonDocument = null | boolean | number | string | JsonDocument[] | { [key: string]: JsonDocument };

/** What a parameter may be. */
export type SqlParam =
  | SqlValue
  | undefined
  | Tagged
  | { readonly [key: string]: unknown }
  | readonly unknown[];

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Converts a parameter into a `Value`. Throws `TypeError` or `RangeError` when it cannot. */
export function toValue(v: SqlParam): Value {
  return create(ValueSchema, { kind: toKind(v) });
}

/** Converts a parameter list. */
export function toValues(params: readonly SqlParam[] | undefined): Value[] {
  return params ? params.map(toValue) : [];
}

function toKind(v: SqlParam): Value["kind"] {
  if (v === null || v === undefined) return { case: "nullValue", value: NullValue.NULL_VALUE };
  switch (typeof v) {
    case "boolean":
      return { case: "boolValue", value: v };
    case "number":
      // Integral numbers within ±2^53 are ints; beyond, a number is not an exact integer anyway.
      if (Number.isSafeInteger(v)) return { case: "intValue", value: BigInt(v) };
      return { case: "floatValue", value: v };
    case "bigint":
      if (v < I64_MIN || v > I64_MAX) throw new RangeError(`integer ${v} does not fit in 64 bits`);
      return { case: "intValue", value: v };
    case "string":
      return { case: "textValue", value: v };
  }
  if (v instanceof Uint8Array) return { case: "bytesValue", value: v };
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new RangeError("invalid Date");
    return { case: "timestampValue", value: timestampFromDate(v) };
  }
  if (v instanceof Decimal) return { case: "decimalValue", value: v.text };
  if (v instanceof CalendarDate) {
    return { case: "dateValue", value: create(DateSchema, { year: v.year, month: v.month, day: v.day }) };
  }
  if (v instanceof TimeOfDay) {
    return {
      case: "timeValue",
      value: create(TimeOfDaySchema, { hours: v.hours, minutes: v.minutes, seconds: v.seconds, nanos: v.nanos }),
    };
  }
  if (v instanceof Tagged) {
    switch (v.kind) {
      case "float":
        return { case: "floatValue", value: v.value as number };
      case "json":
        return { case: "jsonValue", value: v.value as string };
      case "uuid":
        return { case: "uuidValue", value: v.value as string };
      case "array":
        return {
          case: "arrayValue",
          value: create(ValueListSchema, { values: (v.value as SqlParam[]).map(toValue) }),
        };
    }
  }
  if (typeof v === "object") return { case: "jsonValue", value: JSON.stringify(v) };
  throw new TypeError(`cannot convert ${typeof v} to a DB-Forge value`);
}

/** An int64 as a number when exact, else as a bigint. */
export function int64(v: bigint): number | bigint {
  return v >= SAFE_MIN && v <= SAFE_MAX ? Number(v) : v;
}

/** Converts a `Value` into its JavaScript value (an unset kind is null). */
export function fromValue(v: Value): SqlValue {
  const k = v.kind;
  switch (k.case) {
    case "intValue":
      return int64(k.value);
    case "floatValue":
    case "textValue":
    case "boolValue":
    case "bytesValue":
      return k.value;
    case "nullValue":
    case undefined:
      return null;
    case "decimalValue":
      return Decimal.fromServer(k.value);
    case "jsonValue":
      return JSON.parse(k.value) as JsonDocument;
    case "timestampValue":
      return timestampDate(k.value);
    case "dateValue":
      return new CalendarDate(k.value.year, k.value.month, k.value.day);
    case "uuidValue":
      return k.value;
    case "timeValue":
      return new TimeOfDay(k.value.hours, k.value.minutes, k.value.seconds, k.value.nanos);
    case "arrayValue":
      return k.value.values.map(fromValue);
  }
}
