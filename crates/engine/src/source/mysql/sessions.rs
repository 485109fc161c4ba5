//! The other sessions on a MariaDB/MySQL database: who is connected (the ERP's users, its
//! connection pool), which of them keep a transaction open (and so hold the tables a replace
//! restore swaps), and ending them.
//!
//! A replace restore swaps the restored tables in with one `RENAME TABLE`, which waits for the
//! metadata locks of every transaction that touched them. An ERP connection pool that sits in
//! an open transaction would make it wait: these functions let the restore say who is there
//! before it starts and who holds it up while it waits, and end them when the user asks.

use chrono::{NaiveDateTime, TimeZone, Utc};
use sqlx::Connection;

use crate::error::{Error, ErrorKind, Result};
use crate::source::mysql::snapshot::{exec, text, text_rows};
use crate::source::mysql::{my_error, number, MyTarget};
use crate::source::Session;

/// Every session of the server but this one, with what a [`Session`] shows, where `filter`
/// holds (an SQL condition on `p`, the process list, and `t`, the session's InnoDB transaction).
async fn sessions_where(target: &MyTarget, filter: &str) -> Result<Vec<Session>> {
    let mut conn = target.connect().await?;
    let rows = text_rows(
        &mut conn,
        target,
        &format!(
            "SELECT p.ID, p.USER, p.HOST, p.COMMAND, \
               DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL \
                             COALESCE(TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), p.TIME) SECOND, \
                           '%Y-%m-%d %H:%i:%s'), \
               t.trx_id IS NOT NULL, COALESCE(p.STATE, '') \
             FROM information_schema.PROCESSLIST p \
             LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID \
             WHERE p.ID <> CONNECTION_ID() AND p.USER <> 'system user' \
               AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed') AND ({filter}) \
             ORDER BY 5, 1"
        ),
    )
    .await;
    let _ = conn.close().await;
    Ok(rows?.iter().map(|r| session(r)).collect())
}

