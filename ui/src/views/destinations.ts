// Settings → Offsite copies: the destinations every backup is also copied to (a USB disk or NAS
// folder, an S3-compatible bucket, a WebDAV server), how their copies stand, Test, Remove (the
// files there stay), Sync now, and the form that adds one. The backend tests a destination
// before saving it. Its secret (S3 secret key, WebDAV password) goes only in `save_destination`'s
// `secret` argument, is never read back, and its field is emptied once saved.

import { api, type DestinationRow, type SyncRow } from "../api";
import { h, put } from "../dom";
import { explain } from "../errors";
import * as fmt from "../format";
import { confirmModal } from "../modal";
import { progressView } from "../progress";
import type { Shell } from "../shell";

export type DestinationKind = "folder" | "s3" | "webdav";

export const KINDS: [DestinationKind, string][] = [
  ["folder", "Folder"],
  ["s3", "S3-compatible bucket"],
  ["webdav", "WebDAV"],
];

const kindLabel = (k: string) => KINDS.find(([v]) => v === k)?.[1] ?? k;

/** `file://` and the folder; a Windows drive path becomes `file:///C:/…`. The characters that end
 * a URL's path (`?`, `#`) and `%` are escaped, so the engine reads the same folder back. */
export function folderUrl(path: string): string {
  let p = path.trim();
  if (p === "" || p.startsWith("file://")) return p;
  if (/^[A-Za-z]:[\\/]/.test(p)) p = `/${p.replace(/\\/g, "/")}`;
  return `file://${p.replace(/%/g, "%25").replace(/#/g, "%23").replace(/\?/g, "%3F")}`;
}

export interface S3Fields {
  bucket: string;
  prefix: string;
  /** e.g. https://s3.eu-central-1.wasabisys.com; empty: AWS. */
  endpoint: string;
  /** Empty: us-east-1 (the engine's default). */
  region: string;
  pathStyle: boolean;
}

// Kept readable (`endpoint=https://host`): `:` and `/` may stand in a query as they are.
const queryValue = (v: string) => encodeURIComponent(v).replace(/%3A/gi, ":").replace(/%2F/gi, "/");

/** `s3://BUCKET/PREFIX?endpoint=…&region=…&path_style=…`, with only the parts that are set. With an
 * endpoint the engine assumes path style, so an unticked box is then written as `path_style=false`. */
export function s3Url(f: S3Fields): string {
  if (f.bucket.trim() === "") return "";
  const prefix = f.prefix.trim().replace(/^\/+|\/+$/g, "");
  let endpoint = f.endpoint.trim().replace(/\/+$/, "");
  if (endpoint !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint)) endpoint = `https://${endpoint}`;
  const query: string[] = [];
  if (endpoint !== "") query.push(`endpoint=${queryValue(endpoint)}`);
  if (f.region.trim() !== "") query.push(`region=${queryValue(f.region.trim())}`);
  if (f.pathStyle) query.push("path_style=true");
  else if (endpoint !== "") query.push("path_style=false");
  return `s3://${f.bucket.trim()}${prefix ? `/${prefix}` : ""}${query.length ? `?${query.join("&")}` : ""}`;
}

