//! The `schoolvault-app` binary: the desktop app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    schoolvault_app::run();
}
