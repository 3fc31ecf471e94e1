/**
 * The signed-in state: the API key lives in sessionStorage only (never in the URL, never in
 * localStorage, never logged), so closing the tab or signing out forgets it.
 */
import { connectWeb, type DBForgeClient } from "@dbforge/sdk/web";
import type { ApiKey } from "@dbforge/sdk/web";

const KEY = "dbforge.apiKey";

export interface Session {
  client: DBForgeClient;
  me: ApiKey;
}

/** A client for this key against the gateway that served the page (same origin: no CORS). */
export function clientFor(apiKey: string): DBForgeClient {
  return connectWeb({ endpoint: location.origin, apiKey });
}

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Checks the key with WhoAmI; stores it only when the gateway accepts it. */
export async function signIn(apiKey: string): Promise<Session> {
  const client = clientFor(apiKey);
  const me = await client.whoAmI();
  sessionStorage.setItem(KEY, apiKey);
  return { client, me };
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** What the key may do, as the pages ask it. */
export function mayCreate(me: ApiKey): boolean {
  return me.admin || me.canCreate;
}
