/** The dashboard's entry: signs in from sessionStorage, then shows the routed page. */
import { render } from "preact";
import { App } from "./app";
import { installLinkHandler } from "./router";

installLinkHandler();
render(<App />, document.getElementById("app")!);
