// Settings → Offsite copies: the address each destination type's fields build; the list with
// each destination's copies (and why some wait), Test, Remove (asked first, the files there are
// kept), Sync now, and the "Test and save" form, whose secret goes only in the `secret` argument,
// stays typed when the test fails, and is emptied once saved.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { AppStatus, DestinationRow, Settings, SyncRow } from "./api";
import * as fmt from "./format";
import type { Shell } from "./shell";
import { folderUrl, parseUrl, s3Url, syncLine, webdavUrl } from "./views/destinations";
import { settingsView } from "./views/settings";

describe("offsite: the address built from the form", () => {
  test("a folder is file:// and its path", () => {
    expect(folderUrl("/media/nas/schoolvault")).toBe("file:///media/nas/schoolvault");
    expect(folderUrl("  /media/usb/School Backups ")).toBe("file:///media/usb/School Backups");
    // What would end the path in a URL is escaped, so the engine reads the same folder.
    expect(folderUrl("/media/usb/a#1?x%")).toBe("file:///media/usb/a%231%3Fx%25");
    expect(folderUrl("C:\\Backups\\School")).toBe("file:///C:/Backups/School");
    expect(folderUrl("file:///already/a/url")).toBe("file:///already/a/url");
    expect(folderUrl("")).toBe("");
  });

  test("an S3 bucket has only the query parts that are set", () => {
    const f = { bucket: "school-backups", prefix: "", endpoint: "", region: "", pathStyle: false };
    expect(s3Url(f)).toBe("s3://school-backups");
    expect(s3Url({ ...f, bucket: " ", region: "eu-west-1" })).toBe("");
    expect(s3Url({ ...f, prefix: "/erp/daily/" })).toBe("s3://school-backups/erp/daily");
    expect(s3Url({ ...f, region: "eu-west-1" })).toBe("s3://school-backups?region=eu-west-1");
    expect(s3Url({ ...f, pathStyle: true })).toBe("s3://school-backups?path_style=true");
    expect(s3Url({ bucket: " school-backups ", prefix: "erp", endpoint: "https://s3.eu-central-1.wasabisys.com/", region: "eu-central-1", pathStyle: true })).toBe(
      "s3://school-backups/erp?endpoint=https://s3.eu-central-1.wasabisys.com&region=eu-central-1&path_style=true",
    );
    // With an endpoint the engine would assume path style: an unticked box says so.
    expect(s3Url({ ...f, endpoint: "http://127.0.0.1:9000" })).toBe("s3://school-backups?endpoint=http://127.0.0.1:9000&path_style=false");
    // No scheme: https.
    expect(s3Url({ ...f, endpoint: "s3.wasabisys.com", pathStyle: true })).toBe("s3://school-backups?endpoint=https://s3.wasabisys.com&path_style=true");
    // What would break the query is escaped.
    expect(s3Url({ ...f, endpoint: "https://minio.lan/s3?a=b&c" })).toBe("s3://school-backups?endpoint=https://minio.lan/s3%3Fa%3Db%26c&path_style=false");
  });

  test("a WebDAV address becomes webdav+https:// or webdav+http://", () => {
    expect(webdavUrl("https://nas.school.lan/dav/backups")).toBe("webdav+https://nas.school.lan/dav/backups");
    expect(webdavUrl("HTTP://nas.school.lan:8080/dav")).toBe("webdav+http://nas.school.lan:8080/dav");
    expect(webdavUrl(" nas.school.lan/dav ")).toBe("webdav+https://nas.school.lan/dav");
    expect(webdavUrl("webdav+https://nas.school.lan/dav")).toBe("webdav+https://nas.school.lan/dav");
    expect(webdavUrl("")).toBe("");
  });

  test("an address taken apart for editing builds the same address again", () => {
    const s3 = { bucket: "school-backups", prefix: "erp/daily", endpoint: "https://s3.eu-central-1.wasabisys.com", region: "eu-central-1", pathStyle: true };
    for (const f of [s3, { ...s3, prefix: "", region: "", pathStyle: false }, { ...s3, endpoint: "", pathStyle: false }, { ...s3, endpoint: "http://127.0.0.1:9000", pathStyle: false }]) {
      const parsed = parseUrl(s3Url(f));
      expect(parsed?.kind).toBe("s3");
      expect(s3Url(parsed!.s3!)).toBe(s3Url(f));
    }
    expect(parseUrl("s3://b/p?endpoint=http://127.0.0.1:9000")?.s3?.pathStyle).toBe(true);
    for (const p of ["/media/nas/schoolvault", "/media/usb/a#1?x%", "C:\\Backups\\School"]) {
      const parsed = parseUrl(folderUrl(p));
      expect(parsed).toEqual({ kind: "folder", path: p });
    }
    expect(parseUrl("/mnt/nas")).toEqual({ kind: "folder", path: "/mnt/nas" });
    const dav = parseUrl("webdav+https://dav.school.example/backups")!;
    expect(dav).toEqual({ kind: "webdav", address: "https://dav.school.example/backups" });
    expect(webdavUrl(dav.address!)).toBe("webdav+https://dav.school.example/backups");
    expect(parseUrl("ftp://x")).toBeNull();
  });

  test("what Sync now did, in a sentence", () => {
    const r: SyncRow = { destination: "NAS", uploaded: 2, owed: 0, findings: [], pruned: 0, error: null };
    expect(syncLine(r)).toBe("NAS: 2 backups copied.");
    expect(syncLine({ ...r, uploaded: 0 })).toBe("NAS: nothing to copy.");
    expect(syncLine({ ...r, uploaded: 1, owed: 3, pruned: 1 })).toBe("NAS: 1 backup copied, 3 still missing, 1 old copy removed.");
    expect(syncLine({ ...r, uploaded: 0, owed: 4, error: "It cannot be reached." })).toBe("NAS: could not be used. It cannot be reached.");
  });
});

