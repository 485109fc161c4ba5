// Numbers, sizes, dates and durations as people read them.

import type { BackupKind } from "./bindings/BackupKind";
import type { Phase } from "./bindings/Phase";

// The engine's rule (crates/engine/src/size.rs), so the app, the CLI and the emails write one
// backup's size the same way: decimal units, one decimal below 100 of a unit, none above.
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  const rounded = (v: number) => (v < 99.95 ? Math.round(v * 10) / 10 : Math.round(v));
  let v = n / 1000;
  let i = 0;
  while (i < units.length - 1 && rounded(v) >= 1000) {
    v /= 1000;
    i++;
  }
  const r = rounded(v);
  return r < 100 ? `${r.toFixed(1)} ${units[i]}` : `${r} ${units[i]}`;
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return "<1 s";
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString("en-GB", {
    weekday: "short",
    day: "2-digit",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** The day alone, written as `when` writes it (e.g. "Mon, 30 Nov 2026"). */
export function day(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString("en-GB", { weekday: "short", day: "2-digit", month: "short", year: "numeric" });
}

/** A recent moment, short: the time alone today ("02:14"), else the day and time ("30 Nov, 02:14"). */
export function since(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return time;
  return `${d.toLocaleDateString("en-GB", { day: "2-digit", month: "short" })}, ${time}`;
}

/** Seconds left, from the work done so far and the time it took; null when unknown. */
export function eta(done: number, total: number | null | undefined, elapsedMs: number): number | null {
  if (!total || done <= 0 || done >= total || elapsedMs < 1000) return null;
  return Math.round(((total - done) * elapsedMs) / done / 1000);
}

export function etaText(seconds: number | null): string {
  if (seconds === null) return "";
  if (seconds < 60) return `about ${Math.max(1, seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

// Every phase the engine reports (`progress::Phase`, exported by ts-rs): a phase missing here
// does not compile.
const PHASES: Record<Phase, string> = {
  connect: "Connecting to the database",
  snapshot: "Taking a consistent snapshot",
  export: "Exporting tables",
  finish: "Finishing the file",
  safety_backup: "Taking a safety backup first",
  wait_lock: "Waiting for other sessions to let go of the tables",
  restore: "Restoring tables",
  verify: "Reading the backup back",
  commit: "Committing",
  upload: "Copying to the offsite destinations",
  download: "Downloading the backup from its destination",
};

export function phase(p: Phase): string {
  return PHASES[p] ?? p;
}

const KINDS: Record<BackupKind, string> = { manual: "Manual", scheduled: "Scheduled", safety: "Safety" };

export function kind(k: BackupKind | string): string {
  return KINDS[k as BackupKind] ?? k;
}
