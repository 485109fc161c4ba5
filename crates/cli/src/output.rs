//! Printing a command's result: the one place that decides between text for people and one JSON
//! document (`--json`) on stdout, and that prints the final error.
//!
//! Each command returns a [`Report`]: a value that serializes to the JSON document and also says
//! its text. Warnings and advice go to stderr in both modes, so JSON readers see them too;
//! stdout holds only the result.

use std::io::Write;

use schoolvault_engine::{Error, ErrorKind, Result};
use serde::Serialize;

/// Print a line on stdout; a closed pipe (`| head`) is not an error worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// What a command has to say: its JSON document (the `Serialize` impl) or its text.
pub(crate) trait Report: Serialize {
    /// Warnings, said on stderr (as `warning: …`) before the result, in both modes.
    fn warnings(&self) -> &[String] {
        &[]
    }

    /// The result for people: the lines for stdout (none is fine). It may still fail, e.g. the
    /// next slot of a schedule that never matches.
    ///
    /// # Errors
    /// Whatever computing the text needs.
    fn text(&self) -> Result<Vec<String>>;

    /// Lines for stderr after the result: advice, and warnings about it. `json` says which mode
    /// printed the result, for notes that only make sense next to the text.
    fn notes(&self, _json: bool) -> Vec<String> {
        Vec::new()
    }
}

/// Print `report`: its warnings, then its JSON document (`json`) or text, then its notes.
///
/// # Errors
/// `Internal` if the JSON cannot be encoded; whatever [`Report::text`] returns.
pub(crate) fn emit(report: &impl Report, json: bool) -> Result<()> {
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    if json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| Error::new(ErrorKind::Internal, format!("encoding output: {e}"), ""))?;
        out!("{text}");
    } else {
        for line in report.text()? {
            out!("{line}");
        }
    }
    for note in report.notes(json) {
        eprintln!("{note}");
    }
    Ok(())
}

/// Print a command's failure: one `error:` line on stderr, and with `json` also the error's code
/// and message as a JSON document on stdout.
pub(crate) fn error(e: &Error, json: bool) {
    if json {
        let doc = serde_json::json!({"error": {"code": e.code(), "message": e.to_string()}});
        out!("{doc}");
    }
    eprintln!("error: {e}");
}
