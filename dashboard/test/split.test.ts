/** The console's statement splitter (Preview takes a script's statements one by one). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { splitStatements } from "../src/run.js";

test("statements split at semicolons, dropping empty ones and comment-only ones", () => {
  assert.deepEqual(splitStatements("SELECT 1; ;\n UPDATE t SET a = 2 ;\n-- done\n"), ["SELECT 1", "UPDATE t SET a = 2"]);
  assert.deepEqual(splitStatements("  "), []);
  assert.deepEqual(splitStatements("DELETE FROM t"), ["DELETE FROM t"]);
});

test("a semicolon inside quotes, identifiers, comments or dollar quotes does not split", () => {
  assert.deepEqual(splitStatements(`INSERT INTO t VALUES ('a;b', 'it''s;'); SELECT "x;y" FROM t`), [
    `INSERT INTO t VALUES ('a;b', 'it''s;')`,
    `SELECT "x;y" FROM t`,
  ]);
  assert.deepEqual(splitStatements("SELECT 1 /* ; */ + 1; SELECT 2 -- ;\n"), ["SELECT 1 /* ; */ + 1", "SELECT 2 -- ;"]);
  const fn = "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END $body$ LANGUAGE plpgsql";
  assert.deepEqual(splitStatements(`${fn}; SELECT f()`), [fn, "SELECT f()"]);
  assert.deepEqual(splitStatements("SELECT $$a;b$$; SELECT 2"), ["SELECT $$a;b$$", "SELECT 2"]);
});

test("backslashes and # comments follow the dialect", () => {
  // Standard SQL (PostgreSQL, SQLite): a backslash is an ordinary character, so the quote ends.
  assert.deepEqual(splitStatements(`SELECT 'a\\'; SELECT 2`), [`SELECT 'a\\'`, "SELECT 2"]);
  // MySQL: a backslash escapes the quote, and # starts a comment.
  assert.deepEqual(splitStatements(`SELECT 'a\\';b'; # x;y\nSELECT 2`, { mysql: true }), [`SELECT 'a\\';b'`, "# x;y\nSELECT 2"]);
});
