//! The desktop app's end-to-end test lives in `tests/desktop.rs` (the CLI's in
//! `crates/cli/tests`); this library is empty.
