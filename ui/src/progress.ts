// A live progress panel fed by a job's channel: phase, current table, rows, bytes, ETA.

import type { Progress } from "./api";
import { h } from "./dom";
import * as fmt from "./format";

export interface ProgressView {
  el: HTMLElement;
  update: (p: Progress) => void;
}

/** The bar's fraction (0…1), or null when the total is not known (an indeterminate bar). */
export function progressFraction(p: Progress): number | null {
  if (!p.total_bytes || p.total_bytes <= 0 || p.bytes >= p.total_bytes) return p.phase === "commit" ? 1 : null;
  return p.bytes / p.total_bytes;
}

export function progressView(title: string, onCancel?: () => void): ProgressView {
  const started = Date.now();
  const label = h("div", { class: "progress-phase", "data-testid": "progress-phase" }, "Starting…");
  const bar = h("progress", { max: 100, "aria-label": title });
  const detail = h("div", { class: "progress-detail muted" });
  const el = h(
    "section",
    { class: "card progress-card", "data-testid": "progress" },
    h("div", { class: "row" }, h("strong", {}, title), onCancel ? h("button", { class: "secondary", onclick: onCancel }, "Cancel") : null),
    label,
    bar,
    detail,
  );
  const update = (p: Progress) => {
    label.textContent = fmt.phase(p.phase) + (p.table ? `: ${p.table}` : "");
    // A fraction only of a known total (bytes, estimated before the job from the catalog's
    // statistics, or the file's size); otherwise the bar is indeterminate. Tables are not a
    // measure of work: one table may hold nearly all of it.
    const fraction = progressFraction(p);
    if (fraction === null) bar.removeAttribute("value");
    else bar.value = Math.round(fraction * 100);
    const parts = [];
    if (p.tables_total > 0) parts.push(`${fmt.count(p.tables_done)} of ${fmt.count(p.tables_total)} tables`);
    if (p.rows > 0) parts.push(`${fmt.count(p.rows)} rows`);
    if (p.bytes > 0) parts.push(fmt.bytes(p.bytes));
    const left = fmt.etaText(fmt.eta(p.bytes, p.total_bytes, Date.now() - started));
    if (left) parts.push(left);
    detail.textContent = parts.join(" · ");
  };
  return { el, update };
}
