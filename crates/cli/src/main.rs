//! `schoolvault`: the command-line program, a thin layer over `schoolvault-engine`.
//!
//! It parses arguments, opens the vault, calls one engine job, and prints the result for people
//! or, with `--json`, as one JSON document on stdout (progress as JSON lines on stderr). Exit
//! code 0 only on success; errors are one line on stderr that says what to do.
//!
//! This file only dispatches: [`args`] is the command line's shape, one module per family of
//! commands runs them and returns a [`output::Report`], and [`output`] prints it.

mod args;
mod backup;
mod backups;
mod email;
mod key;
mod offsite;
mod output;
mod progress;
mod restore;
mod schedule;
mod session;
mod settings;

use std::process::ExitCode;

use clap::Parser;
use schoolvault_engine::config::{self, Config};
use schoolvault_engine::keychain::{Keys, OsKeychain};
use schoolvault_engine::Result;

use crate::args::{Cli, Command, ExportFormat};
use crate::output::emit;
use crate::restore::RestoreArgs;
use crate::session::Session;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Few blocking threads: each has its own malloc arena, and parts are compressed on them.
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            output::error(&e, json);
            ExitCode::FAILURE
        }
    }
}

/// Run the command: the key and settings commands need no vault; the others open it first.
async fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    let keys = Keys::new(cli.key_file.as_deref(), Box::new(OsKeychain))?;
    if let Command::Key { action } = &cli.command {
        // Beside the catalog: since when each key is used (for the yearly rotation).
        let data_dir = cli
            .catalog
            .clone()
            .or_else(|| config::default_catalog().ok())
            .and_then(|c| c.parent().map(std::path::Path::to_path_buf));
        return emit(&key::command(action, &keys, data_dir.as_deref())?, json)
            .map(|()| ExitCode::SUCCESS);
    }
    let config_path = config::config_path()?;
    let settings = Config::load(&config_path)?;
    if let Err(e) = settings.validate() {
        // Said, never fatal: a backup or a restore must not wait for a settings fix.
        eprintln!("warning: the settings file {}: {e}", config_path.display());
    }
    if let Command::Config { action } = &cli.command {
        return emit(&settings::command(action, &config_path, settings)?, json)
            .map(|()| ExitCode::SUCCESS);
    }
    if let Command::Rescan { from: None } = &cli.command {
        // Before the vault is opened: a damaged list is what it rebuilds.
        return emit(&backups::rescan(&cli, keys, &settings).await?, json)
            .map(|()| ExitCode::SUCCESS);
    }
    // Dropped (and the progress bar cleared) once the result is printed.
    let session = Session::open(&cli, keys, settings, config_path).await?;
    let vault = &session.vault;
    let done = match cli.command {
        Command::Backup { kind, jobs } => emit(&backup::backup(&session, kind, jobs).await?, json),
        Command::List => emit(
            &backups::list(vault, &session.offsite.destinations).await?,
            json,
        ),
        Command::Inspect { backup } => emit(&backups::inspect(vault, &backup).await?, json),
        Command::Verify {
            backup,
            test_restore,
            scratch_db,
        } => {
            let report = backups::verify(&session, &backup, test_restore, scratch_db).await?;
            emit(&report, json)
        }
        Command::Restore {
            backup,
            yes,
            target_db,
            no_safety_backup,
            replace,
            create_db,
            trust_dev_key,
            create_roles,
            owner,
            lock_timeout,
            end_sessions,
        } => {
            let args = RestoreArgs {
                lock_timeout: lock_timeout.map(std::time::Duration::from_secs),
                end_sessions,
                backup,
                yes,
                target_db,
                no_safety_backup,
                replace,
                create_db,
                trust_dev_key,
                roles: match (create_roles, owner) {
                    (_, Some(role)) => schoolvault_engine::jobs::RoleChoice::Owner(role),
                    (true, None) => schoolvault_engine::jobs::RoleChoice::Create,
                    (false, None) => schoolvault_engine::jobs::RoleChoice::Require,
                },
            };
            emit(&restore::restore(&session, args).await?, json)
        }
        Command::Delete { id, yes } => emit(&backups::delete(vault, &id, yes).await?, json),
        Command::Rescan { from: Some(name) } => {
            emit(&offsite::rescan_from(&session, &name).await?, json)
        }
        Command::Destination { action } => {
            emit(&offsite::destination(&session, action).await?, json)
        }
        Command::Sync {
            verify,
            read_back,
            no_prune,
        } => {
            let synced = offsite::sync(&session, verify, read_back, !no_prune).await?;
            emit(&synced, json)?;
            if let Err(e) = synced.result() {
                // The report is printed (and is the JSON document); the exit code says that
                // a destination is behind.
                eprintln!("warning: {e}");
                return Ok(ExitCode::from(3));
            }
            Ok(())
        }
        Command::Decrypt { backup } => backups::decrypt(vault, &backup).await,
        Command::Export {
            format: ExportFormat::V1,
            out,
        } => emit(&backup::export_v1(&session, out.as_deref()).await?, json),
        Command::Prune { dry_run, policy } => {
            emit(&backups::prune(&session, dry_run, policy).await?, json)
        }
        Command::Schedule {
            action,
            cron,
            tz,
            policy,
        } => {
            let report = schedule::command(&session, action, cron, tz, policy).await?;
            emit(&report, json)
        }
        Command::History { limit } => emit(&backups::history(vault, limit).await?, json),
        Command::Notify { action } => emit(&email::command(&session, action).await?, json),
        // Handled before the vault is opened.
        Command::Key { .. } | Command::Config { .. } | Command::Rescan { from: None } => Ok(()),
    };
    done.map(|()| ExitCode::SUCCESS)
}