/** `https://host/path` → `webdav+https://host/path` (`http://` likewise); no scheme means https. */
export function webdavUrl(address: string): string {
  const a = address.trim();
  if (a === "" || /^webdav(\+https?|s)?:\/\//i.test(a)) return a;
  const m = /^(https?):\/\/(.*)$/i.exec(a);
  return m ? `webdav+${m[1].toLowerCase()}://${m[2]}` : `webdav+https://${a}`;
}

/** A destination's address taken apart into the form's fields (the inverse of the builders
 * above), for editing; `null` for one the form cannot show. */
export function parseUrl(url: string): { kind: DestinationKind; path?: string; s3?: S3Fields; address?: string } | null {
  const u = url.trim();
  if (u.startsWith("/")) return { kind: "folder", path: u };
  if (u.startsWith("file://")) {
    let p = decodeURIComponent(u.slice("file://".length));
    if (/^\/[A-Za-z]:\//.test(p)) p = p.slice(1).replace(/\//g, "\\");
    return { kind: "folder", path: p };
  }
  const s3 = /^s3:\/\/([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/.exec(u);
  if (s3) {
    const query = new URLSearchParams(s3[3] ?? "");
    const endpoint = query.get("endpoint") ?? "";
    const style = query.get("path_style");
    return {
      kind: "s3",
      s3: { bucket: s3[1], prefix: decodeURIComponent(s3[2] ?? ""), endpoint, region: query.get("region") ?? "", pathStyle: style === null ? endpoint !== "" : ["true", "1", "yes"].includes(style) },
    };
  }
  const dav = /^webdav\+(https?):\/\/(.*)$/i.exec(u);
  if (dav) return { kind: "webdav", address: `${dav[1].toLowerCase()}://${dav[2]}` };
  return null;
}

/** What Sync now did at one destination, in a sentence. */
export function syncLine(r: SyncRow): string {
  if (r.error !== null) return `${r.destination}: could not be used. ${r.error}`;
  const parts = [r.uploaded === 0 ? "nothing to copy" : `${r.uploaded} backup${r.uploaded === 1 ? "" : "s"} copied`];
  if (r.owed > 0) parts.push(`${r.owed} still missing`);
  if (r.pruned > 0) parts.push(`${r.pruned} old cop${r.pruned === 1 ? "y" : "ies"} removed`);
  return `${r.destination}: ${parts.join(", ")}.`;
}

export async function offsiteSection(shell: Shell): Promise<HTMLElement> {
  const list = h("div", { "data-testid": "destinations" });
  const syncSlot = h("div");
  const syncResult = h("ul", { class: "sync-result", "data-testid": "sync-result", role: "status" });
  const verify = h("input", { type: "checkbox", "data-testid": "sync-verify" });
  const syncBtn = h("button", { type: "button", class: "secondary", "data-testid": "sync-now" }, "Sync now");

  const explained = (el: HTMLElement, e: unknown) => {
    const x = explain(e);
    el.className = "test-result bad";
    put(el, h("strong", {}, x.title), " ", x.detail);
  };

  const form = addForm(() => refresh());
  const refresh = async () => {
    try {
      render(await api.listDestinations());
    } catch (e) {
      explained(list, e);
    }
  };

  const render = (rows: DestinationRow[]) => {
    list.className = "";
    if (rows.length === 0) {
      put(list, h("p", { class: "muted", "data-testid": "no-destinations" }, "No offsite destinations yet. Add one below: every backup is then copied there as well, so a stolen or broken computer does not take the backups with it."));
      return;
    }
    put(
      list,
      h(
        "table",
        { class: "destinations" },
        h("thead", {}, h("tr", {}, ["Name", "Type", "Address", "Copies", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows.map(row)),
      ),
    );
  };

  const row = (d: DestinationRow) => {
    const result = h("div", { class: "test-result", "data-testid": "dest-test-result", role: "status" });
    const test = h("button", { type: "button", class: "small", "data-testid": "dest-test" }, "Test");
    test.addEventListener("click", async () => {
      test.disabled = true;
      result.className = "test-result muted";
      result.textContent = "Testing…";
      try {
        await api.testDestination(d.name);
        result.className = "test-result ok";
        result.textContent = "Works: a small file was written there, read back and deleted.";
      } catch (e) {
        explained(result, e);
      } finally {
        test.disabled = false;
      }
    });
    const remove = h("button", { type: "button", class: "small danger-text", "data-testid": "dest-remove", onclick: () => void removeDestination(d) }, "Remove");
    const edit = h("button", { type: "button", class: "small secondary", "data-testid": "dest-edit", onclick: () => form.edit(d) }, "Edit");
    const waiting = d.copies_pending + d.copies_failed > 0 || d.last_error !== null;
    return h(
      "tr",
      { "data-testid": "destination-row", "data-name": d.name },
      h("td", {}, h("strong", {}, d.name), d.enabled ? null : [" ", h("span", { class: "badge" }, "paused")]),
      h("td", {}, kindLabel(d.kind)),
      h(
        "td",
        { class: "address" },
        h("code", {}, d.url),
        d.access_key_id ? h("div", { class: "muted small" }, `as ${d.access_key_id}`) : null,
        d.lock_days !== null ? h("div", { class: "muted small", "data-testid": "dest-lock" }, `each copy locked for ${fmt.count(d.lock_days)} days (Object Lock)`) : null,
      ),
      h(
        "td",
        {},
        h("span", { "data-testid": "dest-counts" }, `${fmt.count(d.copies_done)} done · ${fmt.count(d.copies_pending)} waiting · ${fmt.count(d.copies_failed)} failed`),
        waiting
          ? h("div", { class: d.copies_failed > 0 || d.last_error ? "note bad" : "note muted", "data-testid": "dest-waiting" }, d.waiting_since ? `waiting since ${fmt.since(d.waiting_since)}` : "waiting", d.last_error ? `: ${d.last_error}` : null)
          : null,
        result,
      ),
      h("td", { class: "row-actions" }, test, edit, remove),
    );
  };

  const removeDestination = async (d: DestinationRow) => {
    const yes = await confirmModal(
      `Remove the destination ${d.name}?`,
      `SchoolVault stops copying backups to ${d.name} (${d.url}). The backups already there are kept: delete them there yourself if they are no longer needed.`,
      "Remove destination",
      true,
    );
    if (!yes) return;
    try {
      await api.removeDestination(d.name);
      shell.toast(`${d.name} was removed; the files there are kept.`);
    } catch (e) {
      shell.error(e);
    }
    await refresh();
  };

  syncBtn.addEventListener("click", async () => {
    syncBtn.disabled = true;
    put(syncResult);
    const view = progressView("Copying to the offsite destinations", () => void api.cancelJob());
    put(syncSlot, view.el);
    try {
      const rows = await api.syncNow(verify.checked, view.update);
      if (rows.length === 0) put(syncResult, h("li", { class: "muted" }, "There is no destination to copy to."));
      else
        put(
          syncResult,
          rows.map((r) =>
            h(
              "li",
              { class: r.error !== null ? "bad" : "ok", "data-testid": `sync-${r.destination}` },
              syncLine(r),
              r.findings.length ? h("ul", { class: "findings" }, r.findings.map((f) => h("li", {}, f))) : null,
            ),
          ),
        );
    } catch (e) {
      put(syncResult, h("li", { class: "bad" }, shell.explain(e)));
    } finally {
      put(syncSlot);
      syncBtn.disabled = false;
      await refresh();
    }
  });

  await refresh();
  return h(
    "section",
    { class: "card", "data-testid": "offsite" },
    h("h2", {}, "Offsite copies"),
    h("p", { class: "muted" }, "Every backup is also copied to these places. When one cannot be reached, its copy waits and is sent later; the backup itself never fails for it."),
    list,
    h("div", { class: "actions left" }, syncBtn, h("label", { class: "check" }, verify, " Also check the copies already there (slower)")),
    syncSlot,
    syncResult,
    form.el,
  );
}

export interface DestinationForm {
  el: HTMLElement;
  /** Fill the form with destination `d` to change it (its secret stays saved unless a new one is typed). */
  edit: (d: DestinationRow) => void;
}

/** The "Add destination" form: the address is built from the fields of the chosen type. Edit
 * fills it with a destination; saving under the same name changes that one. */
export function addForm(onSaved: () => Promise<void>): DestinationForm {
  const field = (label: string, input: HTMLElement, hint?: string) =>
    h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const text = (testid: string, placeholder = "") => h("input", { type: "text", placeholder, spellcheck: "false", autocomplete: "off", "data-testid": testid });
  const secret = (testid: string) => h("input", { type: "password", autocomplete: "new-password", "data-testid": testid });
  const num = (testid: string, placeholder = "—") => h("input", { type: "number", min: 0, placeholder, "data-testid": testid });

  const name = text("dest-name", "e.g. NAS, cloud, usb-disk");
  const kind = h("select", { "data-testid": "dest-kind" }, KINDS.map(([v, label]) => h("option", { value: v }, label)));
  const path = text("dest-path", "/media/nas/schoolvault");
  const bucket = text("dest-bucket", "school-backups");
  const prefix = text("dest-prefix", "optional, e.g. erp/daily");
  const endpoint = text("dest-endpoint", "empty for AWS; e.g. https://s3.eu-central-1.wasabisys.com");
  const region = text("dest-region", "us-east-1");
  const pathStyle = h("input", { type: "checkbox", "data-testid": "dest-path-style" });
  const accessKey = text("dest-access-key");
  const secretKey = secret("dest-secret-key");
  const address = text("dest-address", "https://nas.school.lan/remote.php/dav/files/it/backups");
  const user = text("dest-user");
  const password = secret("dest-password");
  const keepDays = num("dest-keep-days");
  const keepLast = num("dest-keep-last");
  const keepWeekly = num("dest-keep-weekly");
  const keepMonthly = num("dest-keep-monthly");
  const bandwidth = num("dest-bandwidth", "no limit");
  const lockDays = num("dest-lock-days", "no lock");
  const url = h("code", { "data-testid": "dest-url" });
  const result = h("div", { class: "test-result", "data-testid": "dest-result", role: "status" });
  const save = h("button", { type: "button", class: "primary", "data-testid": "dest-save" }, "Test and save");
  const cancel = h("button", { type: "button", class: "secondary", "data-testid": "dest-cancel", hidden: true }, "Cancel");
  const title = h("h3", { "data-testid": "dest-form-title" }, "Add destination");
  let editing: DestinationRow | null = null;

  // With an endpoint the engine addresses the bucket path style unless told otherwise; the box
  // follows the endpoint until it is clicked, so it shows what will be used.
  let pathStyleTouched = false;
  pathStyle.addEventListener("change", () => (pathStyleTouched = true));
  endpoint.addEventListener("input", () => {
    if (!pathStyleTouched) pathStyle.checked = endpoint.value.trim() !== "";
  });

  const groups: Record<DestinationKind, HTMLElement> = {
    folder: h("div", { class: "form-grid", "data-kind": "folder" }, field("Folder", path, "A USB disk or a mounted NAS share on this computer")),
    s3: h(
      "div",
      { class: "form-grid", "data-kind": "s3" },
      field("Bucket", bucket),
      field("Prefix", prefix, "A folder inside the bucket (optional)"),
      field("Endpoint", endpoint, "The provider's S3 address; empty for Amazon S3"),
      field("Region", region, "Empty: us-east-1"),
      h("label", { class: "check" }, pathStyle, " Path-style addresses (MinIO and most self-hosted servers)"),
      h("span"),
      field("Access key id", accessKey),
      field("Secret key", secretKey, "Kept in this computer's keychain, never in a file"),
      field("Lock each copy for (days)", lockDays, "Only for a bucket made with Object Lock: nobody can delete a copy before then, not even with these keys. Empty: no lock"),
    ),
    webdav: h(
      "div",
      { class: "form-grid", "data-kind": "webdav" },
      field("Address", address, "https://host/path (http:// only inside the school network)"),
      h("span"),
      field("User", user),
      field("Password", password, "Kept in this computer's keychain, never in a file"),
    ),
  };
  const current = () => kind.value as DestinationKind;
  const buildUrl = () =>
    current() === "folder"
      ? folderUrl(path.value)
      : current() === "s3"
        ? s3Url({ bucket: bucket.value, prefix: prefix.value, endpoint: endpoint.value, region: region.value, pathStyle: pathStyle.checked })
        : webdavUrl(address.value);
  const show = () => {
    for (const [k, el] of Object.entries(groups)) el.hidden = k !== current();
    url.textContent = buildUrl() || "—";
  };
  kind.addEventListener("change", show);

  const optional = (el: HTMLInputElement) => (el.value.trim() === "" || Number.isNaN(Number(el.value)) ? null : Math.floor(Number(el.value)));
  const fail = (message: string) => {
    const x = explain({ code: "invalid_input", message });
    result.className = "test-result bad";
    put(result, h("strong", {}, x.title), " ", x.detail);
  };

  save.addEventListener("click", async () => {
    const k = current();
    const destination: DestinationRow = {
      name: name.value.trim(),
      kind: k,
      url: buildUrl(),
      enabled: editing?.enabled ?? true,
      access_key_id: k === "s3" ? accessKey.value.trim() || null : k === "webdav" ? user.value.trim() || null : null,
      secret_saved: false,
      keep_days: optional(keepDays),
      keep_last: optional(keepLast),
      keep_weekly: optional(keepWeekly),
      keep_monthly: optional(keepMonthly),
      bandwidth_kbps: optional(bandwidth),
      lock_days: k === "s3" ? optional(lockDays) : null,
      copies_done: 0,
      copies_pending: 0,
      copies_failed: 0,
      waiting_since: null,
      last_error: null,
    };
    if (destination.name === "") return fail("Give the destination a name (e.g. NAS, cloud, usb-disk).");
    const missing = { folder: [path, "the folder"], s3: [bucket, "the bucket"], webdav: [address, "the server's address"] } as const;
    if (missing[k][0].value.trim() === "") return fail(`Type ${missing[k][1]}.`);
    const typed = k === "s3" ? secretKey.value : k === "webdav" ? password.value : "";
    save.disabled = true;
    result.className = "test-result muted";
    result.textContent = `Testing ${destination.name}: writing, reading back and deleting a small file…`;
    try {
      const saved = await api.saveDestination(destination, typed === "" ? null : typed);
      secretKey.value = "";
      password.value = "";
      reset();
      result.className = "test-result ok";
      result.textContent = `${saved.name} works and was saved: new backups are copied there, and the next sync copies the older ones.`;
      await onSaved();
    } catch (e) {
      const x = explain(e);
      result.className = "test-result bad";
      put(result, h("strong", {}, x.title), " ", x.detail);
    } finally {
      save.disabled = false;
    }
  });

  const reset = () => {
    for (const el of [name, path, bucket, prefix, endpoint, region, accessKey, address, user, keepDays, keepLast, keepWeekly, keepMonthly, bandwidth, lockDays]) el.value = "";
    secretKey.value = "";
    password.value = "";
    secretKey.placeholder = "";
    password.placeholder = "";
    pathStyle.checked = false;
    pathStyleTouched = false;
    editing = null;
    title.textContent = "Add destination";
    cancel.hidden = true;
    show();
  };
  cancel.addEventListener("click", () => {
    reset();
    put(result);
  });

  const edit = (d: DestinationRow) => {
    const parts = parseUrl(d.url);
    reset();
    editing = d;
    title.textContent = `Change ${d.name}`;
    cancel.hidden = false;
    name.value = d.name;
    const set = (el: HTMLInputElement, v: number | null) => (el.value = v === null ? "" : String(v));
    set(keepDays, d.keep_days);
    set(keepLast, d.keep_last);
    set(keepWeekly, d.keep_weekly);
    set(keepMonthly, d.keep_monthly);
    set(bandwidth, d.bandwidth_kbps);
    set(lockDays, d.lock_days);
    if (parts?.kind === "folder") path.value = parts.path ?? "";
    if (parts?.kind === "s3" && parts.s3) {
      bucket.value = parts.s3.bucket;
      prefix.value = parts.s3.prefix;
      endpoint.value = parts.s3.endpoint;
      region.value = parts.s3.region;
      pathStyle.checked = parts.s3.pathStyle;
      pathStyleTouched = true;
      accessKey.value = d.access_key_id ?? "";
    }
    if (parts?.kind === "webdav") {
      address.value = parts.address ?? "";
      user.value = d.access_key_id ?? "";
    }
    const kept = d.secret_saved ? "unchanged (saved in the keychain)" : "";
    secretKey.placeholder = kept;
    password.placeholder = kept;
    kind.value = parts?.kind ?? "folder";
    show();
    result.className = "test-result muted";
    result.textContent = `Changing ${d.name}: Test and save tests it again before anything is saved.`;
    el.scrollIntoView?.({ block: "nearest" });
    name.focus();
  };

  const el = h(
    "div",
    { class: "add-destination", "data-testid": "add-destination", oninput: show, onchange: show },
    title,
    h("div", { class: "form-grid" }, field("Name", name, "Letters, digits, - or _"), field("Type", kind)),
    Object.values(groups),
    h("div", { class: "dest-url muted small" }, "Address: ", url),
    h("h3", {}, "Keeping backups there"),
    h("div", { class: "form-grid four" }, field("Keep every backup for (days)", keepDays), field("Also keep the newest", keepLast), field("Weekly backups kept", keepWeekly), field("Monthly backups kept", keepMonthly)),
    h("small", { class: "muted" }, "Empty: the same as the backup folder."),
    h("div", { class: "form-grid" }, field("Upload limit (kB/s)", bandwidth, "Empty: as fast as the line allows")),
    h("div", { class: "actions left" }, save, cancel),
    result,
  );
  show();
  return { el, edit };
}
