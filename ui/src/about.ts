// About: the app's version, the backup formats it writes and reads, where its settings are.

import type { AppStatus } from "./api";
import { h } from "./dom";
import { focusFirst, openModal } from "./modal";

export function aboutModal(status: AppStatus): void {
  const m = openModal("About SchoolVault");
  m.body.append(
    h(
      "dl",
      { class: "about", "data-testid": "about-box" },
      h("dt", {}, "Version"),
      h("dd", { "data-testid": "about-version" }, status.version),
      h("dt", {}, "Backups it writes"),
      h("dd", { "data-testid": "about-writes" }, `format ${status.format_writes} (.svb: encrypted with AES-256-GCM, compressed, every table checked against its SHA-256)`),
      h("dt", {}, "Backups it reads"),
      h("dd", { "data-testid": "about-reads" }, status.formats_read.map((f) => (f === 1 ? "format 1 (the old system's .enc files)" : `format ${f} (.svb)`)).join(", ")),
      h("dt", {}, "Settings file"),
      h("dd", {}, h("code", {}, status.config_path)),
      h("dt", {}, "Backup folder"),
      h("dd", {}, h("code", {}, status.backup_dir)),
    ),
    h("p", { class: "muted small" }, "A backup can also be read without SchoolVault: see docs/RECOVERY.md (Python and psql alone)."),
    h("div", { class: "actions" }, h("button", { class: "primary", onclick: () => m.close() }, "Close")),
  );
  focusFirst(m, "button.primary");
}
