// "Disaster recovery": the page for the day the school server is gone (stolen, burnt, dead
// disk). What is needed, then the steps in order, each with what this computer already has and
// the button that does it; the command-line equivalent below for a server without a screen.
// Reachable from every screen, the first-run set-up included.

import type { AppStatus } from "../api";
import { h } from "../dom";
import type { Screen, Shell } from "../shell";

export interface EmergencyStep {
  title: string;
  /** What this computer has already, or null when nothing can be told from here. */
  state: "done" | "todo" | null;
  state_text: string | null;
  text: string;
  /** The button: its label and the screen it opens. */
  button: { label: string; screen: Screen; testid: string } | null;
}

/** The steps for this computer's state (pure: what the page shows). */
export function emergencySteps(status: AppStatus): EmergencyStep[] {
  const setUp = status.configured && !status.key_recovery_pending;
  // Before the set-up is done, its screen is where the connection and the key are entered.
  const settings: Screen = setUp ? "settings" : "setup";
  return [
    {
      title: "A new database server",
      state: status.database ? "done" : "todo",
      state_text: status.target ? `Connected to ${status.target}` : "No database connection yet",
      text: "Install PostgreSQL on the computer that replaces the school server (the same major version or a newer one) and make sure this computer can reach it. SchoolVault creates the ERP's database there itself; the roles the ERP connects as are created by the restore, or by you.",
      button: { label: status.database ? "Check the connection" : "Connect to the server", screen: settings, testid: "emergency-connection" },
    },
    {
      title: "The encryption key, from its recovery sheet",
      state: status.key ? "done" : "todo",
      state_text: status.key ? `Key ${status.key.fingerprint} is on this computer: it must match the fingerprint on the sheet` : "No key on this computer yet",
      text: "Every backup opens only with the key it was made with. Import it from the recovery sheet that was printed or saved when the key was made (a file or the 64 characters on paper). Without it no backup can be read, by SchoolVault or anyone.",
      button: { label: status.key ? "Open Encryption key" : "Import the key", screen: settings, testid: "emergency-key" },
    },
    {
      title: "A copy of the backups",
      state: null,
      state_text: null,
      text: "The copies made offsite: a USB disk or NAS folder, a cloud bucket, a WebDAV server. On the Backups screen, “Find backups in…” lists what such a place holds (only each file's header is read); “Restore from file…” takes a single backup file, including the old system's .enc files.",
      button: setUp ? { label: "Open Backups", screen: "backups", testid: "emergency-backups" } : null,
    },
    {
      title: "Restore the newest backup",
      state: null,
      state_text: null,
      text: "Choose the newest backup and Restore…: it is downloaded and checked first, then restored into a new database in one transaction (if anything fails, nothing is left half-made). On a new server, choose to create the roles the backup names; give the ERP's role its password afterwards (ALTER ROLE … LOGIN PASSWORD …).",
      button: setUp ? { label: "Open Backups", screen: "backups", testid: "emergency-restore" } : null,
    },
    {
      title: "Back to work",
      state: null,
      state_text: null,
      text: "Point the ERP at the new server and check that it works (log in, open a few records). Then make sure backups run again here: the schedule, the offsite copies and the email alerts in Settings; a Back up now gives today's first backup.",
      button: setUp ? { label: "Open Settings", screen: "settings", testid: "emergency-settings" } : null,
    },
  ];
}

/** The same steps on a server without a screen. */
export const EMERGENCY_CLI = [
  "schoolvault key import < recovery-key.txt          # the key, from its recovery sheet",
  "schoolvault config set-db --host new-server --name postgres --user postgres --password-stdin",
  "schoolvault destination add cloud 's3://school-backups/erp?endpoint=…' --access-key-id … --secret-stdin",
  "schoolvault rescan --from cloud                     # lists the backups there",
  "schoolvault list",
  "schoolvault restore <id> --create-db erp --create-roles   # downloads, checks, restores",
].join("\n");

export function emergencyView(shell: Shell, status: AppStatus): HTMLElement {
  const steps = emergencySteps(status);
  return h(
    "div",
    { class: "view emergency", "data-testid": "emergency" },
    h("header", { class: "view-head" }, h("h1", {}, "Disaster recovery")),
    h("p", { class: "lead" }, "The school server is gone, or its database is damaged beyond a normal restore. With three things, the school's records come back on a new server:"),
    h(
      "ul",
      { class: "needs", "data-testid": "emergency-needs" },
      h("li", {}, h("strong", {}, "SchoolVault"), " on a computer that reaches the new server (this app, or the schoolvault command on the server itself)."),
      h("li", {}, h("strong", {}, "The recovery sheet"), " of the encryption key (printed or saved when the key was made)."),
      h("li", {}, h("strong", {}, "A copy of a backup"), ": an offsite copy (USB disk, NAS, cloud) or a backup file."),
    ),
    h(
      "ol",
      { class: "steps" },
      steps.map((s, i) =>
        h(
          "li",
          { class: `card step${s.state ? ` ${s.state}` : ""}`, "data-testid": `emergency-step-${i + 1}` },
          h("h2", {}, `${i + 1}. ${s.title}`),
          s.state_text ? h("p", { class: `state ${s.state ?? ""}` }, s.state === "done" ? "✓ " : "• ", s.state_text) : null,
          h("p", {}, s.text),
          s.button
            ? h("div", { class: "actions" }, h("button", { class: i === 0 || s.state === "todo" ? "primary" : "secondary", "data-testid": s.button.testid, onclick: () => shell.go(s.button!.screen) }, s.button.label))
            : null,
        ),
      ),
    ),
    h(
      "section",
      { class: "card subtle" },
      h("h2", {}, "Without a screen: the command line"),
      h("p", {}, "The package installs the schoolvault command beside the app; the same steps on the server itself:"),
      h("pre", { class: "cli", "data-testid": "emergency-cli" }, EMERGENCY_CLI),
    ),
  );
}
