// The database connection form, used by the first-run set-up and by Settings. The password
// goes to the backend (and from there to the keychain); it is never read back, and the saved one
// is only used for the server it was saved for. The TLS mode comes with what it protects against;
// the modes that check the server's certificate take a CA file, chosen in a native dialog.

import { api, type DbForm, type Engine, type Tls } from "../api";
import { h, put } from "../dom";
import { explain } from "../errors";
import * as fmt from "../format";

export interface ConnectionForm {
  el: HTMLElement;
  values: () => { form: DbForm; password: string | null };
  /** Resolves true when the test succeeded. */
  test: () => Promise<boolean>;
}

/** Each TLS mode's label and what it protects against (one line); a mode the engine adds and
 * this table lacks fails to compile. */
const TLS_LABELS: Record<Tls, [string, string]> = {
  disable: ["No TLS", "Nothing is encrypted: the password and the data cross the network readable. Only for a server on this computer."],
  prefer: ["TLS when the server offers it", "Encrypts when the server offers it, but does not check who answers: it stops listeners, not someone posing as the server."],
  require: ["Always TLS", "Always encrypts, but does not check who answers: it stops listeners, not someone posing as the server."],
  "verify-ca": ["TLS, certificate checked", "Encrypts and checks that the server's certificate is signed by the CA below (or a public one), but not the name in it."],
  "verify-full": ["TLS, certificate and name checked", "Encrypts and checks the certificate and the server's name: the safe choice on a network you do not fully trust."],
};

/** The TLS modes, in order of strength: mode, label and what it protects against. */
export const TLS_MODES: [Tls, string, string][] = (["disable", "prefer", "require", "verify-ca", "verify-full"] as const).map(
  (m) => [m, ...TLS_LABELS[m]] as [Tls, string, string],
);

/** Each engine's name in the form and its usual port; an engine the backend adds and this
 * table lacks fails to compile. */
export const ENGINES: Record<Engine, [string, number]> = {
  postgres: ["PostgreSQL", 5432],
  mariadb: ["MariaDB or MySQL", 3306],
};
const engineOf = (v: string): Engine => (v in ENGINES ? (v as Engine) : "postgres");

const verifies = (tls: Tls) => tls === "verify-ca" || tls === "verify-full";
const tlsOf = (v: string): Tls => TLS_MODES.find(([m]) => m === v)?.[0] ?? "prefer";

export function connectionForm(initial: DbForm | null): ConnectionForm {
  const field = (label: string, input: HTMLElement, hint?: string) =>
    h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  const host = h("input", { type: "text", name: "host", value: initial?.host ?? "127.0.0.1", "data-testid": "db-host" });
  const engine = h(
    "select",
    { name: "engine", "data-testid": "db-engine" },
    (Object.entries(ENGINES) as [Engine, [string, number]][]).map(([v, [label]]) => h("option", { value: v, selected: (initial?.engine ?? "postgres") === v }, label)),
  );
  const port = h("input", { type: "number", name: "port", min: 1, max: 65535, value: initial?.port ?? 5432, "data-testid": "db-port" });
  // The other engine's usual port follows the engine; a port the person typed stays.
  let lastEngine = engineOf(engine.value);
  engine.addEventListener("change", () => {
    const next = engineOf(engine.value);
    if (Number(port.value) === ENGINES[lastEngine][1]) port.value = String(ENGINES[next][1]);
    if (next === "mariadb" && user.value === "postgres") user.value = "root";
    if (next === "postgres" && user.value === "root") user.value = "postgres";
    lastEngine = next;
    showPassword();
  });
  const name = h("input", { type: "text", name: "database", value: initial?.name ?? "", "data-testid": "db-name" });
  const user = h("input", { type: "text", name: "user", value: initial?.user ?? "postgres", "data-testid": "db-user" });
  const password = h("input", {
    type: "password",
    name: "password",
    autocomplete: "off",
    placeholder: initial?.password_saved ? "saved in the keychain (type to change)" : "",
    "data-testid": "db-password",
  });
  const result = h("div", { class: "test-result", "data-testid": "connection-result", role: "status" });
  const tls = h(
    "select",
    { name: "tls", "data-testid": "db-tls" },
    TLS_MODES.map(([v, label]) => h("option", { value: v, selected: (initial?.tls ?? "prefer") === v }, `${v} — ${label}`)),
  );
  const tlsHelp = h("small", { class: "muted", "data-testid": "db-tls-help" });
  let caFile: string | null = initial?.ca_file ?? null;
  const caPath = h("code", { "data-testid": "db-ca-file" });
  const caPick = h("button", { type: "button", class: "small", "data-testid": "db-ca-pick" }, "Choose…");
  const caClear = h("button", { type: "button", class: "small", "data-testid": "db-ca-clear" }, "Clear");
  const caField = h(
    "div",
    { class: "field", "data-testid": "db-ca" },
    h("span", {}, "CA certificate"),
    h("div", { class: "ca-file" }, caPath, caPick, caClear),
    h("small", { class: "muted" }, "The certificate (PEM) of the authority that signed the server's; none: the public authorities."),
  );
  const showTls = () => {
    tlsHelp.textContent = TLS_MODES.find(([v]) => v === tls.value)?.[2] ?? "";
    caField.hidden = !verifies(tlsOf(tls.value));
    caPath.textContent = caFile ?? "none (the public authorities)";
    caClear.hidden = caFile === null;
  };
  tls.addEventListener("change", showTls);
  caPick.addEventListener("click", async () => {
    try {
      const picked = await api.pickCaFile();
      if (picked) caFile = picked;
    } catch (e) {
      const x = explain(e);
      result.className = "test-result bad";
      put(result, h("strong", {}, x.title), " ", x.detail);
    }
    showTls();
    caField.dispatchEvent(new Event("input", { bubbles: true }));
  });
  caClear.addEventListener("click", () => {
    caFile = null;
    showTls();
    caField.dispatchEvent(new Event("input", { bubbles: true }));
  });
  // The saved password stays with the server it was saved for.
  const serverChanged = () =>
    initial !== null && (host.value.trim() !== initial.host || (Number(port.value) || 5432) !== initial.port || user.value.trim() !== initial.user);
  const showPassword = () => {
    if (!initial?.password_saved) return;
    password.placeholder = serverChanged()
      ? `type the password for this server (the saved one is only for ${initial.host})`
      : "saved in the keychain (type to change)";
  };
  for (const input of [host, port, user]) input.addEventListener("input", showPassword);
  const values = () => ({
    form: {
      engine: engineOf(engine.value),
      host: host.value.trim(),
      port: Number(port.value) || ENGINES[engineOf(engine.value)][1],
      name: name.value.trim(),
      user: user.value.trim(),
      tls: tlsOf(tls.value),
      ca_file: verifies(tlsOf(tls.value)) ? caFile : null,
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
    field("Database engine", engine, "What the school ERP's database runs on"),
    field("Server", host, "Name or address of the database server"),
    field("Port", port),
    field("Database", name, "The school ERP's database"),
    field("User", user),
    field("Password", password, "Kept in this computer's keychain, never in a file"),
    h("label", { class: "field" }, h("span", {}, "Encryption of the connection"), tls, tlsHelp),
    caField,
    result,
  );
  showTls();
  return { el, values, test };
}
