// "Find backups in…": a new computer after a disaster (the old one stolen, burnt or dead) lists
// the backups an offsite destination holds. Only each file's header and checksum file are read;
// the restore of one downloads it (checked) first. Shown where the list of backups is empty.

import { api, type DestinationRow } from "../api";
import { h, put } from "../dom";
import { explain } from "../errors";
import type { Shell } from "../shell";
import { addForm, KINDS } from "./destinations";

const kindLabel = (k: string) => KINDS.find(([v]) => v === k)?.[1] ?? k;

/** The sentence for what was found at a destination. */
export function foundLine(f: { destination: string; listed: number; unfinished: number; problems: string[] }): string {
  if (f.listed === 0) return `No backups were found in ${f.destination}. Check that it is the place they were copied to (the folder, or the bucket and its prefix).`;
  const parts = [`${f.listed} backup${f.listed === 1 ? "" : "s"} found in ${f.destination} and listed: choose one and Restore… (it is downloaded and checked first).`];
  if (f.unfinished > 0) parts.push(`${f.unfinished} unfinished cop${f.unfinished === 1 ? "y was" : "ies were"} left out.`);
  if (f.problems.length > 0) parts.push(`${f.problems.length} file${f.problems.length === 1 ? "" : "s"} could not be read.`);
  return parts.join(" ");
}

export async function findBackupsCard(shell: Shell, onFound: () => Promise<void>): Promise<HTMLElement> {
  const card = h("section", { class: "card subtle", "data-testid": "find-backups" });
  const render = async () => {
    let destinations: DestinationRow[] = [];
    try {
      destinations = await api.listDestinations();
    } catch {
      // No list: the form below adds one.
    }
    const intro = [
      h("h3", {}, "Setting up a new computer?"),
      h("p", {}, "If the school's backups were also copied to a USB disk, a NAS or a cloud bucket, SchoolVault lists them from there, and any of them can be restored. They open only with the encryption key they were made with (import it in Settings → Encryption key, from its recovery copy)."),
    ];
    if (destinations.length === 0) {
      put(card, intro, h("p", { class: "muted" }, "First add the place they were copied to:"), addForm(render).el);
      return;
    }
    const from = h("select", { "data-testid": "find-from" }, destinations.map((d) => h("option", { value: d.name }, `${d.name} (${kindLabel(d.kind)})`)));
    const go = h("button", { type: "button", class: "secondary", "data-testid": "find-go" }, "Find backups");
    const result = h("div", { class: "test-result", role: "status", "data-testid": "find-result" });
    go.addEventListener("click", async () => {
      go.disabled = true;
      result.className = "test-result muted";
      result.textContent = `Looking in ${from.value}…`;
      try {
        const found = await api.findBackups(from.value);
        result.className = found.listed > 0 ? "test-result ok" : "test-result bad";
        result.textContent = foundLine(found);
        if (found.listed > 0) {
          shell.toast(foundLine(found));
          await onFound();
        }
      } catch (e) {
        const x = explain(e);
        result.className = "test-result bad";
        put(result, h("strong", {}, x.title), " ", x.detail);
      } finally {
        go.disabled = false;
      }
    });
    put(card, intro, h("div", { class: "actions left bottom" }, h("label", { class: "field" }, h("span", {}, "Find backups in"), from), go), result);
  };
  await render();
  return card;
}
