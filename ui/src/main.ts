// The window: navigation, the status line, the failure banner (until acknowledged), toasts,
// and the screens. First run shows the set-up instead.

import "./style.css";
import { api, type AppStatus } from "./api";
import { clear, h, put } from "./dom";
import { aboutModal } from "./about";
import { actionLabel, explain } from "./errors";
import * as fmt from "./format";
import type { Screen, Shell } from "./shell";
import { activityView } from "./views/activity";
import { backupsView } from "./views/backups";
import { emergencyView } from "./views/emergency";
import { settingsView } from "./views/settings";
import { setupView } from "./views/setup";

export async function start(root: HTMLElement): Promise<void> {
  let status: AppStatus | null = null;
  let screen: Screen = "backups";
  const nav = h("nav", { class: "nav", "aria-label": "Screens" });
  const banner = h("div", { class: "banner-slot" });
  const main = h("main", { class: "content", id: "content" });
  const toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  const busyLine = h("div", { class: "busy", hidden: true, "data-testid": "busy" });
  const footer = h("div", { class: "nav-foot muted small" });
  clear(root);
  root.append(h("div", { class: "layout" }, h("aside", { class: "sidebar" }, h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "SchoolVault"), nav, footer), h("div", { class: "page" }, banner, main)), toasts, busyLine);

  const shell: Shell = {
    error: (e) => {
      const x = explain(e);
      const label = actionLabel(x.action);
      const t = h(
        "div",
        { class: "toast bad", role: "alert", "data-testid": "error" },
        h("strong", {}, x.title),
        h("p", {}, x.detail),
        h(
          "div",
          { class: "row" },
          label && x.action !== "retry"
            ? h("button", { class: "small", onclick: () => { t.remove(); shell.go("settings"); } }, label)
            : null,
          h("button", { class: "small secondary", onclick: () => t.remove() }, "Dismiss"),
        ),
      );
      toasts.append(t);
    },
    toast: (text) => {
      const t = h("div", { class: "toast ok", "data-testid": "toast" }, text);
      toasts.append(t);
      setTimeout(() => t.remove(), 6000);
    },
    busy: (text) => {
      busyLine.hidden = text === null;
      busyLine.textContent = text ?? "";
    },
    explain: (e) => {
      const x = explain(e);
      return `${x.title}: ${x.detail}`;
    },
    refreshStatus: async () => {
      try {
        status = await api.status();
      } catch (e) {
        shell.error(e);
        return;
      }
      await render();
    },
    go: (s) => {
      screen = s;
      void render();
    },
    follow: () => {},
  };
  // How the screen shown updates itself in place (shell.follow), if it can.
  let update: (() => Promise<void>) | null = null;

  // Each render is numbered: a screen that took longer to load than the one asked for after it
  // (a quick switch) is dropped, never shown over the newer one.
  let renders = 0;
  const render = async () => {
    if (!status) return;
    const mine = ++renders;
    // A key whose recovery copy is owed resumes the first-run step where it was left.
    const setup = !status.configured || status.key_recovery_pending;
    if (!setup && screen === "setup") screen = "backups";
    const current: Screen = setup && screen !== "settings" && screen !== "emergency" ? "setup" : screen;
    renderBanner(status, current);
    renderChrome(status, setup, current);
    let follows: (() => Promise<void>) | null = null;
    const viewShell: Shell = { ...shell, follow: (u) => (follows = u) };
    let view: HTMLElement;
    if (current === "setup") view = await setupView(viewShell, status);
    else if (current === "activity") view = await activityView(viewShell);
    else if (current === "settings") view = await settingsView(viewShell, status);
    else if (current === "emergency") view = emergencyView(viewShell, status);
    else view = await backupsView(viewShell);
    if (mine !== renders) return;
    update = follows;
    put(main, view);
  };

  // The navigation and the sidebar's foot (the database, the next run, the version).
  const renderChrome = (s: AppStatus, setup: boolean, current: Screen) => {
    clear(nav);
    // The emergency page is reachable from every screen, the first-run set-up included (a new
    // computer after a disaster starts there).
    const items: [Screen, string][] = setup
      ? [["setup", "Set up"], ["emergency", "Disaster recovery"]]
      : [["backups", "Backups"], ["activity", "Activity"], ["settings", "Settings"], ["emergency", "Disaster recovery"]];
    for (const [id, label] of items) {
      nav.append(h("button", { class: `nav-item${current === id ? " active" : ""}${id === "emergency" ? " nav-emergency" : ""}`, "aria-current": current === id ? "page" : null, "data-testid": `nav-${id}`, onclick: () => shell.go(id) }, label));
    }
    put(footer,
      s.target ? h("div", { "data-testid": "target" }, s.target) : null,
      s.next_run ? h("div", { "data-testid": "next-run" }, `Next backup ${fmt.when(s.next_run)}`) : null,
      h("button", { type: "button", class: "link about-link", "data-testid": "about", onclick: () => aboutModal(s) }, `Version ${s.version} · About`),
    );
  };

  // Offsite destinations with no copy for the stale-backup time: said until they catch up
  // (the backups themselves go on; the copies wait).
  const offsiteBanner = (s: AppStatus) =>
    s.offsite_behind.length === 0
      ? null
      : h(
          "div",
          { class: "banner warn", role: "status", "data-testid": "offsite-banner" },
          h(
            "div",
            {},
            h("strong", {}, "Offsite copies are behind: until they catch up, the newest backups are only on this computer."),
            ...s.offsite_behind.map((line) => h("p", {}, line[0].toUpperCase() + line.slice(1))),
          ),
          h("button", { class: "small secondary", onclick: () => shell.go("settings") }, "Open settings"),
        );

  // No key without its recovery copy: said on every screen until the copy is saved (or its
  // export confirmed), with the way back to the step that saves it.
  const recoveryBanner = (s: AppStatus, current: Screen) =>
    !s.configured || !s.key_recovery_pending
      ? null
      : h(
          "div",
          { class: "banner bad", role: "alert", "data-testid": "recovery-banner" },
          h(
            "div",
            {},
            h("strong", {}, "The encryption key's recovery copy has not been saved."),
            h("p", {}, "Without it the backups cannot be opened if this computer is lost or replaced. Save the recovery sheet (or the key file) somewhere safe, away from this computer."),
          ),
          current === "setup"
            ? null
            : h("button", { class: "small secondary", "data-testid": "recovery-banner-go", onclick: () => shell.go("setup") }, "Save the recovery copy…"),
        );

  // The old system's advice, a new key every year: said once the key is older, until it is
  // rotated or the reminder dismissed.
  const rotationBanner = (s: AppStatus) =>
    !s.key_rotation_due
      ? null
      : h(
          "div",
          { class: "banner warn", role: "status", "data-testid": "rotation-banner" },
          h("div", {}, h("strong", {}, "The encryption key is over a year old."), h("p", {}, `In use since ${fmt.when(s.key_since)}. A new key every year limits what one lost or leaked key opens; older backups still open with the old key, which stays in the keychain.`)),
          h("button", { class: "small secondary", onclick: () => shell.go("settings") }, "Rotate key…"),
          h(
            "button",
            {
              class: "small secondary",
              "data-testid": "rotation-dismiss",
              onclick: async () => {
                try {
                  await api.keyRotationDismiss();
                  await shell.refreshStatus();
                } catch (e) {
                  shell.error(e);
                }
              },
            },
            "Dismiss",
          ),
        );

  const renderBanner = (s: AppStatus, current: Screen) => {
    if (!s.failure) {
      put(banner, recoveryBanner(s, current), offsiteBanner(s), rotationBanner(s));
      return;
    }
    const f = s.failure;
    const x = explain({ code: f.code, message: f.message });
    put(banner, 
      recoveryBanner(s, current),
      offsiteBanner(s),
      rotationBanner(s),
      h(
        "div",
        { class: "banner bad", role: "alert", "data-testid": "failure-banner" },
        h(
          "div",
          {},
          h("strong", {}, `The ${f.operation} of ${fmt.when(f.at)} failed: ${x.title}`),
          h("p", {}, f.message),
          f.email_error
            ? h("p", { "data-testid": "email-error" }, h("strong", {}, "The administrators were not emailed: "), f.email_error)
            : null,
        ),
        h(
          "button",
          {
            class: "small secondary",
            onclick: async () => {
              await api.acknowledgeFailure();
              await shell.refreshStatus();
            },
          },
          "Dismiss",
        ),
      ),
    );
  };

  await shell.refreshStatus();
  // The app says when what the window shows changed (a job started or ended, a failure, the
  // next run): the status is looked at then; the banners and the sidebar are redrawn, and the
  // screen only updates what it lists (shell.follow), once no job is running. Only a change of
  // set-up (configured, or the key's recovery copy owed) draws the screen again.
  const follow = async () => {
    try {
      const s = await api.status();
      const prev = status;
      status = s;
      if (s.configured !== prev?.configured || s.key_recovery_pending !== prev?.key_recovery_pending) {
        await render();
        return;
      }
      const setup = !s.configured || s.key_recovery_pending;
      const current: Screen = setup && screen !== "settings" && screen !== "emergency" ? "setup" : screen;
      renderBanner(s, current);
      renderChrome(s, setup, current);
      if (!s.running && update) await update();
    } catch {
      // the next event looks again
    }
  };
  await onStatusChanged(follow);
}

/** Call `f` whenever the app says the status changed. */
async function onStatusChanged(f: () => Promise<void>): Promise<void> {
  try {
    const { listen } = await import("@tauri-apps/api/event");
    await listen("status-changed", () => void f());
  } catch {
    // Outside the app (no event bridge): nothing to follow.
  }
}

async function boot() {
  if (import.meta.env.MODE === "mock") {
    const { installMock } = await import("./mock");
    installMock();
  }
  const root = document.getElementById("app");
  if (root) await start(root);
}

if (typeof document !== "undefined" && document.getElementById("app")) void boot();
