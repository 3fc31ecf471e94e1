/** Sign in with an API key; the key goes to sessionStorage once WhoAmI accepts it. */
import { useState } from "preact/hooks";
import { errorText } from "../format";
import { signIn, type Session } from "../session";

export function SignInPage(props: { onSignedIn: (s: Session) => void; initialError: string }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(props.initialError);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const s = await signIn(key.trim());
      setKey("");
      props.onSignedIn(s);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>DB-Forge</h1>
      <form onSubmit={submit} autocomplete="off">
        <label for="apikey">API key</label>
        <input
          id="apikey"
          type="password"
          value={key}
          required
          autoFocus
          spellcheck={false}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        <p class="hint">Kept in this tab only (sessionStorage), never in the address bar; sign out forgets it.</p>
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