fn session(row: &[Option<String>]) -> Session {
    let in_transaction = text(row, 5) == "1";
    let command = text(row, 3);
    let state = match (command.as_str(), in_transaction) {
        ("Sleep", true) => "idle in transaction".to_string(),
        ("Sleep", false) => "idle".to_string(),
        ("Query", _) => {
            let s = text(row, 6);
            if s.is_empty() {
                "active".to_string()
            } else {
                format!("active: {}", s.to_lowercase())
            }
        }
        (other, _) => other.to_lowercase(),
    };
    // `HOST` is "address:port", or "localhost" over the socket.
    let host = text(row, 2);
    let client = match host.rsplit_once(':') {
        Some((addr, port)) if port.chars().all(|c| c.is_ascii_digit()) => Some(addr.to_string()),
        _ if host.is_empty() => None,
        _ => Some(host),
    };
    Session {
        pid: text(row, 0).parse().unwrap_or(i32::MAX),
        user: text(row, 1),
        application: String::new(),
        client,
        since: NaiveDateTime::parse_from_str(&text(row, 4), "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|t| Utc.from_utc_datetime(&t)),
        state,
        in_transaction,
    }
}

/// The sessions connected to `target`'s database, other than this one, oldest first. A login
/// without the `PROCESS` privilege sees only its own user's sessions.
///
/// # Errors
/// Connection errors.
pub async fn other_sessions(target: &MyTarget) -> Result<Vec<Session>> {
    sessions_where(target, "p.DB = DATABASE()").await
}

/// The sessions that may hold up a restore's `RENAME TABLE` or `DROP TRIGGER` running on
/// connection `waiting`: those with a transaction open (any database: a transaction's
/// metadata locks last until it ends), even when they wait themselves (behind the restore's
/// own pending lock, on another table they hold).
///
/// # Errors
/// Connection errors.
pub async fn holding_sessions(target: &MyTarget, waiting: Option<u64>) -> Result<Vec<Session>> {
    let not = waiting.map_or(String::new(), |id| format!(" AND p.ID <> {id}"));
    sessions_where(target, &format!("t.trx_id IS NOT NULL{not}")).await
}

/// End every other session on `target`'s database (`KILL CONNECTION`): their open transactions
/// roll back, as when the ERP is stopped. Returns how many were ended.
///
/// # Errors
/// `DbAuth` naming the privilege when the login may not end them.
pub async fn end_sessions(target: &MyTarget) -> Result<usize> {
    let mut conn = target.connect().await?;
    let result = async {
        let ids = text_rows(
            &mut conn,
            target,
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() \
             AND ID <> CONNECTION_ID() AND USER <> 'system user' \
             AND COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Killed')",
        )
        .await?;
        let mut ended = 0;
        for id in ids.iter().map(|r| text(r, 0)) {
            if !id.chars().all(|c| c.is_ascii_digit()) || id.is_empty() {
                continue;
            }
            match sqlx::Executor::execute(&mut conn, sqlx::raw_sql(&format!("KILL CONNECTION {id}")))
                .await
            {
                Ok(_) => ended += 1,
                // Gone meanwhile.
                Err(e) if number(&e) == Some(1094) => {}
                Err(e) if number(&e) == Some(1095) => {
                    let user = target.user();
                    return Err(Error::new(
                        ErrorKind::DbAuth,
                        format!(
                            "The database user {user} may not end other users' sessions on {}; nothing was changed",
                            target.describe()
                        ),
                        format!(
                            "Ask the users to close the ERP, or restore as root, or run `GRANT PROCESS, CONNECTION ADMIN ON *.* TO {user}` (SUPER before MariaDB 10.5, CONNECTION_ADMIN on MySQL)"
                        ),
                    ));
                }
                Err(e) => return Err(my_error(&e, target)),
            }
        }
        Ok(ended)
    }
    .await;
    let _ = conn.close().await;
    result
}

/// Run `sql` (which takes metadata locks) on `conn`, giving up after `wait.timeout` and telling
/// `wait.on_wait` every few seconds who holds it up (looked up through `live`).
///
/// # Errors
/// `InUse` naming the sessions when it gave up (the statement changed nothing); database
/// errors.
pub(crate) async fn exec_waiting(
    conn: &mut sqlx::mysql::MySqlConnection,
    target: &MyTarget,
    live: &MyTarget,
    sql: &str,
    wait: &crate::source::LockWait<'_>,
) -> Result<()> {
    // The server's largest wait (a year) stands for "as long as it takes".
    let secs = wait
        .timeout
        .map_or(31_536_000, |t| t.as_secs().clamp(1, 31_536_000));
    exec(
        conn,
        target,
        &format!("SET SESSION lock_wait_timeout = {secs}"),
    )
    .await?;
    let me = text_rows(conn, target, "SELECT CONNECTION_ID()")
        .await
        .ok()
        .and_then(|r| r.first().and_then(|r| text(r, 0).parse::<u64>().ok()));
    let mut run = std::pin::pin!(sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(sql)));
    let done = loop {
        tokio::select! {
            done = &mut run => break done,
            () = tokio::time::sleep(crate::source::WAIT_REPORT) => {
                // A failed look is no reason to stop.
                if let Ok(holders) = holding_sessions(live, me).await {
                    if !holders.is_empty() {
                        (wait.on_wait)(&holders);
                    }
                }
            }
        }
    };
    match done {
        Ok(_) => Ok(()),
        Err(e) if number(&e) == Some(1205) => {
            let holders = holding_sessions(live, me).await.unwrap_or_default();
            let who = if holders.is_empty() {
                "they ended meanwhile".to_string()
            } else {
                format!(
                    "holding them: {}",
                    crate::source::describe_sessions(&holders)
                )
            };
            Err(Error::new(
                ErrorKind::InUse,
                format!(
                    "Other sessions on {} kept the tables to restore locked for more than {secs} s, so the restore stopped and nothing was changed; {who}",
                    live.describe()
                ),
                "Ask the users to close the ERP, or end those sessions and restore again (--end-sessions), or wait longer (--lock-timeout SECS)",
            )
            .in_app("Ask the users to close the ERP, or restore again with “End these sessions” ticked"))
        }
        Err(e) => Err(my_error(&e, target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[&str]) -> Vec<Option<String>> {
        cols.iter().map(|c| Some((*c).to_string())).collect()
    }

    #[test]
    fn a_process_list_row_reads_as_a_session() {
        let s = session(&row(&[
            "42",
            "erp",
            "10.0.0.7:53422",
            "Sleep",
            "2026-12-04 09:12:03",
            "1",
            "",
        ]));
        assert_eq!(
            s.describe(),
            "pid 42 (user erp from 10.0.0.7, idle in transaction since 2026-12-04 09:12:03 UTC)"
        );
        let s = session(&row(&[
            "7",
            "erp",
            "localhost",
            "Query",
            "",
            "0",
            "Sending data",
        ]));
        assert_eq!(s.client.as_deref(), Some("localhost"));
        assert_eq!(s.state, "active: sending data");
        assert!(s.since.is_none());
    }
}
