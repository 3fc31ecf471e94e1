/**
 * Per-backend health from the gateway's `grpc.health.v1.Health` service (entries
 * `dbforge.backend.<name>`, kept by the gateway from each backend's availability), called over
 * the SDK client's own grpc-web transport. The health message types are generated from
 * grpc's health.proto into src/gen/ (protoc-gen-es 2.13.0, as the SDK's).
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { DBForgeClient } from "@dbforge/sdk/web";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "./gen/grpc/health/v1/health_pb";

/** In the order of the admin page's BACKENDS: a graph entry exists only in a gateway built with
 * the `graph` feature, "not configured" otherwise. */
export const BACKEND_NAMES = ["sqlite", "postgres", "mysql", "redis", "graph"] as const;
export type BackendHealth = "serving" | "not serving" | "not configured" | "unknown";

export async function backendHealth(client: DBForgeClient): Promise<Record<string, BackendHealth>> {
  const health = createClient(Health, client.transport);
  const out: Record<string, BackendHealth> = {};
  await Promise.all(
    BACKEND_NAMES.map(async (name) => {
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
