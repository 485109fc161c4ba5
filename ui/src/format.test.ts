import { describe, expect, test } from "vitest";
import * as fmt from "./format";
import { actionLabel, explain } from "./errors";

describe("format", () => {
  test("sizes and durations read like a person wrote them", () => {
    expect(fmt.bytes(512)).toBe("512 B");
    // The same cases as the engine's size::human test.
    expect(fmt.bytes(999)).toBe("999 B");
    expect(fmt.bytes(1000)).toBe("1.0 kB");
    expect(fmt.bytes(17_080_000)).toBe("17.1 MB");
    expect(fmt.bytes(1_500_000)).toBe("1.5 MB");
    expect(fmt.bytes(12_500_000)).toBe("12.5 MB");
    expect(fmt.bytes(99_960_000)).toBe("100 MB");
    expect(fmt.bytes(250_400_000)).toBe("250 MB");
    expect(fmt.bytes(999_960)).toBe("1.0 MB");
    expect(fmt.bytes(1_234_000_000)).toBe("1.2 GB");
    expect(fmt.bytes(100_500)).toBe("101 kB");
    expect(fmt.bytes(250_500_000)).toBe("251 MB");
    expect(fmt.duration(400)).toBe("<1 s");
    expect(fmt.duration(95_000)).toBe("1 min 35 s");
    expect(fmt.duration(3_900_000)).toBe("1 h 5 min");
  });
  test("a day reads like the dates beside it, without the time", () => {
    const iso = "2026-11-30T12:00:00Z";
    expect(fmt.day(iso)).toMatch(/^(Sun|Mon|Tue),? \d\d Nov 2026$/);
    expect(fmt.when(iso).startsWith(fmt.day(iso))).toBe(true);
    expect(fmt.day(null)).toBe("—");
  });
  test("ETA comes from the rate so far, and is unknown without a total", () => {
    expect(fmt.eta(50, 100, 10_000)).toBe(10);
    expect(fmt.eta(50, null, 10_000)).toBeNull();
    expect(fmt.eta(0, 100, 10_000)).toBeNull();
    expect(fmt.etaText(90)).toBe("about 2 min left");
  });
});

describe("errors map codes to words and actions in one place", () => {
  test("a refused login sends the user to Settings, with the backend's message", () => {
    const x = explain({ code: "db_auth", message: "The server rejected the password for user backup." });
    expect(x.title).toBe("The database refused the login");
    expect(x.detail).toContain("rejected the password");
    expect(actionLabel(x.action)).toBe("Open Settings");
  });
  test("a wrong key offers to import one; unknown codes still say something", () => {
    expect(explain({ code: "wrong_key", message: "m" }).action).toBe("import-key");
    expect(explain({ code: "brand_new", message: "m" }).title).toBe("Something went wrong");
    expect(explain(new Error("boom")).detail).toContain("boom");
  });
});
