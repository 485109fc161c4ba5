// Activity: every run (backups, restores, checks, emails, pruning) with its outcome.

import { api } from "../api";
import { h, put } from "../dom";
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
  const slot = h("div", { "data-testid": "activity-list" });
  let drawn = "";
  const load = async (onlyIfChanged: boolean) => {
    let runs: Awaited<ReturnType<typeof api.history>> = [];
    try {
      runs = await api.history(200);
    } catch (e) {
      if (!onlyIfChanged) shell.error(e);
      if (onlyIfChanged) return;
    }
    const now = JSON.stringify(runs);
    if (onlyIfChanged && now === drawn) return;
    drawn = now;
    put(slot, table(runs));
  };
  await load(false);
  // A run that ended while the screen is open appears without drawing the screen again.
  shell.follow(() => load(true));
  return h("div", { class: "view" }, h("header", { class: "view-head" }, h("h1", {}, "Activity")), slot);
}

function table(runs: Awaited<ReturnType<typeof api.history>>): HTMLElement {
  if (runs.length === 0)
    return h("div", { class: "empty" }, h("h3", {}, "Nothing has happened yet"), h("p", {}, "Backups, restores, checks and emails appear here with their outcome."));
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
    "table",
    { class: "activity" },
    h("thead", {}, h("tr", {}, ["When", "What", "Outcome", "Details"].map((t) => h("th", {}, t)))),
    h("tbody", {}, body),
  );
}
