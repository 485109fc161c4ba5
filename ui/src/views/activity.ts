// Activity: every run (backups, restores, checks, emails, pruning) with its outcome.

import { api } from "../api";
import { h } from "../dom";
import * as fmt from "../format";
import type { Operation } from "../bindings/Operation";
import type { Shell } from "../shell";

// The operations the engine records (`catalog::Operation`, exported by ts-rs): a value
// missing here does not compile.
const OPS: Record<Operation, string> = {
  backup: "Backup",
  restore: "Restore",
  verify: "Verify",
  test_restore: "Test restore",
  alert: "Stale-backup alert",
  notify: "Email",
  digest: "Weekly report",
  prune: "Clean-up",
  cleanup: "Leftover database removed",
  copy: "Offsite copy",
  "catch-up": "Catch-up",
  other: "Other",
};

/** Every operation the engine records, for tests. */
export const OPERATIONS = Object.keys(OPS) as Operation[];

/** What an operation of the history is called on the Activity screen. */
export function operationLabel(op: Operation | string): string {
  return OPS[op as Operation] ?? op;
}

export async function activityView(shell: Shell): Promise<HTMLElement> {
  let runs: Awaited<ReturnType<typeof api.history>> = [];
  try {
    runs = await api.history(200);
  } catch (e) {
    shell.error(e);
  }
  const body = runs.map((r) => {
    const ok = r.outcome === "success";
    return h(
      "tr",
      { "data-testid": "run-row", class: ok ? "" : "failed" },
      h("td", {}, fmt.when(r.started_at)),
      h("td", {}, operationLabel(r.operation), r.kind ? h("span", { class: "muted" }, ` (${fmt.kind(r.kind).toLowerCase()})`) : null),
      h("td", {}, h("span", { class: `badge ${ok ? "ok" : "bad"}` }, ok ? "OK" : "Failed")),
      h("td", { class: "message" }, r.message ?? ""),
    );
  });
  return h(
    "div",
    { class: "view" },
    h("header", { class: "view-head" }, h("h1", {}, "Activity")),
    runs.length === 0
      ? h("div", { class: "empty" }, h("h3", {}, "Nothing has happened yet"), h("p", {}, "Backups, restores, checks and emails appear here with their outcome."))
      : h(
          "table",
          { class: "activity" },
          h("thead", {}, h("tr", {}, ["When", "What", "Outcome", "Details"].map((t) => h("th", {}, t)))),
          h("tbody", {}, body),
        ),
  );
}
