/**
 * The shell: sign-in gate, navigation (what WhoAmI says the key may do decides what is shown)
 * and the routed page. Heavy pages (console with the editor, schema with the diagram, admin)
 * are separate chunks loaded on first use, so the first load stays small.
 */
import { lazy, Suspense } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { KEY_REFUSED, errorText } from "./format";
import { DatabasesPage } from "./pages/databases";
import { SignInPage } from "./pages/signin";
import { href, navigate, useRoute } from "./router";
import { signIn, signOut, storedKey, type Session } from "./session";

const ConsolePage = lazy(() => import("./pages/console").then((m) => m.ConsolePage));
const SchemaPage = lazy(() => import("./pages/schema").then((m) => m.SchemaPage));
const AdminPage = lazy(() => import("./pages/admin").then((m) => m.AdminPage));

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<Session | null>(null);
  const [restoring, setRestoring] = useState(() => storedKey() !== null);
  const [restoreError, setRestoreError] = useState("");

  useEffect(() => {
    const key = storedKey();
    if (!key) return;
    signIn(key)
      .then(setSession)
      .catch((e: unknown) => {
        signOut();
        setRestoreError(errorText(e));
      })
      .finally(() => setRestoring(false));
  }, []);

  // A key revoked or expired while signed in: forget it and say why.
  useEffect(() => {
    const refused = () => {
      if (!storedKey()) return;
      signOut();
      setSession(null);
      setRestoreError("The gateway no longer accepts this key (revoked or expired). Sign in again.");
      navigate("/signin");
    };
    addEventListener(KEY_REFUSED, refused);
    return () => removeEventListener(KEY_REFUSED, refused);
  }, []);

  // The bare origin and the sign-in path show the databases once signed in.
  useEffect(() => {
    if (session && (location.pathname === "/" || location.pathname === "/signin")) navigate("/databases", true);
  }, [session]);

  useEffect(() => {
    document.title = `DB-Forge · ${titleOf(route.page)}`;
  }, [route.page]);

  if (restoring) return <p class="loading" role="status">Signing in…</p>;
  if (!session) {
    return (
      <SignInPage
        key={restoreError}
        initialError={restoreError}
        onSignedIn={setSession}
      />
    );
  }
  const out = () => {
    signOut();
    setSession(null);
    navigate("/signin");
  };
  const me = session.me;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <strong class="brand">DB-Forge</strong>
        <nav aria-label="Main">
          <a href={href({ page: "databases" })} aria-current={route.page === "databases" ? "page" : undefined}>
            Databases
          </a>
          {me.admin && (
            <a href={href({ page: "admin", tab: "keys" })} aria-current={route.page === "admin" ? "page" : undefined}>
              Admin
            </a>
          )}
        </nav>
        <span class="who" data-testid="who">
          {me.name}
          {me.admin ? " (admin)" : ""}
        </span>
        <button type="button" onClick={out}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p role="status">Loading…</p>}>
          {route.page === "console" ? (
            <ConsolePage session={session} db={route.db} />
          ) : route.page === "schema" ? (
            <SchemaPage session={session} db={route.db} />
          ) : route.page === "admin" ? (
            me.admin ? (
              <AdminPage session={session} tab={route.tab} />
            ) : (
              <p class="error" role="alert">
                The admin pages need an admin key; this key ({me.name}) is not one.
              </p>
            )
          ) : (
            <DatabasesPage session={session} />
          )}
        </Suspense>
      </main>
    </>
  );
}

function titleOf(page: string): string {
  return page === "signin" ? "Sign in" : page[0]!.toUpperCase() + page.slice(1);
}
