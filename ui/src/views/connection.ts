// The database connection form, used by the first-run set-up and by Settings. The password
// goes to the backend (and from there to the keychain); it is never read back.

import { api, type DbForm } from "../api";
import { h, put } from "../dom";
import { explain } from "../errors";
import * as fmt from "../format";

export interface ConnectionForm {
  el: HTMLElement;
  values: () => { form: DbForm; password: string | null };
  /** Resolves true when the test succeeded. */
  test: () => Promise<boolean>;
}

export function connectionForm(initial: DbForm | null): ConnectionForm {
  const field = (label: string, input: HTMLElement, hint?: string) =>
    h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const host = h("input", { type: "text", name: "host", value: initial?.host ?? "127.0.0.1", "data-testid": "db-host" });
  const port = h("input", { type: "number", name: "port", min: 1, max: 65535, value: initial?.port ?? 5432, "data-testid": "db-port" });
  const name = h("input", { type: "text", name: "database", value: initial?.name ?? "", "data-testid": "db-name" });
  const user = h("input", { type: "text", name: "user", value: initial?.user ?? "postgres", "data-testid": "db-user" });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "off",
    placeholder: initial?.password_saved ? "saved in the keychain (type to change)" : "",
    "data-testid": "db-password",
  });
  const tls = h(
    "select",
    { name: "tls", "data-testid": "db-tls" },
    ["prefer", "require", "disable"].map((v) => h("option", { value: v, selected: (initial?.tls ?? "prefer") === v }, v === "prefer" ? "Use TLS when offered" : v === "require" ? "Require TLS" : "No TLS")),
  );
  const result = h("div", { class: "test-result", "data-testid": "connection-result", role: "status" });
  const values = () => ({
    form: {
      host: host.value.trim(),
      port: Number(port.value) || 5432,
      name: name.value.trim(),
      user: user.value.trim(),
      tls: tls.value,
      password_saved: initial?.password_saved === true && password.value === "",
    },
    password: password.value === "" ? null : password.value,
  });
  const test = async () => {
    result.className = "test-result muted";
    result.textContent = "Connecting…";
    try {
      const v = values();
      const r = await api.testConnection(v.form, v.password);
      result.className = "test-result ok";
      result.textContent = `Connected to ${r.target}: ${r.server_version}, ${fmt.count(r.tables)} tables, ${fmt.bytes(r.size)}.`;
      return true;
    } catch (e) {
      const x = explain(e);
      result.className = "test-result bad";
      put(result, h("strong", {}, x.title), " ", x.detail);
      return false;
    }
  };
  const el = h(
    "div",
    { class: "form-grid" },
    field("Server", host, "Name or address of the PostgreSQL server"),
    field("Port", port),
    field("Database", name, "The school ERP's database"),
    field("User", user),
    field("Password", password, "Kept in this computer's keychain, never in a file"),
    field("Encryption of the connection", tls),
    result,
  );
  return { el, values, test };
}
