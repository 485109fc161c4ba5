// What views may ask of the window around them.

export interface Shell {
  /** Show an error (mapped by code) with its action. */
  error: (e: unknown) => void;
  /** A short confirmation. */
  toast: (text: string) => void;
  /** A blocking "working…" line, or null to clear it. */
  busy: (text: string | null) => void;
  /** One line for an error, for inline notes. */
  explain: (e: unknown) => string;
  /** Reload the status (header, banner). */
  refreshStatus: () => Promise<void>;
  /** Go to a screen. */
  go: (screen: Screen) => void;
  /** How the screen being drawn updates itself in place when the app says something changed
   * (a job ended): the window calls `update` then, instead of drawing the whole screen again,
   * so what the person has open, typed or just been shown stays. */
  follow: (update: () => Promise<void>) => void;
}

export type Screen = "backups" | "activity" | "settings" | "setup" | "emergency";
