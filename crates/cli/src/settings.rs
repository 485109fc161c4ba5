//! The settings file shared with the desktop app, from the command line: `config show` and
//! `config set-db` (the password, if any, goes to the OS keychain, never into the file).

use std::path::{Path, PathBuf};

use schoolvault_engine::config::{self, Config, DatabaseSettings};
use schoolvault_engine::keychain::OsKeychain;
use schoolvault_engine::source::Engine;
use schoolvault_engine::{Error, ErrorKind, Result};
use serde::{Serialize, Serializer};

use crate::args::ConfigAction;
use crate::output::Report;

/// The settings file after a `config` command: where it is and what it holds.
pub(crate) struct SettingsFile {
    path: PathBuf,
    settings: Config,
    /// `set-db` saved it (the text says so instead of showing the file).
    saved: bool,
}

impl Serialize for SettingsFile {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({"path": self.path, "settings": self.settings}).serialize(s)
    }
}

impl Report for SettingsFile {
    /// `show` prints the file as written (comments and all), or says it is not written yet.
    fn text(&self) -> Result<Vec<String>> {
        if self.saved {
            return Ok(vec![format!("Saved to {}", self.path.display())]);
        }
        let text = std::fs::read_to_string(&self.path)
            .unwrap_or_else(|_| "# (not written yet: defaults)".to_string());
        Ok(vec![
            format!("# {}", self.path.display()),
            text.trim_end().to_string(),
        ])
    }
}

/// A `config` command on the settings file at `path`, which holds `settings`.
///
/// # Errors
/// `set-db`: a bad TLS mode or CA file, keychain errors, writing the file.
pub(crate) fn command(
    action: &ConfigAction,
    path: &Path,
    mut settings: Config,
) -> Result<SettingsFile> {
    match action {
        ConfigAction::Show => Ok(SettingsFile {
            path: path.to_path_buf(),
            settings,
            saved: false,
        }),
        ConfigAction::SetDb {
            engine,
            host,
            port,
            name,
            user,
            tls,
            ca_file,
            password_stdin,
        } => {
            let engine = match engine.trim().to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => Engine::Postgres,
                "mariadb" | "mysql" => Engine::Mariadb,
                other => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!("The database engine {other:?} is unknown"),
                        "Write --engine postgres or --engine mariadb (also for MySQL)",
                    ))
                }
            };
            let tls = schoolvault_engine::source::postgres::Tls::parse(tls)?;
            let ca_file = match ca_file {
                Some(path) if tls.verifies() => Some(std::path::absolute(path).map_err(|e| {
                    Error::io(format_args!("reading the CA file {}", path.display()), &e)
                })?),
                Some(_) => {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "--ca-file is only used with --tls verify-ca or verify-full",
                        "Add --tls verify-full (or verify-ca), or leave out --ca-file",
                    ))
                }
                None => None,
            };
            if let Some(ca) = &ca_file {
                std::fs::metadata(ca).map_err(|e| {
                    Error::io(format_args!("reading the CA file {}", ca.display()), &e)
                })?;
            }
            if *password_stdin {
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| Error::io("reading the password from standard input", &e))?;
                let password = line.trim_end_matches(['\r', '\n']);
                schoolvault_engine::keychain::Keychain::set(
                    &OsKeychain,
                    config::DB_PASSWORD_ACCOUNT,
                    password,
                )?;
            }
            settings.database = Some(DatabaseSettings {
                engine,
                host: host.clone(),
                port: port.unwrap_or(engine.default_port()),
                name: name.clone(),
                user: user.clone(),
                tls,
                ca_file,
                password_saved: *password_stdin,
            });
            settings.save(path)?;
            Ok(SettingsFile {
                path: path.to_path_buf(),
                settings,
                saved: true,
            })
        }
    }
}