const settings: Settings = { backup_dir: "/backups", start_at_login: false, schedule_enabled: true, cron: "0 2 * * *", timezone: "", catch_up: true, watchdog_minutes: 10, test_restore: true, keep_days: 30, keep_last: null, keep_weekly: null, keep_monthly: null, email_enabled: false, smtp_host: "", smtp_port: 587, smtp_security: "starttls", smtp_user: "", smtp_password_saved: false, email_from: "", email_to: [], school_admins: false, stale_hours: 48, weekly_digest: false };
const status: AppStatus = { configured: true, database: null, target: null, key: null, key_error: null, backup_dir: "/backups", config_path: "/config.toml", running: null, next_run: null, failure: null, offsite_behind: [], version: "0.1.0", format_writes: 3, formats_read: [1, 2, 3], key_recovery_pending: false, key_rotation_due: false, key_since: null };
const waitingSince = new Date(Date.now() - 3_600_000).toISOString();
const cloudDown = "The destination Cloud cannot be reached (connection timed out). The copy waits and is sent at the next try.";
const refused = "Destination cloud refused the access key (a test write). Check the access key and secret...";
const dest = (name: string, kind: string, url: string, more: Partial<DestinationRow> = {}): DestinationRow => ({ name, kind, url, enabled: true, access_key_id: null, secret_saved: false, keep_days: null, keep_last: null, keep_weekly: null, keep_monthly: null, bandwidth_kbps: null, lock_days: null, copies_done: 4, copies_pending: 0, copies_failed: 0, waiting_since: null, last_error: null, ...more });

let destinations: DestinationRow[] = [];
const calls: { cmd: string; args: Record<string, unknown> }[] = [];
const errors: unknown[] = [];
const toasts: string[] = [];
const shell: Shell = {
  error: (e) => void errors.push(e),
  toast: (t) => void toasts.push(t),
  busy: () => {},
  explain: (e) => `${(e as { message: string }).message}`,
  refreshStatus: async () => {},
  go: () => {},
  follow: () => {},
};

beforeEach(() => {
  calls.length = 0;
  errors.length = 0;
  toasts.length = 0;
  destinations = [
    dest("NAS", "folder", "file:///media/nas/schoolvault"),
    dest("Cloud", "s3", "s3://school-backups?endpoint=https://s3.wasabisys.com&path_style=false", { access_key_id: "WASABI7", secret_saved: true, copies_done: 3, copies_pending: 1, waiting_since: waitingSince, last_error: cloudDown }),
  ];
  document.body.innerHTML = "";
  mockIPC((cmd, raw) => {
    const args = (raw ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args });
    if (cmd === "get_settings") return settings;
    if (cmd === "schedule_preview") return [];
    if (cmd === "list_destinations") return destinations;
    if (cmd === "test_destination") {
      if (args.name === "Cloud") throw { code: "destination_unreachable", message: cloudDown };
      return null;
    }
    if (cmd === "remove_destination") {
      destinations = destinations.filter((d) => d.name !== args.name);
      return null;
    }
    if (cmd === "save_destination") {
      if (args.secret === "wrong") throw { code: "destination_auth", message: refused };
      const d = { ...(args.destination as DestinationRow), secret_saved: args.secret !== null, copies_pending: 4, copies_done: 0 };
      destinations = [...destinations, d];
      return d;
    }
    if (cmd === "sync_now")
      return [
        { destination: "NAS", uploaded: 0, owed: 0, findings: args.verify ? ["backup-3.svb was missing and was copied again"] : [], pruned: 1, error: null },
        { destination: "Cloud", uploaded: 0, owed: 1, findings: [], pruned: 0, error: cloudDown },
      ] satisfies SyncRow[];
    return null;
  });
});
afterEach(() => clearMocks());

