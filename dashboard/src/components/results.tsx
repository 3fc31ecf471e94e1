/**
 * A result table that stays fast at a million rows: only the rows in view are in the DOM,
 * positioned by @tanstack/virtual-core (a maintained virtualizer; the framework adapters are
 * React-only, so the core is driven directly here). Rows may keep arriving while it is shown.
 * Cells are text nodes: NULL is a styled marker apart from "", numbers are right-aligned, bytes
 * are hex; selecting a cell shows its whole value below the table (long text expands there).
 */
import { useEffect, useLayoutEffect, useMemo, useReducer, useRef, useState } from "preact/hooks";
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect, type VirtualizerOptions } from "@tanstack/virtual-core";
import type { Column, Row } from "@dbforge/sdk/web";
import { cellKind, cellText } from "../format";

export const ROW_HEIGHT = 26;

export function ResultTable({ columns, rows, count }: { columns: Column[]; rows: Row[]; count: number }) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [, redraw] = useReducer((x: number) => x + 1, 0);
  const [picked, setPicked] = useState<{ r: number; c: number } | null>(null);
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
  return (
    <div class="results">
      <div
        class="result-scroll"
        ref={scrollRef}
        tabIndex={0}
        role="table"
        aria-label="Query result"
        aria-rowcount={count + 1}
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
                  return (
                    <div role="cell" class={`cell ${kind}`} key={ci} onClick={() => setPicked({ r: it.index, c: ci })}>
                      {cellText(cell)}
                    </div>
                  );
                })}
              </div>
            );
          })}
        </div>
      </div>
      {picked && pickedValue !== undefined && (
        <div class="cell-detail" role="region" aria-label="Selected value">
          <div class="muted">
            Row {picked.r + 1}, column {columns[picked.c]?.name}
            <button type="button" class="link" onClick={() => setPicked(null)}>
              Close
            </button>
          </div>
          <pre class={cellKind(pickedValue)}>{cellText(pickedValue)}</pre>
        </div>
      )}
    </div>
  );
}

function numericKind(c: Column): boolean {
  return c.kind === 1 || c.kind === 2 || c.kind === 6;
}
