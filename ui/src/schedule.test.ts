// The schedule without cron: the daily time and weekdays become the cron setting, and a setting
// of that shape is read back into them (anything else stays "advanced").

import { describe, expect, test } from "vitest";
import { cronOf, dailyOf } from "./schedule";

describe("schedule: every day at a time, on chosen weekdays", () => {
  test("written as cron", () => {
    expect(cronOf({ time: "02:00", days: [0, 1, 2, 3, 4, 5, 6] })).toBe("0 2 * * *");
    expect(cronOf({ time: "02:30", days: [1, 2, 3, 4, 5] })).toBe("30 2 * * 1-5");
    expect(cronOf({ time: "23:05", days: [6, 0] })).toBe("5 23 * * 0,6");
    expect(cronOf({ time: "07:00", days: [1, 3, 5] })).toBe("0 7 * * 1,3,5");
    expect(cronOf({ time: "07:00", days: [] })).toBeNull();
    expect(cronOf({ time: "25:00", days: [1] })).toBeNull();
    expect(cronOf({ time: "", days: [1] })).toBeNull();
  });

  test("read back from cron; other expressions are not daily", () => {
    expect(dailyOf("0 2 * * *")).toEqual({ time: "02:00", days: [0, 1, 2, 3, 4, 5, 6] });
    expect(dailyOf(" 30  2 * * 1-5 ")).toEqual({ time: "02:30", days: [1, 2, 3, 4, 5] });
    expect(dailyOf("5 23 * * 0,6")).toEqual({ time: "23:05", days: [0, 6] });
    expect(dailyOf("0 7 * * 7")).toEqual({ time: "07:00", days: [0] });
    for (const other of ["*/15 * * * *", "0 2 1 * *", "0 2 * * MON", "0 2,14 * * *", "61 2 * * *", "0 2 * *"]) expect(dailyOf(other)).toBeNull();
    for (const days of [[1, 2, 3, 4, 5], [0, 6], [0, 1, 2, 3, 4, 5, 6], [3]]) {
      const cron = cronOf({ time: "02:00", days })!;
      expect(dailyOf(cron)).toEqual({ time: "02:00", days });
    }
  });
});