const tick = async (n = 3) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};
const open = async () => {
  const view = await settingsView(shell, status);
  document.body.append(view);
  return view;
};
const q = <T extends HTMLElement = HTMLElement>(root: ParentNode, testid: string) => root.querySelector<T>(`[data-testid="${testid}"]`)!;
const row = (root: ParentNode, name: string) => root.querySelector<HTMLElement>(`[data-testid=destination-row][data-name="${name}"]`)!;
const type = (el: HTMLInputElement | HTMLSelectElement, value: string) => {
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? "change" : "input", { bubbles: true }));
};

describe("settings: offsite copies", () => {
  test("lists each destination: type, address, copies done / waiting / failed, and why copies wait", async () => {
    const view = await open();
    const section = q(view, "offsite");
    expect(section.querySelector("h2")?.textContent).toBe("Offsite copies");
    expect(section.querySelectorAll("[data-testid=destination-row]")).toHaveLength(2);
    const nas = row(section, "NAS");
    expect(nas.textContent).toContain("Folder");
    expect(nas.textContent).toContain("file:///media/nas/schoolvault");
    expect(q(nas, "dest-counts").textContent).toBe("4 done · 0 waiting · 0 failed");
    expect(nas.querySelector("[data-testid=dest-waiting]")).toBeNull();
    const cloud = row(section, "Cloud");
    expect(cloud.textContent).toContain("S3-compatible bucket");
    expect(cloud.textContent).toContain("as WASABI7");
    expect(q(cloud, "dest-counts").textContent).toBe("3 done · 1 waiting · 0 failed");
    expect(q(cloud, "dest-waiting").textContent).toBe(`waiting since ${fmt.since(waitingSince)}: ${cloudDown}`);
  });

  test("with none, says what a destination is for", async () => {
    destinations = [];
    const view = await open();
    expect(q(view, "no-destinations").textContent).toContain("Add one below");
  });

  test("Test says it works, or explains the error", async () => {
    const view = await open();
    q<HTMLButtonElement>(row(view, "NAS"), "dest-test").click();
    await tick();
    expect(calls.find((c) => c.cmd === "test_destination")?.args).toEqual({ name: "NAS" });
    expect(q(row(view, "NAS"), "dest-test-result").textContent).toMatch(/^Works/);
    expect(q(row(view, "NAS"), "dest-test-result").className).toBe("test-result ok");
    q<HTMLButtonElement>(row(view, "Cloud"), "dest-test").click();
    await tick();
    const result = q(row(view, "Cloud"), "dest-test-result");
    expect(result.className).toBe("test-result bad");
    expect(result.textContent).toBe(`The offsite destination cannot be reached ${cloudDown}`);
  });

  test("Remove asks first, says the files there are kept, and removes only when confirmed", async () => {
    const view = await open();
    q<HTMLButtonElement>(row(view, "Cloud"), "dest-remove").click();
    const dialog = () => document.querySelector<HTMLElement>("[role=dialog]");
    expect(dialog()?.textContent).toContain("Remove the destination Cloud?");
    expect(dialog()?.textContent).toContain("The backups already there are kept");
    Array.from(dialog()!.querySelectorAll("button")).find((b) => b.textContent === "Cancel")!.click();
    await tick();
    expect(calls.some((c) => c.cmd === "remove_destination")).toBe(false);
    expect(row(view, "Cloud")).not.toBeNull();

    q<HTMLButtonElement>(row(view, "Cloud"), "dest-remove").click();
    Array.from(dialog()!.querySelectorAll("button")).find((b) => b.textContent === "Remove destination")!.click();
    await tick();
    expect(calls.find((c) => c.cmd === "remove_destination")?.args).toEqual({ name: "Cloud" });
    expect(view.querySelectorAll("[data-testid=destination-row]")).toHaveLength(1);
    expect(toasts).toEqual(["Cloud was removed; the files there are kept."]);
    expect(errors).toEqual([]);
  });

  test("Sync now shows what happened at each destination", async () => {
    const view = await open();
    q<HTMLInputElement>(view, "sync-verify").checked = true;
    q<HTMLButtonElement>(view, "sync-now").click();
    await tick();
    expect(calls.find((c) => c.cmd === "sync_now")?.args.verify).toBe(true);
    expect(q(view, "sync-NAS").textContent).toBe("NAS: nothing to copy, 1 old copy removed.backup-3.svb was missing and was copied again");
    expect(q(view, "sync-NAS").className).toBe("ok");
    expect(q(view, "sync-Cloud").textContent).toBe(`Cloud: could not be used. ${cloudDown}`);
    expect(q(view, "sync-Cloud").className).toBe("bad");
    expect(view.querySelector("[data-testid=progress]")).toBeNull();
  });

  test("the form shows the fields of the chosen type and the address they build", async () => {
    const view = await open();
    const form = q(view, "add-destination");
    const group = (k: string) => form.querySelector<HTMLElement>(`[data-kind=${k}]`)!;
    expect([group("folder").hidden, group("s3").hidden, group("webdav").hidden]).toEqual([false, true, true]);
    type(q<HTMLInputElement>(form, "dest-path"), "/media/usb/schoolvault");
    expect(q(form, "dest-url").textContent).toBe("file:///media/usb/schoolvault");
    type(q<HTMLSelectElement>(form, "dest-kind"), "webdav");
    expect([group("folder").hidden, group("s3").hidden, group("webdav").hidden]).toEqual([true, true, false]);
    type(q<HTMLInputElement>(form, "dest-address"), "https://nas.school.lan/dav");
    expect(q(form, "dest-url").textContent).toBe("webdav+https://nas.school.lan/dav");
    type(q<HTMLSelectElement>(form, "dest-kind"), "s3");
    type(q<HTMLInputElement>(form, "dest-bucket"), "school-backups");
    // The path-style box follows the endpoint until it is clicked.
    type(q<HTMLInputElement>(form, "dest-endpoint"), "http://127.0.0.1:9000");
    expect(q<HTMLInputElement>(form, "dest-path-style").checked).toBe(true);
    expect(q(form, "dest-url").textContent).toBe("s3://school-backups?endpoint=http://127.0.0.1:9000&path_style=true");
  });

  test("Test and save with a wrong secret: the explained error beside the form, everything typed kept", async () => {
    const view = await open();
    const form = q(view, "add-destination");
    type(q<HTMLInputElement>(form, "dest-name"), "cloud");
    type(q<HTMLSelectElement>(form, "dest-kind"), "s3");
    type(q<HTMLInputElement>(form, "dest-bucket"), "school-backups");
    type(q<HTMLInputElement>(form, "dest-endpoint"), "https://s3.eu-central-1.wasabisys.com");
    type(q<HTMLInputElement>(form, "dest-region"), "eu-central-1");
    type(q<HTMLInputElement>(form, "dest-access-key"), "WASABI7");
    type(q<HTMLInputElement>(form, "dest-secret-key"), "wrong");
    q<HTMLButtonElement>(form, "dest-save").click();
    await tick();
    const result = q(form, "dest-result");
    expect(result.className).toBe("test-result bad");
    expect(result.textContent).toBe(`The offsite destination refused SchoolVault ${refused}`);
    expect(q<HTMLInputElement>(form, "dest-name").value).toBe("cloud");
    expect(q<HTMLInputElement>(form, "dest-bucket").value).toBe("school-backups");
    expect(q<HTMLInputElement>(form, "dest-access-key").value).toBe("WASABI7");
    expect(q<HTMLInputElement>(form, "dest-secret-key").value).toBe("wrong");
    const save = calls.find((c) => c.cmd === "save_destination")!;
    expect(save.args.secret).toBe("wrong");
    expect((save.args.destination as DestinationRow).url).toBe("s3://school-backups?endpoint=https://s3.eu-central-1.wasabisys.com&region=eu-central-1&path_style=true");
    expect(JSON.stringify(save.args.destination)).not.toContain("wrong");
    expect(view.querySelectorAll("[data-testid=destination-row]")).toHaveLength(2);
    expect(errors).toEqual([]);
  });

  test("Test and save: the row sent, the secret only as `secret`, then listed and the secret field emptied", async () => {
    const view = await open();
    const form = q(view, "add-destination");
    type(q<HTMLInputElement>(form, "dest-name"), "offsite-dav");
    type(q<HTMLSelectElement>(form, "dest-kind"), "webdav");
    type(q<HTMLInputElement>(form, "dest-address"), "https://dav.school.example/backups");
    type(q<HTMLInputElement>(form, "dest-user"), "it");
    type(q<HTMLInputElement>(form, "dest-password"), "s3cret-Passw0rd");
    type(q<HTMLInputElement>(form, "dest-keep-days"), "14");
    type(q<HTMLInputElement>(form, "dest-keep-monthly"), "12");
    type(q<HTMLInputElement>(form, "dest-bandwidth"), "2000");
    q<HTMLButtonElement>(form, "dest-save").click();
    await tick();
    const save = calls.find((c) => c.cmd === "save_destination")!;
    expect(save.args).toEqual({
      destination: dest("offsite-dav", "webdav", "webdav+https://dav.school.example/backups", { access_key_id: "it", keep_days: 14, keep_monthly: 12, bandwidth_kbps: 2000, copies_done: 0 }),
      secret: "s3cret-Passw0rd",
    });
    expect(q(form, "dest-result").className).toBe("test-result ok");
    expect(q(form, "dest-result").textContent).toContain("offsite-dav works and was saved");
    expect(q<HTMLInputElement>(form, "dest-password").value).toBe("");
    expect(q<HTMLInputElement>(form, "dest-name").value).toBe("");
    expect(document.body.innerHTML).not.toContain("s3cret-Passw0rd");
    expect(Array.from(document.querySelectorAll("input")).some((i) => i.value === "s3cret-Passw0rd")).toBe(false);
    const listed = row(view, "offsite-dav");
    expect(listed.textContent).toContain("WebDAV");
    expect(q(listed, "dest-counts").textContent).toBe("0 done · 4 waiting · 0 failed");
    expect(errors).toEqual([]);
  });

  test("Edit fills the form with the destination; saving it sends the same name, and no secret keeps the saved one", async () => {
    const view = await open();
    q<HTMLButtonElement>(row(view, "Cloud"), "dest-edit").click();
    const form = q(view, "add-destination");
    expect(q(form, "dest-form-title").textContent).toBe("Change Cloud");
    expect(q<HTMLSelectElement>(form, "dest-kind").value).toBe("s3");
    expect(q<HTMLInputElement>(form, "dest-bucket").value).toBe("school-backups");
    expect(q<HTMLInputElement>(form, "dest-endpoint").value).toBe("https://s3.wasabisys.com");
    expect(q<HTMLInputElement>(form, "dest-path-style").checked).toBe(false);
    expect(q<HTMLInputElement>(form, "dest-access-key").value).toBe("WASABI7");
    expect(q<HTMLInputElement>(form, "dest-secret-key").value).toBe("");
    expect(q<HTMLInputElement>(form, "dest-secret-key").placeholder).toContain("unchanged");
    expect(q(form, "dest-url").textContent).toBe("s3://school-backups?endpoint=https://s3.wasabisys.com&path_style=false");
    type(q<HTMLInputElement>(form, "dest-keep-monthly"), "12");
    type(q<HTMLInputElement>(form, "dest-lock-days"), "30");
    q<HTMLButtonElement>(form, "dest-save").click();
    await tick();
    const save = calls.find((c) => c.cmd === "save_destination")!;
    expect(save.args.secret).toBeNull();
    expect(save.args.destination).toMatchObject({ name: "Cloud", url: "s3://school-backups?endpoint=https://s3.wasabisys.com&path_style=false", access_key_id: "WASABI7", keep_monthly: 12, lock_days: 30 });
    expect(q(form, "dest-form-title").textContent).toBe("Add destination");
    // Cancel leaves the edit without saving.
    q<HTMLButtonElement>(row(view, "NAS"), "dest-edit").click();
    expect(q<HTMLInputElement>(form, "dest-path").value).toBe("/media/nas/schoolvault");
    q<HTMLButtonElement>(form, "dest-cancel").click();
    expect(q<HTMLInputElement>(form, "dest-name").value).toBe("");
    expect(q(form, "dest-form-title").textContent).toBe("Add destination");
    expect(calls.filter((c) => c.cmd === "save_destination").length).toBe(1);
  });

  test("an incomplete form is explained without calling the backend", async () => {
    const view = await open();
    const form = q(view, "add-destination");
    q<HTMLButtonElement>(form, "dest-save").click();
    await tick();
    expect(q(form, "dest-result").textContent).toContain("Give the destination a name");
    type(q<HTMLInputElement>(form, "dest-name"), "usb");
    q<HTMLButtonElement>(form, "dest-save").click();
    await tick();
    expect(q(form, "dest-result").textContent).toContain("Type the folder.");
    expect(calls.some((c) => c.cmd === "save_destination")).toBe(false);
  });
});
