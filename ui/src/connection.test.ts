// The connection form: every TLS mode with what it protects against, a CA file chosen in the
// native dialog (through the backend) for the modes that check the certificate, and the saved
// password kept for the server it was saved for.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import type { DbForm } from "./api";
import { connectionForm } from "./views/connection";

const saved: DbForm = { engine: "postgres", host: "erp.school.lan", port: 5432, name: "erp", user: "backup", tls: "prefer", ca_file: null, password_saved: true };
const calls: { cmd: string; args: Record<string, unknown> }[] = [];

beforeEach(() => {
  calls.length = 0;
  document.body.innerHTML = "";
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
    if (cmd === "pick_ca_file") return "/home/it/school-ca.pem";
    if (cmd === "test_connection") throw { code: "password_needed", message: "Type the password for backup@db2.school.lan:5432 in the Password field, then try again." };
    return null;
  });
});
afterEach(() => clearMocks());

const tick = () => new Promise((r) => setTimeout(r, 0));

function mount(initial: DbForm | null) {
  const f = connectionForm(initial);
  document.body.append(f.el);
  const q = <T extends Element>(id: string) => f.el.querySelector<T>(`[data-testid=${id}]`)!;
  const choose = (tls: string) => {
    const select = q<HTMLSelectElement>("db-tls");
    select.value = tls;
    select.dispatchEvent(new Event("change"));
  };
  return { f, q, choose };
}

describe("connection form", () => {
  test("takes MariaDB or MySQL too, with its usual port and login, and keeps a typed port", () => {
    const { f, q } = mount(null);
    const engine = q<HTMLSelectElement>("db-engine");
    expect(Array.from(engine.options).map((o) => o.value)).toEqual(["postgres", "mariadb"]);
    expect(f.values().form).toMatchObject({ engine: "postgres", port: 5432, user: "postgres" });
    engine.value = "mariadb";
    engine.dispatchEvent(new Event("change"));
    expect(f.values().form).toMatchObject({ engine: "mariadb", port: 3306, user: "root" });
    q<HTMLInputElement>("db-port").value = "3307";
    engine.value = "postgres";
    engine.dispatchEvent(new Event("change"));
    expect(f.values().form).toMatchObject({ engine: "postgres", port: 3307, user: "postgres" });
  });

  test("offers the five TLS modes, each with what it protects against", () => {
    const { q, choose } = mount(saved);
    const options = Array.from(q<HTMLSelectElement>("db-tls").options).map((o) => o.value);
    expect(options).toEqual(["disable", "prefer", "require", "verify-ca", "verify-full"]);
    expect(q<HTMLSelectElement>("db-tls").value).toBe("prefer");
    expect(q("db-tls-help").textContent).toContain("does not check who answers");
    choose("require");
    expect(q("db-tls-help").textContent).toContain("does not check who answers");
    choose("verify-full");
    expect(q("db-tls-help").textContent).toContain("safe choice on a network you do not fully trust");
  });

  test("the CA file is chosen through the backend's dialog and used only by the checking modes", async () => {
    const { f, q, choose } = mount(saved);
    expect(q<HTMLElement>("db-ca").hidden).toBe(true);
    choose("verify-ca");
    expect(q<HTMLElement>("db-ca").hidden).toBe(false);
    expect(f.values().form.ca_file).toBeNull();
    q<HTMLButtonElement>("db-ca-pick").click();
    await tick();
    expect(calls.map((c) => c.cmd)).toContain("pick_ca_file");
    expect(q("db-ca-file").textContent).toBe("/home/it/school-ca.pem");
    expect(f.values().form).toMatchObject({ tls: "verify-ca", ca_file: "/home/it/school-ca.pem" });
    choose("prefer");
    expect(f.values().form.ca_file).toBeNull();
    choose("verify-full");
    expect(f.values().form.ca_file).toBe("/home/it/school-ca.pem");
    q<HTMLButtonElement>("db-ca-clear").click();
    expect(f.values().form.ca_file).toBeNull();
  });

  test("another server asks for its own password, and the refusal is shown in words", async () => {
    const { f, q } = mount(saved);
    const host = q<HTMLInputElement>("db-host");
    host.value = "db2.school.lan";
    host.dispatchEvent(new Event("input"));
    expect(q<HTMLInputElement>("db-password").placeholder).toContain("the saved one is only for erp.school.lan");
    expect(await f.test()).toBe(false);
    expect(q("connection-result").textContent).toContain("Type the password for this server");
    host.value = "erp.school.lan";
    host.dispatchEvent(new Event("input"));
    expect(q<HTMLInputElement>("db-password").placeholder).toContain("saved in the keychain");
  });
});
