// Home: the backups, newest first, "Back up now" with live progress, and per-backup actions.

import { api, type BackupRow, type Progress } from "../api";
import { clear, h, put } from "../dom";
import * as fmt from "../format";
import { confirmModal } from "../modal";
import { progressView } from "../progress";
import type { Shell } from "../shell";
import { findBackupsCard } from "./find";
import { openRestore } from "./restore";

/** What the last check of a backup proved: restored into a scratch database and compared (the
 * weekly routine test restore, or Test restore), only read back (Verify), or nothing yet. The
 * engine's message says which: a test restore's starts with "test restore". */
export function checkBadge(b: BackupRow): HTMLElement {
  const title = b.verify_message ?? "";
  const restored = title.startsWith("test restore");
  if (b.verified === true)
    return restored
      ? h("span", { class: "badge ok", title, "data-testid": "check-badge" }, "✓ test-restored", b.verified_at ? [" ", h("span", { class: "nowrap" }, fmt.day(b.verified_at))] : null)
      : h("span", { class: "badge ok", title, "data-testid": "check-badge" }, "✓ verified");
  if (b.verified === false) return h("span", { class: "badge bad", title, "data-testid": "check-badge" }, restored ? "✗ test restore failed" : "✗ failed");
  return h("span", { class: "badge", "data-testid": "check-badge" }, "not yet");
}

/** Where a backup is: on this computer or not, then each destination's copy ("NAS ✓", "Cloud:
 * pending since 02:14", "Cloud: failed" with the reason in the title). */
export function storedAt(b: BackupRow, now: Date = new Date()): HTMLElement {
  const parts: HTMLElement[] = [
    b.local
      ? h("span", { class: "copy done", title: b.path, "data-testid": "local-file", "data-state": "done" }, "Local ✓")
      : h("span", { class: "copy missing", "data-testid": "local-file", "data-state": "missing" }, "Not on this computer"),
  ];
  for (const c of b.copies) {
    const text =
      c.state === "done" ? `${c.destination} ✓` : c.state === "pending" ? `${c.destination}: pending${c.since ? ` since ${fmt.since(c.since, now)}` : ""}` : `${c.destination}: failed`;
    parts.push(h("span", { class: `copy ${c.state}`, title: c.error ?? null, "data-testid": `copy-${c.destination}`, "data-state": c.state }, text));
  }
  // Each separator stays with the copy before it, so a wrapped line never starts or ends with a lone "·".
  return h("div", { class: "copies" }, parts.map((p, i) => (i === parts.length - 1 ? p : [h("span", { class: "nowrap" }, p, " ·"), " "])));
}

/** An upload's progress (`table` = "destination: backup id") on its backup's row: "Cloud:
 * uploading 45%". False when the row is not listed (yet). The next refresh of the list shows
 * the copy's state. */
export function showUpload(list: HTMLElement, p: Progress): boolean {
  if (p.phase !== "upload" || !p.table) return true;
  const at = p.table.indexOf(": ");
  if (at < 0) return true;
  const [destination, id] = [p.table.slice(0, at), p.table.slice(at + 2)];
  const row = Array.from(list.querySelectorAll<HTMLElement>("[data-testid=backup-row]")).find((r) => r.dataset.id === id);
  if (!row) return false;
  let chip = Array.from(row.querySelectorAll<HTMLElement>(".copy")).find((c) => c.dataset.testid === `copy-${destination}`);
  if (!chip) {
    chip = h("span", { "data-testid": `copy-${destination}` });
    row.querySelector(".copies")?.append(" ", chip);
  }
  const pct = p.total_bytes ? Math.min(100, Math.floor((100 * p.bytes) / p.total_bytes)) : 0;
  chip.className = "copy uploading";
  chip.dataset.state = "uploading";
  chip.removeAttribute("title");
  chip.textContent = `${destination}: uploading ${pct}%`;
  return true;
}

// What a Verify or Test restore just said, by backup: kept across redraws of the screen (the
// app redraws it when a job ends or a failure comes), so a result does not vanish unread.
const outcomes = new Map<string, { ok: boolean; text: string }>();

