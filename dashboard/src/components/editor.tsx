/**
 * The SQL editor: CodeMirror 6 with @codemirror/lang-sql in the database's dialect, completing
 * table and column names from GetSchema. Mod-Enter (Ctrl or Cmd + Enter) runs; Tab is left to
 * the browser (focus moves on), so the editor never traps keyboard users.
 *
 * CSP: CodeMirror styles itself through constructable stylesheets (adoptedStyleSheets, via
 * style-mod) and CSSOM properties, neither of which `style-src 'self'` blocks; it injects no
 * <style> element in browsers that have adoptedStyleSheets (all current ones).
 */
import { useEffect, useRef } from "preact/hooks";
import { basicSetup } from "codemirror";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap, placeholder } from "@codemirror/view";
import { MySQL, PostgreSQL, SQLite, sql, type SQLDialect } from "@codemirror/lang-sql";
import { Backend } from "@dbforge/sdk/web";

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
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: props.initial,
        extensions: [
          Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (run.current(), true) }])),
          basicSetup,
          lang.current.of(sql({ dialect: dialect(props.backend), schema: props.tables, upperCaseKeywords: true })),
          placeholder("SELECT … (Ctrl+Enter runs)"),
          EditorView.contentAttributes.of({ "aria-label": "SQL statement", "data-testid": "editor" }),
          EditorView.lineWrapping,
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
