/**
 * Routes are paths (`/databases`, `/db/<name>/console`), served by the gateway's SPA fallback;
 * links are plain `<a href>` that this module turns into history navigation.
 */
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "signin" }
  | { page: "databases" }
  | { page: "console"; db: string }
  | { page: "schema"; db: string }
  | { page: "admin"; tab: "keys" | "audit" | "stats" };

export function parse(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "db" && parts[1] !== undefined) {
    return parts[2] === "schema" ? { page: "schema", db: parts[1] } : { page: "console", db: parts[1] };
  }
  if (parts[0] === "admin") {
    const tab = parts[1] === "audit" || parts[1] === "stats" ? parts[1] : "keys";
    return { page: "admin", tab };
  }
  if (parts[0] === "signin") return { page: "signin" };
  return { page: "databases" };
}

export function href(r: Route): string {
  switch (r.page) {
    case "signin":
      return "/signin";
    case "databases":
      return "/databases";
    case "console":
      return `/db/${encodeURIComponent(r.db)}/console`;
    case "schema":
      return `/db/${encodeURIComponent(r.db)}/schema`;
    case "admin":
      return `/admin/${r.tab}`;
  }
}

export function navigate(to: string, replace = false): void {
  if (to === location.pathname) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  dispatchEvent(new PopStateEvent("popstate"));
}

/** Same-origin link clicks become history navigation (modifier clicks keep their meaning). */
export function installLinkHandler(): void {
  document.addEventListener("click", (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    e.preventDefault();
    navigate(url.pathname);
  });
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parse(location.pathname));
  useEffect(() => {
    const on = () => setRoute(parse(location.pathname));
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  return route;
}
