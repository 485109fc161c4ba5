//! The database-neutral model every source adapter fills and the archive format serialises:
//! where a backup came from, its tables (with the columns their data holds) and its sequences.
//! An adapter never imports the format; the format never learns more of the engine than
//! [`SourceInfo::engine`].

use serde::{Deserialize, Serialize};

/// Where a backup came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceInfo {
    /// `postgresql`.
    pub engine: String,
    /// The server's version, e.g. `15.19`.
    pub server_version: String,
    /// The database name.
    pub database: String,
}

/// A table: where its data sits in the archive and which columns it holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableManifest {
    /// The number under `data/`.
    pub index: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// The columns in the COPY data, in order (generated columns are not stored).
    pub columns: Vec<String>,
}

impl TableManifest {
    /// `schema.name` for messages.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A sequence's state in the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SequenceValue {
    /// Schema name.
    pub schema: String,
    /// Sequence name.
    pub name: String,
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}

/// Who owns what and who may do what: restored after the objects, as `pg_restore` does, so a
/// restored database is usable by the application's own roles at once. Every role is named,
/// never its password; [`Privileges::roles`] lists the roles the rest refers to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Privileges {
    /// The roles named below, with their attributes (a new server may lack them).
    #[serde(default)]
    pub roles: Vec<RoleInfo>,
    /// The database's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_owner: Option<String>,
    /// The database's own privileges (`CONNECT`, `TEMPORARY`, `CREATE`); none: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_acl: Option<Vec<AclItem>>,
    /// Each object's owner, in an order that restores (schemas, types, routines, relations).
    #[serde(default)]
    pub owners: Vec<Ownership>,
    /// Objects (and columns) whose privileges differ from the default.
    #[serde(default)]
    pub grants: Vec<ObjectAcl>,
    /// `ALTER DEFAULT PRIVILEGES`.
    #[serde(default)]
    pub default_acls: Vec<DefaultAcl>,
    /// Row-level security policies.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Event triggers (`CREATE EVENT TRIGGER …`, then how each is enabled): only a superuser
    /// may create them, so a restore by anyone else names them instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_triggers: Vec<EventTrigger>,
}

/// An event trigger.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventTrigger {
    /// Its name.
    pub name: String,
    /// `CREATE EVENT TRIGGER …` and, when it is not enabled the default way, `ALTER EVENT
    /// TRIGGER … DISABLE | ENABLE REPLICA | ENABLE ALWAYS`.
    pub sql: String,
}

impl Privileges {
    /// Nothing captured (a backup made before owners and privileges travelled).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty() && self.owners.is_empty() && self.grants.is_empty()
    }
}

/// A role the backup refers to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleInfo {
    /// Its name.
    pub name: String,
    /// It may log in (its password is never in a backup).
    #[serde(default)]
    pub login: bool,
    /// A superuser.
    #[serde(default)]
    pub superuser: bool,
    /// May create databases.
    #[serde(default)]
    pub create_db: bool,
    /// May create roles.
    #[serde(default)]
    pub create_role: bool,
    /// Inherits the privileges of the roles it is a member of.
    #[serde(default)]
    pub inherit: bool,
    /// Bypasses row-level security.
    #[serde(default)]
    pub bypass_rls: bool,
    /// The roles (among those listed) it is a member of.
    #[serde(default)]
    pub member_of: Vec<String>,
}

/// One object's owner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ownership {
    /// The SQL word for the kind of object: `SCHEMA`, `TABLE`, `VIEW`, `MATERIALIZED VIEW`,
    /// `SEQUENCE`, `FOREIGN TABLE`, `TYPE`, `DOMAIN`, `FUNCTION`, `PROCEDURE`, `AGGREGATE`,
    /// `LARGE OBJECT`.
    pub kind: String,
    /// The object as SQL names it (quoted, qualified; a routine with its argument types).
    pub object: String,
    /// The owning role.
    pub owner: String,
}

/// One entry of an access control list: what a role (or `PUBLIC`) may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AclItem {
    /// The role; empty: `PUBLIC`.
    pub grantee: String,
    /// The privileges (`SELECT`, `INSERT`, `USAGE`, …), each with whether it may be granted on.
    pub privileges: Vec<(String, bool)>,
}

