// The restore flow: a warning that names the database, shows what would be lost table by
// table, and enables the red button only once the database's name is typed — and, for an
// old-system file that only the public development key opened (not authenticated: anyone could
// have written it), only once a second warning's box is ticked too; then progress, then the
// result with "undo" (restore the safety backup).

import { api, type Progress, type RestorePreview, type RestoreResult } from "../api";
import { h, put } from "../dom";
import { explain } from "../errors";
import * as fmt from "../format";
import { focusFirst, openModal, type Modal } from "../modal";
import { progressView, type ProgressView } from "../progress";

export interface RestoreHooks {
  onDone: () => void;
}

/** Open the restore flow for a listed backup (`what` = id) or a picked file (`what` = path). */
export async function openRestore(what: string, hooks: RestoreHooks): Promise<void> {
  const m = openModal("Restore", { danger: true, onClose: hooks.onDone });
  const reading = h("p", { class: "muted" }, "Reading the backup and counting the rows in the database…");
  const download = h("div");
  const read = h("div");
  m.body.append(reading, download, read);
  // A backup that is not on this computer comes down from its destination first; then the file
  // is read through (seconds for a large one), each with its progress.
  let fetching: ProgressView | null = null;
  let scanning: ProgressView | null = null;
  const onProgress = (p: Progress) => {
    if (p.phase === "download") {
      if (fetching === null) {
        fetching = progressView("Fetching the backup");
        put(download, fetching.el);
        reading.textContent = "This backup is not on this computer: it is downloaded from its offsite destination and checked, then read.";
      }
      fetching.update(p);
      return;
    }
    if (scanning === null) {
      scanning = progressView("Reading the backup");
      put(read, scanning.el);
    }
    scanning.update(p);
  };
  let preview: RestorePreview;
  try {
    preview = await api.restorePreview(what, onProgress);
  } catch (e) {
    showError(m, e);
    return;
  }
  renderWarning(m, preview, hooks);
}

function showError(m: Modal, e: unknown) {
  const x = explain(e);
  put(m.body, 
    h("div", { class: "error", role: "alert", "data-testid": "error" }, h("strong", {}, x.title), h("p", {}, x.detail)),
    h("div", { class: "actions" }, h("button", { class: "secondary", onclick: () => m.close() }, "Close")),
  );
  focusFirst(m);
}

