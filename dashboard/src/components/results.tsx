/**
 * A result table that stays fast at a million rows: only the rows in view are in the DOM,
 * positioned by @tanstack/virtual-core (a maintained virtualizer; the framework adapters are
 * React-only, so the core is driven directly here). Rows may keep arriving while it is shown.
 * Cells are text nodes: NULL is a styled marker apart from "", numbers are right-aligned, bytes
 * are hex; selecting a cell shows its whole value below the table (long text expands there).
 *
 * Keyboard: the table is one tab stop (a grid with an active cell, `aria-activedescendant`,
 * since the rows out of view are not in the DOM to take focus). Arrows, Home/End, Page Up/Down
 * and Ctrl+Home/End move the active cell, scrolling it into view; Enter or Space opens its whole
 * value in the panel below (focused, so it reads and scrolls by keyboard); Escape closes the
 * panel and returns to the cell.
 */
import { useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from "preact/hooks";
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect, type VirtualizerOptions } from "@tanstack/virtual-core";
import type { Column, Row } from "@dbforge/sdk/web";
import { cellKind, cellText } from "../format";

export const ROW_HEIGHT = 26;

/** Tables made on this page, for unique cell ids. */
let tables = 0;

export function ResultTable({ columns, rows, count }: { columns: Column[]; rows: Row[]; count: number }) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [, redraw] = useReducer((x: number) => x + 1, 0);
  const [picked, setPicked] = useState<{ r: number; c: number } | null>(null);
  const [active, setActive] = useState<{ r: number; c: number } | null>(null);
  const detailRef = useRef<HTMLPreElement>(null);
  const focusDetail = useRef(false);
  const idBase = useMemo(() => `res${++tables}`, []);
  const options = useMemo<VirtualizerOptions<HTMLDivElement, Element>>(
    () => ({
      count: 0,
      getScrollElement: () => scrollRef.current,
      estimateSize: () => ROW_HEIGHT,
      scrollToFn: elementScroll,
      observeElementRect,
      observeElementOffset,
      onChange: () => redraw(0),
      overscan: 12,
    }),
    [],
  );
  const v = useMemo(() => new Virtualizer(options), [options]);
  v.setOptions({ ...options, count });
  useEffect(() => v._didMount(), [v]);
  useLayoutEffect(() => {
    v._willUpdate();
  });
  const template = columns.map((c) => (numericKind(c) ? "minmax(6rem, max-content)" : "minmax(8rem, 16rem)")).join(" ");
  const items = v.getVirtualItems();
  const pickedValue = picked ? rows[picked.r]?.[picked.c] : undefined;
  // A new result (fewer rows, other columns) keeps no stale position.
  const at = active && active.r < count && active.c < columns.length ? active : null;

  useEffect(() => {
    if (picked && focusDetail.current) {
      focusDetail.current = false;
      detailRef.current?.focus();
    }
  }, [picked]);

  const move = (r: number, c: number) => {
    const next = { r: Math.max(0, Math.min(count - 1, r)), c: Math.max(0, Math.min(columns.length - 1, c)) };
    setActive(next);
    v.scrollToIndex(next.r, { align: "auto" });
  };
  const pageRows = Math.max(1, Math.floor((scrollRef.current?.clientHeight ?? ROW_HEIGHT * 10) / ROW_HEIGHT) - 2);
  const onKey = (e: KeyboardEvent) => {
    if (count === 0 || columns.length === 0) return;
    const cur = at ?? { r: 0, c: 0 };
    const keys: Record<string, () => void> = {
      ArrowDown: () => move(cur.r + 1, cur.c),
      ArrowUp: () => move(cur.r - 1, cur.c),
      ArrowRight: () => move(cur.r, cur.c + 1),
      ArrowLeft: () => move(cur.r, cur.c - 1),
      PageDown: () => move(cur.r + pageRows, cur.c),
      PageUp: () => move(cur.r - pageRows, cur.c),
      Home: () => (e.ctrlKey ? move(0, 0) : move(cur.r, 0)),
      End: () => (e.ctrlKey ? move(count - 1, columns.length - 1) : move(cur.r, columns.length - 1)),
      Enter: () => open(cur),
      " ": () => open(cur),
      Escape: () => setPicked(null),
    };
    const act = keys[e.key];
    if (!act) return;
    // Escape with nothing open is left to the page.
    if (e.key === "Escape" && !picked) return;
    e.preventDefault();
    act();
  };
  const open = (cell: { r: number; c: number }) => {
    setActive(cell);
    focusDetail.current = true;
    setPicked(cell);
  };
  const close = () => {
    setPicked(null);
    scrollRef.current?.focus();
  };
  const cellId = (r: number, c: number) => `${idBase}-${r}-${c}`;
  const activeShown = at !== null && items.some((it) => it.index === at.r);
  return (
    <div class="results">
      <div
        class="result-scroll"
        ref={scrollRef}
        tabIndex={0}
        role="grid"
        aria-readonly="true"
        aria-label="Query result"
        aria-describedby={`${idBase}-help`}
        aria-rowcount={count + 1}
        aria-colcount={columns.length}
        aria-activedescendant={activeShown && at ? cellId(at.r, at.c) : undefined}
        onKeyDown={onKey}
        onFocus={() => !at && count > 0 && columns.length > 0 && setActive({ r: 0, c: 0 })}
        data-testid="result"
        style={{ height: `min(60vh, ${(count + 1) * ROW_HEIGHT + 4}px)` }}
      >
        <div class="rrow rhead" role="row" style={{ gridTemplateColumns: template }} aria-rowindex={1}>
          {columns.map((c) => (
            <div role="columnheader" class={numericKind(c) ? "num" : ""} key={c.name} title={c.declaredType}>
              {c.name}
            </div>
          ))}
        </div>
        <div class="rbody" style={{ height: `${v.getTotalSize()}px` }}>
          {items.map((it) => {
            const row = rows[it.index];
            if (!row) return null;
            return (
              <div
                key={it.index}
                class="rrow"
                role="row"
                aria-rowindex={it.index + 2}
                data-index={it.index}
                style={{ gridTemplateColumns: template, transform: `translateY(${it.start}px)` }}
              >
                {row.map((cell, ci) => {
                  const kind = cellKind(cell);
                  const isActive = at !== null && at.r === it.index && at.c === ci;
                  return (
                    <div
                      role="gridcell"
                      id={cellId(it.index, ci)}
                      aria-colindex={ci + 1}
                      aria-selected={isActive ? "true" : undefined}
                      class={`cell ${kind}${isActive ? " active" : ""}`}
                      key={ci}
                      onClick={() => {
                        setActive({ r: it.index, c: ci });
                        setPicked({ r: it.index, c: ci });
                      }}
                    >
                      {cellText(cell)}
                    </div>
                  );
                })}
              </div>
            );
          })}
        </div>
      </div>
      <p id={`${idBase}-help`} class="muted help">
        Arrow keys move through the cells; Enter shows a cell's whole value, Escape closes it.
      </p>
      {picked && pickedValue !== undefined && (
        <div
          class="cell-detail"
          role="region"
          aria-label="Selected value"
          data-testid="cell-detail"
          onKeyDown={(e) => {
            if (e.key === "Escape") {
              e.preventDefault();
              e.stopPropagation();
              close();
            }
          }}
        >
          <div class="muted">
            Row {picked.r + 1}, column {columns[picked.c]?.name}
            <button type="button" class="link" onClick={close}>
              Close
            </button>
          </div>
          <pre
            ref={detailRef}
            tabIndex={0}
            class={cellKind(pickedValue)}
            aria-label={`Whole value of row ${picked.r + 1}, column ${columns[picked.c]?.name ?? ""}`}
          >
            {cellText(pickedValue)}
          </pre>
        </div>
      )}
    </div>
  );
}

function numericKind(c: Column): boolean {
  return c.kind === 1 || c.kind === 2 || c.kind === 6;
}