export async function backupsView(shell: Shell): Promise<HTMLElement> {
  const list = h("div", { "data-testid": "backup-list" });
  const progressSlot = h("div");
  const backupBtn = h("button", { class: "primary", "data-testid": "backup-now" }, "Back up now");
  const fileBtn = h("button", { class: "secondary", "data-testid": "restore-file" }, "Restore from file…");

  // The list as last drawn: an update that finds it unchanged leaves the rows alone (what is
  // selected, focused or scrolled to stays).
  let drawn = "";
  const refresh = async (onlyIfChanged = false) => {
    try {
      const rows = await api.listBackups();
      const now = JSON.stringify(rows);
      if (onlyIfChanged && now === drawn) return;
      drawn = now;
      renderList(rows);
    } catch (e) {
      if (!onlyIfChanged) shell.error(e);
    }
  };
  // When the app says something changed (a scheduled backup or an upload ended): the list only.
  shell.follow(() => refresh(true));

  const renderList = (rows: BackupRow[]) => {
    clear(list);
    if (rows.length === 0) {
      list.append(
        h(
          "div",
          { class: "empty", "data-testid": "empty" },
          h("h3", {}, "No backups yet"),
          h("p", {}, "Click “Back up now” to make the first one: every table of the school database, encrypted, in one file."),
          h("p", { class: "muted" }, "After that, SchoolVault backs up on its schedule (daily at 02:00 by default) while it runs in the tray."),
        ),
      );
      const finder = h("div");
      list.append(finder);
      void findBackupsCard(shell, () => refresh()).then((card) => put(finder, card));
      return;
    }
    const body = rows.map((b) => row(b));
    list.append(
      h(
        "table",
        { class: "backups" },
        h(
          "thead",
          {},
          h("tr", {}, ["When", "Type", "Size", "Took", "Tables / rows", "Stored · checked", ""].map((t) => h("th", {}, t))),
        ),
        h("tbody", {}, body),
      ),
    );
  };

  // Listed from a destination (a new computer): how long it took and what it holds are inside
  // the encrypted file, known once it is downloaded and checked.
  const dash = () => h("span", { class: "muted", title: "Known once the backup is downloaded and checked" }, "—");
  const row = (b: BackupRow) => {
    const unknown = b.tables === 0 && b.rows === 0 && b.duration_ms === 0 && !b.local;
    const outcome = outcomes.get(b.id);
    const checked = checkBadge(b);
    return h(
      "tr",
      { "data-testid": "backup-row", "data-id": b.id, "data-kind": b.kind },
      h(
        "td",
        {},
        fmt.when(b.created_at),
        // Made before the key was rotated: it opens with the earlier key, kept in the keychain.
        b.older_key ? h("div", { class: "muted small", "data-testid": "older-key", title: "Made before the key was rotated: it opens with that earlier key, which stays in this computer's keychain. Keep that key's recovery copy too." }, `earlier key ${b.key}`) : null,
        outcome ? h("div", { class: outcome.ok ? "note ok" : "note bad", role: "status" }, outcome.text) : null,
      ),
      h("td", {}, h("span", { class: `kind ${b.kind}` }, fmt.kind(b.kind))),
      h("td", { class: "num" }, fmt.bytes(b.size)),
      h("td", { class: "num" }, unknown ? dash() : fmt.duration(b.duration_ms)),
      h("td", { class: "num" }, unknown ? dash() : `${fmt.count(b.tables)} / ${fmt.count(b.rows)}`),
      h("td", {}, storedAt(b), h("div", { class: "checked" }, checked)),
      h(
        "td",
        { class: "row-actions" },
        h("button", { class: "small", "data-testid": "restore", onclick: () => void openRestore(b.id, { onDone: () => void refresh() }) }, "Restore…"),
        h("button", { class: "small secondary", "data-testid": "verify", onclick: () => void check(b, "verify") }, "Verify"),
        h("button", { class: "small secondary", "data-testid": "test-restore", onclick: () => void check(b, "test") }, "Test restore"),
        h("button", { class: "small secondary danger-text", "data-testid": "delete", onclick: () => void remove(b) }, "Delete"),
      ),
    );
  };

  // Verify and Test restore show their progress as Back up now does (a download first, for a
  // backup that is not on this computer).
  const check = async (b: BackupRow, how: "verify" | "test") => {
    const view = progressView(how === "verify" ? "Verifying the backup" : "Test restore into a scratch database", how === "test" ? () => void api.cancelJob() : undefined);
    put(progressSlot, view.el);
    try {
      const r = how === "verify" ? await api.verifyBackup(b.id, view.update) : await api.testRestoreBackup(b.id, view.update);
      outcomes.set(b.id, { ok: true, text: r.message });
    } catch (e) {
      outcomes.set(b.id, { ok: false, text: shell.explain(e) });
    } finally {
      put(progressSlot);
    }
    await refresh();
  };

  const remove = async (b: BackupRow) => {
    const yes = await confirmModal(
      "Delete this backup?",
      `The ${fmt.kind(b.kind).toLowerCase()} backup of ${fmt.when(b.created_at)} (${fmt.bytes(b.size)}, ${fmt.count(b.rows)} rows) will be deleted from this computer. This cannot be undone.`,
      "Delete backup",
      true,
    );
    if (!yes) return;
    try {
      await api.deleteBackup(b.id);
      shell.toast("The backup was deleted.");
    } catch (e) {
      shell.error(e);
    }
    await refresh();
  };

  backupBtn.addEventListener("click", async () => {
    backupBtn.disabled = true;
    const view = progressView("Backing up", () => void api.cancelJob());
    put(progressSlot, view.el);
    try {
      // Once the backup is written, its copies go out: its row appears, with each upload's share.
      let latest: Progress | null = null;
      let listing = false;
      const b = await api.backupNow((p) => {
        view.update(p);
        if (p.phase !== "upload") return;
        latest = p;
        if (showUpload(list, p) || listing) return;
        listing = true;
        void refresh().then(() => {
          listing = false;
          if (latest) showUpload(list, latest);
        });
      });
      shell.toast(`Backup done: ${fmt.count(b.rows)} rows, ${fmt.bytes(b.size)}.`);
    } catch (e) {
      shell.error(e);
    } finally {
      put(progressSlot);
      backupBtn.disabled = false;
      await refresh();
      await shell.refreshStatus();
    }
  });

  fileBtn.addEventListener("click", async () => {
    try {
      const path = await api.pickRestoreFile();
      if (path) await openRestore(path, { onDone: () => void refresh() });
    } catch (e) {
      shell.error(e);
    }
  });

  await refresh();
  return h(
    "div",
    { class: "view" },
    h("header", { class: "view-head" }, h("h1", {}, "Backups"), h("div", { class: "toolbar" }, fileBtn, backupBtn)),
    progressSlot,
    list,
  );
}
