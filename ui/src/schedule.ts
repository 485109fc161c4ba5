// The schedule without cron: "every day at 02:00" on chosen weekdays, written as the same cron
// setting the engine reads (`M H * * days`), and read back from it when it has that shape.

/** Weekdays in the order a school reads them, with cron's numbers (0 = Sunday). */
export const WEEKDAYS: [number, string][] = [
  [1, "Mon"],
  [2, "Tue"],
  [3, "Wed"],
  [4, "Thu"],
  [5, "Fri"],
  [6, "Sat"],
  [0, "Sun"],
];

export interface DailySchedule {
  /** "HH:MM". */
  time: string;
  /** cron weekday numbers (0 = Sunday), sorted. */
  days: number[];
}

const pad = (n: number) => String(n).padStart(2, "0");

/** The weekday field `days` as a list (0–6), or null when it is not a plain list or range. */
function parseDays(field: string): number[] | null {
  if (field === "*") return [0, 1, 2, 3, 4, 5, 6];
  const days = new Set<number>();
  for (const part of field.split(",")) {
    const m = /^(\d)(?:-(\d))?$/.exec(part);
    if (!m) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from > 7 || to > 7 || to < from) return null;
    for (let d = from; d <= to; d++) days.add(d % 7);
  }
  return [...days].sort((a, b) => a - b);
}

/** `cron` as "every day at HH:MM on these weekdays", or null when it says something else. */
export function dailyOf(cron: string): DailySchedule | null {
  const m = /^(\d{1,2}) (\d{1,2}) \* \* (\S+)$/.exec(cron.trim().replace(/\s+/g, " "));
  if (!m) return null;
  const [minute, hour] = [Number(m[1]), Number(m[2])];
  if (minute > 59 || hour > 23) return null;
  const days = parseDays(m[3]);
  if (!days || days.length === 0) return null;
  return { time: `${pad(hour)}:${pad(minute)}`, days };
}

/** The cron expression for "every day at `time` on `days`" (all seven: `*`; Monday to Friday:
 * `1-5`); null when no day or no valid time is given. */
export function cronOf(s: DailySchedule): string | null {
  const m = /^(\d{1,2}):(\d{2})$/.exec(s.time);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) return null;
  const days = [...new Set(s.days.map((d) => d % 7))].sort((a, b) => a - b);
  if (days.length === 0) return null;
  let field = days.join(",");
  if (days.length === 7) field = "*";
  else if (days.length > 2 && days[days.length - 1] - days[0] === days.length - 1) field = `${days[0]}-${days[days.length - 1]}`;
  return `${Number(m[2])} ${Number(m[1])} * * ${field}`;
}
