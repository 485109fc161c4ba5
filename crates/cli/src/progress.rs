//! Progress on stderr: a bar on a terminal, JSON lines with `--json`, nothing otherwise. The
//! engine reports to [`Progress`]; this is only how the command line shows it.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use schoolvault_engine::progress::{Phase, Progress, ProgressEvent, Silent};

/// Progress for the terminal (a bar), as JSON lines (--json), or nothing (not a terminal).
pub(crate) fn progress_for(json: bool) -> Arc<dyn Progress> {
    if json {
        Arc::new(JsonLines(Mutex::new(
            Instant::now() - Duration::from_secs(1),
        )))
    } else if std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(Silent)
    }
}

/// Progress events as JSON lines on stderr; the time of the last line, to throttle them.
struct JsonLines(Mutex<Instant>);

impl Progress for JsonLines {
    fn report(&self, event: &ProgressEvent) {
        // At most ten lines a second, but every phase change.
        if let Ok(mut last) = self.0.lock() {
            let is_phase = event.table.is_none();
            if !is_phase && last.elapsed() < Duration::from_millis(100) {
                return;
            }
            *last = Instant::now();
        }
        if let Ok(line) = serde_json::to_string(event) {
            eprintln!("{line}");
        }
    }
}

/// A progress bar on the terminal (stderr), cleared when the command ends.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:<10} [{bar:30}] {bytes}/{total_bytes} {msg} (ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar { bar }
    }
}

impl Progress for Bar {
    fn report(&self, e: &ProgressEvent) {
        let phase = match e.phase {
            Phase::Connect => "connect",
            Phase::Snapshot => "snapshot",
            Phase::Export => "export",
            Phase::Finish => "finish",
            Phase::SafetyBackup => "safety",
            Phase::WaitLock => "waiting",
            Phase::Restore => "restore",
            Phase::Verify => "verify",
            Phase::Commit => "commit",
            Phase::Upload => "upload",
            Phase::Download => "download",
        };
        self.bar.set_prefix(phase);
        if let Some(total) = e.total_bytes {
            self.bar.set_length(total.max(e.bytes));
        }
        if e.bytes > 0 {
            self.bar.set_position(e.bytes);
        }
        if let Some(t) = &e.table {
            let msg = if e.tables_total > 0 {
                format!(
                    "{t} ({}/{} tables, {} rows)",
                    e.tables_done, e.tables_total, e.rows
                )
            } else {
                t.clone()
            };
            self.bar.set_message(msg);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
