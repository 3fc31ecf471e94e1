/**
 * Per-backend health from the gateway's `grpc.health.v1.Health` service (entries
 * `dbforge.backend.<name>`, kept by the gateway from each backend's availability), called over
 * the SDK client's own grpc-web transport. The health message types are generated from
 * grpc's health.proto into src/gen/ (protoc-gen-es 2.13.0, as the SDK's).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Backend, type DBForgeClient } from "@dbforge/sdk/web";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "./gen/grpc/health/v1/health_pb";

/** Each backend with the name of its health entry (`dbforge.backend.<name>`), in the admin page's
 * order. A graph entry exists only in a gateway built with the `graph` feature, "not configured"
 * otherwise. One list, so that a backend cannot gain a row without its health. */
export const BACKENDS: readonly (readonly [Backend, string])[] = [
  [Backend.SQLITE, "sqlite"],
  [Backend.POSTGRES, "postgres"],
  [Backend.MYSQL, "mysql"],
  [Backend.REDIS, "redis"],
  [Backend.GRAPH, "graph"],
];
export type BackendHealth = "serving" | "not serving" | "not configured" | "unknown";

export async function backendHealth(client: DBForgeClient): Promise<Record<string, BackendHealth>> {
  const health = createClient(Health, client.transport);
  const out: Record<string, BackendHealth> = {};
  await Promise.all(
    BACKENDS.map(async ([, name]) => {
      try {
        const r = await health.check({ service: `dbforge.backend.${name}` }, { timeoutMs: 5000 });
        out[name] = r.status === Serving.SERVING ? "serving" : r.status === Serving.NOT_SERVING ? "not serving" : "unknown";
      } catch (e) {
        out[name] = ConnectError.from(e).code === Code.NotFound ? "not configured" : "unknown";
      }
    }),
  );
  return out;
}
