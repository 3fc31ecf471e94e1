/** The hand-written batch decoder gives exactly what protobuf-es + fromValue give. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { RowBatchSchema, ValueSchema } from "../src/gen/dbforge/v1/types_pb.js";
import { decodeBatch } from "../src/fastpath.js";
import { CalendarDate, Decimal, TimeOfDay, fromValue, json, rawJson, sqlArray, toValue, uuid, type SqlParam } from "../src/values.js";

const ints: bigint[] = [0n, 1n, -1n, 127n, 128n, 300n, -300n, 2n ** 31n, -(2n ** 31n), 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, -(2n ** 53n) + 1n, -(2n ** 53n), 2n ** 62n, 2n ** 63n - 1n, -(2n ** 63n)];
for (let i = 0; i < 200; i++) {
  const v = BigInt.asIntN(64, BigInt(Math.floor(Math.random() * 2 ** 32)) << BigInt(Math.floor(Math.random() * 33)));
  ints.push(v, -v);
}
const params: SqlParam[] = [
  ...ints,
  0.5, -0.0, 1e308, Number.NaN, Number.POSITIVE_INFINITY,
  "", "a", "héllo ✓ 𝄞", "x".repeat(40), "ü".repeat(40),
  new Uint8Array([]), new Uint8Array([0, 1, 255]),
  true, false, null,
  new Decimal("-12.3400"), rawJson('{"a":[1,{"b":null}]}'), json("s"), uuid("7d444840-9dc0-11d1-b245-5ffdce74fad2"),
  new Date("2024-02-29T23:59:58.123Z"), new CalendarDate(2024, 2, 29), new TimeOfDay(1, 2, 3, 4), sqlArray([1, "a", null]),
];

test("decodeBatch matches protobuf-es for every kind and edge value", () => {
  const batch = create(RowBatchSchema, {
    rows: [
      { values: params.map(toValue) },
      { values: [] },
      { values: [create(ValueSchema)] }, // unset kind = NULL
    ],
  });
  const bytes = toBinary(RowBatchSchema, batch);
  const fast = decodeBatch(bytes);
  const slow = batch.rows.map((r) => r.values.map(fromValue));
  assert.equal(fast.length, 3);
  assert.deepEqual(fast, slow);
  for (let i = 0; i < ints.length; i++) {
    const want = ints[i]!;
    const got = fast[0]![i];
    if (want >= -(2n ** 53n) + 1n && want <= 2n ** 53n - 1n) assert.equal(got, Number(want), `int ${want}`);
    else assert.equal(got, want, `int ${want}`);
  }
});
