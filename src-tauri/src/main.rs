//! The `schoolvault-app` binary: the desktop app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // The app's database password lives in the keychain and goes only to the connection it
    // was saved for; a PGPASSWORD inherited from the desktop session would go to whatever
    // host the connection form names.
    std::env::remove_var("PGPASSWORD");
    schoolvault_app::run();
}
