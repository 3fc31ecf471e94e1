/**
 * The SQL editor: CodeMirror 6 with @codemirror/lang-sql in the database's dialect, completing
 * table and column names from GetSchema. Mod-Enter (Ctrl or Cmd + Enter) runs; Tab is left to
 * the browser (focus moves on), so the editor never traps keyboard users.
 *
 * CSP: CodeMirror styles itself with style-mod, which writes a <style> element into a document
 * (blocked by `style-src 'self'` without 'unsafe-inline' or a nonce) but uses a constructable
 * stylesheet (adoptedStyleSheets, not subject to style-src) inside a shadow root. So the editor
 * lives in an open shadow root, and the CSP stays strict. Page CSS does not reach into it; the
 * theme below uses the page's CSS custom properties, which do (light and dark follow the page).
 */
import { useEffect, useRef } from "preact/hooks";
import { basicSetup } from "codemirror";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { MySQL, PostgreSQL, SQLite, sql, type SQLDialect } from "@codemirror/lang-sql";
import { HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { closeCompletion } from "@codemirror/autocomplete";
import { tags } from "@lezer/highlight";
import { Backend } from "@dbforge/sdk/web";

const mono = 'ui-monospace, "SF Mono", Menlo, Consolas, monospace';
const theme = EditorView.theme({
  "&": { backgroundColor: "var(--bg)", color: "var(--fg)", minHeight: "7rem", maxHeight: "40vh", borderRadius: "4px" },
  "&.cm-focused": { outline: "3px solid var(--focus)", outlineOffset: "2px" },
  ".cm-scroller": { fontFamily: mono, fontSize: "0.9rem" },
  ".cm-content": { caretColor: "var(--fg)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--fg)" },
  ".cm-gutters": { backgroundColor: "var(--panel)", color: "var(--muted)", borderColor: "var(--line)" },
  ".cm-activeLine, .cm-activeLineGutter": { backgroundColor: "rgb(127 127 127 / 0.08)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": { backgroundColor: "rgb(64 128 255 / 0.3)" },
  ".cm-tooltip": { backgroundColor: "var(--panel)", color: "var(--fg)", border: "1px solid var(--line)" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--accent)", color: "var(--accent-fg)" },
  ".cm-placeholder": { color: "var(--muted)" },
});

/** Token colours from the page's custom properties, so they follow light and dark. */
const highlight = syntaxHighlighting(
  HighlightStyle.define([
    { tag: tags.keyword, color: "var(--code-keyword)" },
    { tag: [tags.string, tags.special(tags.string)], color: "var(--code-string)" },
    { tag: [tags.number, tags.bool, tags.null], color: "var(--code-number)" },
    { tag: [tags.comment, tags.lineComment, tags.blockComment], color: "var(--muted)", fontStyle: "italic" },
    { tag: [tags.typeName, tags.standard(tags.name)], color: "var(--code-type)" },
  ]),
);

export interface EditorHandle {
  text(): string;
  set(text: string): void;
  focus(): void;
}

function dialect(b: Backend): SQLDialect {
  return b === Backend.POSTGRES ? PostgreSQL : b === Backend.MYSQL ? MySQL : SQLite;
}

export function SqlEditor(props: {
  backend: Backend;
  tables: Record<string, string[]>;
  initial: string;
  onRun: () => void;
  handle: (h: EditorHandle) => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const lang = useRef(new Compartment());
  const run = useRef(props.onRun);
  run.current = props.onRun;

  useEffect(() => {
    const shadow = host.current!.shadowRoot ?? host.current!.attachShadow({ mode: "open" });
    const v = new EditorView({
      root: shadow,
      parent: shadow,
      state: EditorState.create({
        doc: props.initial,
        extensions: [
          Prec.highest(keymap.of([{ key: "Mod-Enter", run: (view) => (closeCompletion(view), run.current(), true) }])),
          // The completion list closes when focus leaves the editor (Tab onwards, a click outside);
          // in a shadow root CodeMirror's own blur check leaves it open.
          EditorView.domEventHandlers({
            blur: (_e, view) => {
              closeCompletion(view);
              return false;
            },
          }),
          basicSetup,
          lang.current.of(sql({ dialect: dialect(props.backend), schema: props.tables, upperCaseKeywords: true })),
          placeholder("SELECT … (Ctrl+Enter runs)"),
          EditorView.contentAttributes.of({ "aria-label": "SQL statement", "data-testid": "editor" }),
          EditorView.lineWrapping,
          theme,
          highlight,
        ],
      }),
    });
    view.current = v;
    props.handle({
      text: () => v.state.doc.toString(),
      set: (text) => v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } }),
      focus: () => v.focus(),
    });
    return () => v.destroy();
  }, []);

  useEffect(() => {
    view.current?.dispatch({
      effects: lang.current.reconfigure(sql({ dialect: dialect(props.backend), schema: props.tables, upperCaseKeywords: true })),
    });
  }, [props.tables, props.backend]);

  return <div class="editor" ref={host} />;
}
