// Progress that means something: a fraction only of a known total, never a full bar while
// tables remain.

import { describe, expect, test } from "vitest";
import type { Progress } from "./api";
import { progressFraction, progressView } from "./progress";

const p = (over: Partial<Progress>): Progress => ({ phase: "export", table: "public.students", tables_done: 1, tables_total: 6, rows: 10, bytes: 0, total_bytes: null, ...over });

describe("the progress bar", () => {
  test("a known total gives a fraction", () => {
    expect(progressFraction(p({ bytes: 25, total_bytes: 100 }))).toBe(0.25);
  });
  test("tables alone are no total: indeterminate (1 of 6 tables is not a sixth of the work)", () => {
    expect(progressFraction(p({ bytes: 5_000_000 }))).toBeNull();
    const v = progressView("Backing up");
    v.update(p({ bytes: 5_000_000 }));
    expect(v.el.querySelector("progress")!.hasAttribute("value")).toBe(false);
    expect(v.el.textContent).toContain("1 of 6 tables");
  });
  test("an estimate passed is no longer a total: indeterminate, not full", () => {
    expect(progressFraction(p({ bytes: 150, total_bytes: 100 }))).toBeNull();
    const v = progressView("Backing up");
    v.update(p({ bytes: 50, total_bytes: 100 }));
    expect((v.el.querySelector("progress") as HTMLProgressElement).value).toBe(50);
    v.update(p({ bytes: 150, total_bytes: 100 }));
    expect(v.el.querySelector("progress")!.hasAttribute("value")).toBe(false);
  });
});