/// An object's (or a column's) privileges, as its access control list holds them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectAcl {
    /// `TABLE`, `SEQUENCE`, `SCHEMA`, `FUNCTION`, `PROCEDURE`, `TYPE`, `DOMAIN` (a view or
    /// materialized view is a `TABLE` here, as in `GRANT`).
    pub kind: String,
    /// The object as SQL names it.
    pub object: String,
    /// The column, for a column's privileges (quoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The object's owner (its default privileges are taken back before the list is granted).
    pub owner: String,
    /// The list, in its order.
    pub acl: Vec<AclItem>,
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE role [IN SCHEMA schema] …`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DefaultAcl {
    /// The role whose new objects get these privileges.
    pub role: String,
    /// The schema (quoted), or none for every schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `TABLES`, `SEQUENCES`, `FUNCTIONS`, `TYPES`, `SCHEMAS`.
    pub objects: String,
    /// The list.
    pub acl: Vec<AclItem>,
}

/// A row-level security policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Policy {
    /// Its name (quoted).
    pub name: String,
    /// The table (quoted, qualified).
    pub table: String,
    /// `PERMISSIVE` or `RESTRICTIVE`.
    pub permissive: String,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE`, `DELETE`.
    pub command: String,
    /// The roles it applies to; empty: `PUBLIC`.
    pub roles: Vec<String>,
    /// `USING (…)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<String>,
    /// `WITH CHECK (…)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

/// Another session connected to the database being restored (the ERP's users, its connection
/// pool, a report tool): what a replace restore shows before it starts and while it waits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The server's process id of the session.
    pub pid: i32,
    /// The login it connected as (empty when this login may not see it).
    pub user: String,
    /// The `application_name` it gave (empty if none).
    pub application: String,
    /// The client's address, if over the network and visible.
    pub client: Option<String>,
    /// Since when: its open transaction's start, else the connection's.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// `active`, `idle`, `idle in transaction`…; empty when this login may not see it.
    pub state: String,
    /// It has a transaction open (which holds its locks until it ends).
    pub in_transaction: bool,
}

impl Session {
    /// One line: "pid 4242 erp-web (user erp from 10.0.0.7, idle in transaction since
    /// 2026-12-03 09:12:03 UTC)".
    #[must_use]
    pub fn describe(&self) -> String {
        let mut who = format!("pid {}", self.pid);
        if !self.application.is_empty() {
            who.push(' ');
            who.push_str(&self.application);
        }
        let mut detail = Vec::new();
        let mut by = String::new();
        if !self.user.is_empty() {
            by = format!("user {}", self.user);
        }
        if let Some(c) = &self.client {
            by = if by.is_empty() {
                format!("from {c}")
            } else {
                format!("{by} from {c}")
            };
        }
        if !by.is_empty() {
            detail.push(by);
        }
        let state = self.state.as_str();
        let since = self
            .since
            .map(|s| format!("since {}", s.format("%Y-%m-%d %H:%M:%S UTC")));
        match (state.is_empty(), since) {
            (false, Some(s)) => detail.push(format!("{state} {s}")),
            (false, None) => detail.push(state.to_string()),
            (true, Some(s)) => detail.push(s),
            (true, None) => {}
        }
        if detail.is_empty() {
            who
        } else {
            format!("{who} ({})", detail.join(", "))
        }
    }
}

/// The sessions as one line each, "; "-joined, for a message.
#[must_use]
pub fn describe_sessions(sessions: &[Session]) -> String {
    sessions
        .iter()
        .map(Session::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How often a restore waiting for its locks says who holds them.
pub const WAIT_REPORT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a replace restore waits for the locks on the tables it replaces: other sessions' open
/// transactions on them (the ERP in use) hold it up until they end.
pub struct LockWait<'a> {
    /// Give up after this long, nothing changed (`None`: wait as long as it takes).
    pub timeout: Option<std::time::Duration>,
    /// End the other sessions on the database first (`pg_terminate_backend`, `KILL`).
    pub end_sessions: bool,
    /// Told every few seconds, while it waits, which sessions hold it up.
    pub on_wait: &'a (dyn Fn(&[Session]) + Send + Sync),
}

impl Default for LockWait<'_> {
    fn default() -> Self {
        LockWait {
            timeout: None,
            end_sessions: false,
            on_wait: &|_| {},
        }
    }
}