export function renderWarning(m: Modal, p: RestorePreview, hooks: RestoreHooks): void {
  const heading = m.root.querySelector("h2");
  if (heading) heading.textContent = `Restore the database “${p.target_database}”?`;
  const lost = p.tables.filter((t) => (t.live_rows ?? 0) !== t.backup_rows).length;
  const confirm = h("input", {
    type: "text",
    id: "confirm-name",
    autocomplete: "off",
    spellcheck: "false",
    "data-testid": "confirm-name",
    "aria-describedby": "confirm-help",
  });
  const safety = h("input", { type: "checkbox", id: "safety", checked: true, "data-testid": "safety" });
  const go = h("button", { class: "danger", disabled: true, "data-testid": "restore-confirm" }, "Replace the database");
  const trust = h("input", { type: "checkbox", id: "trust-dev-key", "data-testid": "trust-dev-key" });
  // The old system's advice ("notify all users of system downtime") as a step: with the
  // school connected, Replace waits until the person says the users were told.
  const told = h("input", { type: "checkbox", id: "users-told", "data-testid": "users-told" });
  const update = () => {
    go.disabled = confirm.value.trim() !== p.target_database || (p.dev_key && !trust.checked) || (p.sessions.length > 0 && !told.checked);
  };
  confirm.addEventListener("input", update);
  trust.addEventListener("change", update);
  told.addEventListener("change", update);
  const untrusted = p.dev_key
    ? h(
        "div",
        { class: "untrusted", role: "alert", "data-testid": "dev-key-warning" },
        h("strong", {}, "Second warning: this file is not authenticated."),
        h(
          "p",
          {},
          "It opened only with the old system's public development key, so anyone could have written or changed it — for example to add an administrator account with a password they know. Restore it only if you know where it came from.",
        ),
        h("label", { class: "check" }, trust, " I know where this file came from, and I trust it"),
      )
    : null;
  // A server without the roles the backup's objects belong to (a new server after a disaster).
  const createRoles = h("input", { type: "radio", name: "roles", value: "create", checked: true, "data-testid": "roles-create" });
  const ownerRoles = h("input", { type: "radio", name: "roles", value: "owner", "data-testid": "roles-owner" });
  const login = p.target.split("@")[0];
  const missing = p.missing_roles.length
    ? h(
        "div",
        { class: "note", role: "note", "data-testid": "missing-roles" },
        h("strong", {}, "This server does not have the roles the backup's tables belong to: "),
        p.missing_roles.join(", "),
        ".",
        h("label", { class: "check" }, createRoles, " Create them without login (give them passwords afterwards, so the school's programs can connect as before)"),
        h("label", { class: "check" }, ownerRoles, ` Make ${login} (the login SchoolVault uses) the owner of everything`),
      )
    : null;
  // The school is still connected: the ERP's open transactions hold up the restore. Said
  // before it starts, with the choice to end them (or to let the restore wait, up to a limit).
  const endSessions = h("input", { type: "checkbox", id: "end-sessions", "data-testid": "end-sessions" });
  const sessions = p.sessions.length
    ? h(
        "div",
        { class: "note", role: "note", "data-testid": "sessions" },
        h("strong", {}, `${p.sessions.length} other ${p.sessions.length === 1 ? "session is" : "sessions are"} connected to ${p.target_database}. `),
        "Tell the school's users that the system is going down and ask them to close it first: their unsaved work is lost. ",
        `An open transaction holds the tables: the restore waits up to ${p.lock_timeout_secs} s for it, then stops with nothing changed.`,
        h("ul", { class: "sessions" }, p.sessions.map((s) => h("li", {}, s))),
        h("label", { class: "check" }, told, " The users have been told that the school system is going down now"),
        h("label", { class: "check" }, endSessions, ` End these sessions when the restore starts (their open transactions are rolled back; needs ${p.end_sessions_needs})`),
      )
    : null;
  const rows = p.tables.map((t) =>
    h(
      "tr",
      { class: (t.live_rows ?? 0) !== t.backup_rows ? "changed" : "" },
      h("td", {}, t.name),
      h("td", { class: "num" }, fmt.count(t.backup_rows)),
      h("td", { class: "num" }, t.live_rows === null ? "not there" : fmt.count(t.live_rows)),
    ),
  );
  put(m.body, 
    h(
      "p",
      {},
      "Everything in ",
      h("strong", {}, p.target_database),
      ` on ${p.target} will be replaced by the backup of `,
      h("strong", {}, fmt.when(p.created_at)),
      p.format === 1 ? " (a file of the old system)" : "",
      ". Changes made since then are lost.",
    ),
    untrusted,
    missing,
    sessions,
    h(
      "p",
      { class: "summary" },
      `Backup: ${fmt.count(p.backup_rows)} rows · Database now: ${fmt.count(p.live_rows)} rows · ${lost} of ${p.tables.length} tables differ`,
    ),
    p.warnings.length ? h("ul", { class: "warnings" }, p.warnings.map((w) => h("li", {}, w))) : null,
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "compact", "data-testid": "preview-tables" },
        h("thead", {}, h("tr", {}, h("th", {}, "Table"), h("th", { class: "num" }, "In the backup"), h("th", { class: "num" }, "In the database now"))),
        h("tbody", {}, rows),
      ),
    ),
    h("label", { class: "check" }, safety, " Take a safety backup first (recommended: it lets you undo this restore)"),
    h("label", { for: "confirm-name", id: "confirm-help" }, "To confirm, type the database name ", h("code", {}, p.target_database), ":"),
    confirm,
    h("div", { class: "actions" }, h("button", { class: "secondary", onclick: () => m.close() }, "Cancel"), go),
  );
  const roles = () => (p.missing_roles.length === 0 ? null : ownerRoles.checked ? "owner" : "create");
  go.addEventListener("click", () => void run(m, p, safety.checked, confirm.value.trim(), p.dev_key && trust.checked, hooks, roles(), endSessions.checked));
  confirm.focus();
}

async function run(m: Modal, p: RestorePreview, safety: boolean, name: string, trustDevKey: boolean, hooks: RestoreHooks, roles: "create" | "owner" | null, endSessions: boolean) {
  const view = progressView(`Restoring ${p.target_database}`, () => void api.cancelJob());
  // Open until it ends: its progress, the result and the undo are here.
  m.lock(true);
  put(
    m.body,
    view.el,
    h("p", { class: "muted small", "data-testid": "restore-running" }, "This window stays open until the restore ends. Cancel stops it before anything is committed: the database then stays as it was."),
  );
  let result: RestoreResult;
  try {
    result = await api.restore(p.what, name, safety, trustDevKey, view.update, roles, endSessions);
  } catch (e) {
    m.lock(false);
    showError(m, e);
    return;
  }
  m.lock(false);
  const undo = result.safety_backup_id;
  put(m.body, 
    h(
      "div",
      { class: "success", role: "status", "data-testid": "restore-result" },
      h("strong", {}, "The database was restored."),
      h("p", {}, `${fmt.count(result.rows)} rows in ${fmt.count(result.tables)} tables, in ${fmt.duration(result.duration_ms)}.`),
      undo ? h("p", { "data-testid": "safety-id" }, "The data as it was before is in safety backup ", h("code", {}, undo), ".") : null,
      result.warnings.length ? h("ul", { class: "warnings" }, result.warnings.map((w) => h("li", {}, w))) : null,
    ),
    h(
      "div",
      { class: "actions" },
      undo
        ? h(
            "button",
            {
              class: "secondary",
              "data-testid": "undo",
              onclick: () => {
                m.close();
                void openRestore(undo, hooks);
              },
            },
            "Undo (restore the safety backup)",
          )
        : null,
      h("button", { class: "primary", onclick: () => m.close() }, "Done"),
    ),
  );
  focusFirst(m, "button.primary");
}
