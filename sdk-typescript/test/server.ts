/**
 * Starts a real dbforge-server for the tests (no mocks): $DBFORGE_SERVER_BIN, or built once
 * with `cargo build -p dbforge-server --features graph` (the graph engine, which the memory,
 * materialize and dashboard tests use; it needs libclang, as scripts/test installs); binds
 * 127.0.0.1:0 and reads the address from its log.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

let built: string | undefined;

export function serverBinary(): string {
  if (process.env.DBFORGE_SERVER_BIN) return process.env.DBFORGE_SERVER_BIN;
  if (!built) {
    execFileSync("cargo", ["build", "--quiet", "-p", "dbforge-server", "--features", "graph"], { cwd: REPO, stdio: "inherit" });
    const target = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, "target");
    built = join(target, "debug", "dbforge-server");
  }
  return built;
}

let builtCli: string | undefined;

/** The `dbforge` CLI: $DBFORGE_CLI_BIN, or built once with `cargo build -p dbforge-cli`. */
export function cliBinary(): string {
  if (process.env.DBFORGE_CLI_BIN) return process.env.DBFORGE_CLI_BIN;
  if (!builtCli) {
    execFileSync("cargo", ["build", "--quiet", "-p", "dbforge-cli"], { cwd: REPO, stdio: "inherit" });
    const target = process.env.CARGO_TARGET_DIR ? resolve(REPO, process.env.CARGO_TARGET_DIR) : join(REPO, "target");
    builtCli = join(target, "debug", "dbforge");
  }
  return builtCli;
}

export interface TestServer {
  addr: string;
  endpoint: string;
  log: string[];
  stop(): Promise<void>;
}

export async function startServer(
  args: string[] = ["--insecure-no-auth"],
  opts: { env?: Record<string, string>; tls?: boolean } = {},
): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "dbforge-ts-"));
  const child: ChildProcess = spawn(
    serverBinary(),
    ["--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log", "warn,dbforge_server::server=info", "--shutdown-grace", "2s", ...args],
    { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const log: string[] = [];
  child.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const addr = await new Promise<string>((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error("dbforge-server did not start:\n" + log.join(""))), 60_000);
    lines.on("line", (line) => {
      log.push(line);
      const m = /addr=(\S+:\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveAddr(m[1]!);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dbforge-server exited with ${code}:\n${log.join("\n")}`));
    });
  });
  child.removeAllListeners("exit");
  return {
    addr,
    endpoint: `${opts.tls ? "https" : "http"}://${addr}`,
    log,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) {
          rmSync(dataDir, { recursive: true, force: true });
          return done();
        }
        child.once("exit", () => {
          rmSync(dataDir, { recursive: true, force: true });
          done();
        });
        child.kill("SIGTERM");
      }),
  };
}

export interface TlsFiles {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  strangerCert: string;
  strangerKey: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and client certificates, made with the openssl CLI. */
export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), "dbforge-tls-"));
  const f = (n: string) => join(dir, n);
  const ssl = (...a: string[]) => execFileSync("openssl", a, { cwd: dir, stdio: "pipe" });
  const ca = (name: string) => {
    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
      "-subj", `/CN=${name}`, "-keyout", f(`${name}.key`), "-out", f(`${name}.pem`),
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  };
  const leaf = (name: string, caName: string, ext: string) => {
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${name}`,
      "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext);
    ssl("x509", "-req", "-in", f(`${name}.csr`), "-CA", f(`${caName}.pem`), "-CAkey", f(`${caName}.key`),
      "-CAcreateserial", "-days", "2", "-out", f(`${name}.pem`), "-extfile", f(`${name}.ext`));
  };
  ca("test-ca");
  ca("other-ca");
  leaf("server", "test-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n");
  leaf("client", "test-ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  leaf("stranger", "other-ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  return {
    dir,
    ca: f("test-ca.pem"),
    serverCert: f("server.pem"),
    serverKey: f("server.key"),
    clientCert: f("client.pem"),
    clientKey: f("client.key"),
    strangerCert: f("stranger.pem"),
    strangerKey: f("stranger.key"),
  };
}

let counter = 0;
/** A database name unique to this run. */
export function unique(prefix = "ts"): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
}
