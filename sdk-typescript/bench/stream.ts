/**
 * Streams a 1,000,000-row result (an integer, a text and a float column, the same query as the
 * Rust benchmark in bench/) from a running gateway through the SDK and prints rows/s.
 *
 *   node --import tsx bench/stream.ts [--endpoint http://127.0.0.1:50051] [--rows 1000000] [--runs 3] [--protocol grpc|grpc-web]
 *
 * Without --endpoint (or DBFORGE_ENDPOINT) it starts a server of its own (test/server.ts). The
 * API key comes from DBFORGE_API_KEY. Prints one JSON line per run (rows, seconds, rows_per_s
 * and cpu_seconds: the CPU this process used during the run) and a summary line with the best
 * run; dbforge-bench (phase 14) reads the JSON lines.
 */
import { parseArgs } from "node:util";
import { connect } from "../src/node.js";
import { startServer, type TestServer } from "../test/server.js";

const { values: args } = parseArgs({
  options: {
    endpoint: { type: "string" },
    rows: { type: "string", default: "1000000" },
    runs: { type: "string", default: "3" },
    protocol: { type: "string", default: "grpc" },
  },
});
const rows = Number(args.rows);
const runs = Number(args.runs);
let server: TestServer | undefined;
let endpoint = args.endpoint ?? process.env.DBFORGE_ENDPOINT;
if (!endpoint) {
  server = await startServer();
  endpoint = server.endpoint;
}
const client = connect({ endpoint, protocol: args.protocol === "grpc-web" ? "grpc-web" : "grpc" });
const db = `bench-ts-${process.pid}`;
await client.createDatabase(db, { ifNotExists: true });
const sql =
  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT x, 'row-' || x, x * 0.5 FROM c";
let best = 0;
try {
  for (let run = 0; run < runs; run++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const result = await client.query(db, sql, [rows]);
    let n = 0;
    let sum = 0;
    for await (const row of result) {
      n++;
      sum += row[0] as number;
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (n !== rows || sum !== (rows * (rows + 1)) / 2) throw new Error(`wrong result: ${n} rows, sum ${sum}`);
    const rate = n / secs;
    best = Math.max(best, rate);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    console.log(
      JSON.stringify({
        sdk: "typescript",
        protocol: args.protocol,
        run,
        rows: n,
        seconds: +secs.toFixed(6),
        rows_per_s: Math.round(rate),
        cpu_seconds: +cpuSeconds.toFixed(6),
      }),
    );
  }
  console.log(`typescript (${args.protocol}): best ${Math.round(best).toLocaleString("en-US")} rows/s over ${runs} runs of ${rows.toLocaleString("en-US")} rows`);
} finally {
  await client.deleteDatabase(db, { allowMissing: true });
  client.close();
  await server?.stop();
}
