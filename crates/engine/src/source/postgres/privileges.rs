//! Owners and privileges back into a restored database: which of the backup's roles this
//! server has, the choices when some are missing (create them without login, or one owner for
//! everything), and the SQL that gives every object its owner, its privileges, its policies
//! and the database its owner, run after the objects and the data (as `pg_restore` does).

use std::collections::{BTreeSet, HashSet};

use sqlx::postgres::PgConnection;

use crate::error::{Error, ErrorKind, Result};
use crate::source::model::{AclItem, Privileges, RoleInfo};
use crate::source::postgres::sql::quote_ident;
use crate::source::postgres::{db_error, PgTarget};

/// What to do about the roles a backup names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RoleChoice {
    /// Every role must exist on the server; a restore that names a missing one is refused.
    #[default]
    Require,
    /// Create the missing ones without login (an administrator gives them passwords).
    Create,
    /// Every object is owned by this (existing) role; privileges and policies of missing
    /// roles are left out (the owner has them all).
    Owner(String),
    /// A test restore: objects of missing roles stay with the restoring role, their
    /// privileges are left out, and the missing roles are reported.
    Lenient,
}

/// How the backup's roles map onto this server's.
#[derive(Debug, Clone)]
pub struct RoleMap {
    choice: RoleChoice,
    present: HashSet<String>,
    /// The backup's roles this server lacks (after `Create`: none).
    pub missing: Vec<String>,
    /// The roles this restore created (`Create`).
    pub created: Vec<String>,
    /// The restoring login is a superuser (only one may create event triggers).
    pub superuser: bool,
    /// Event triggers left out because the restoring login may not create them.
    pub skipped_event_triggers: Vec<String>,
}

/// Which of `roles` this server has.
async fn present_roles(
    conn: &mut PgConnection,
    target: &PgTarget,
    roles: &[String],
) -> Result<HashSet<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)")
            .bind(roles)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| db_error(&e, target).context("looking up the backup's roles"))?;
    Ok(rows.into_iter().map(|(r,)| r).collect())
}

/// `CREATE ROLE … NOLOGIN` with the attributes a restoring administrator may give (never
/// superuser), then the memberships among the created roles and the ones there.
fn create_roles_sql(roles: &[&RoleInfo], present: &HashSet<String>) -> String {
    let mut sql = String::new();
    for r in roles {
        let mut attrs = vec!["NOLOGIN"];
        if r.create_db {
            attrs.push("CREATEDB");
        }
        if r.create_role {
            attrs.push("CREATEROLE");
        }
        attrs.push(if r.inherit { "INHERIT" } else { "NOINHERIT" });
        if r.bypass_rls {
            attrs.push("BYPASSRLS");
        }
        sql.push_str(&format!(
            "CREATE ROLE {} {};\n",
            quote_ident(&r.name),
            attrs.join(" ")
        ));
    }
    let created: HashSet<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    for r in roles {
        for group in &r.member_of {
            if created.contains(group.as_str()) || present.contains(group) {
                sql.push_str(&format!(
                    "GRANT {} TO {};\n",
                    quote_ident(group),
                    quote_ident(&r.name)
                ));
            }
        }
    }
    sql
}

impl RoleMap {
    /// Look up the backup's roles on the server behind `conn` and apply `choice`: with
    /// `Create`, the missing ones are created now.
    ///
    /// # Errors
    /// `TargetMismatch` naming the missing roles (with `Require`), or naming the `Owner` role
    /// when it does not exist; database errors (creating roles needs `CREATEROLE`).
    pub async fn resolve(
        conn: &mut PgConnection,
        target: &PgTarget,
        privileges: &Privileges,
        choice: RoleChoice,
    ) -> Result<RoleMap> {
        let (superuser,): (bool,) =
            sqlx::query_as("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| db_error(&e, target).context("looking up the restoring login"))?;
        let skipped_event_triggers: Vec<String> = if superuser {
            Vec::new()
        } else {
            privileges
                .event_triggers
                .iter()
                .map(|e| e.name.clone())
                .collect()
        };
        let names: Vec<String> = privileges.roles.iter().map(|r| r.name.clone()).collect();
        let mut wanted: Vec<String> = names.clone();
        if let RoleChoice::Owner(owner) = &choice {
            wanted.push(owner.clone());
        }
        let mut present = present_roles(conn, target, &wanted).await?;
        if let RoleChoice::Owner(owner) = &choice {
            if !present.contains(owner) {
                return Err(Error::new(
                    ErrorKind::TargetMismatch,
                    format!("The role {owner} does not exist on {}; nothing was changed", target.server()),
                    "Give --owner a role the server has (the application's own login), or create it first",
                )
                .in_app("Create that role first, or choose to create the missing roles in the restore window"));
            }
        }
        let missing: Vec<String> = names
            .iter()
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        match &choice {
            RoleChoice::Require if !missing.is_empty() => {
                return Err(Error::new(
                    ErrorKind::TargetMismatch,
                    format!(
                        "The backup's objects belong to or are granted to roles that {} does not have: {}; nothing was changed",
                        target.server(),
                        missing.join(", ")
                    ),
                    "Create them first, or restore with --create-roles (made without login; give them passwords afterwards) or --owner ROLE (every object owned by one existing role, as pg_restore --no-owner --role does)",
                )
                .in_app("Create them first, or restore again choosing, in the restore window, to create them (without login) or to give everything to the login SchoolVault uses"));
            }
            RoleChoice::Create if !missing.is_empty() => {
                let infos: Vec<&RoleInfo> = privileges
                    .roles
                    .iter()
                    .filter(|r| missing.contains(&r.name))
                    .collect();
                let sql = create_roles_sql(&infos, &present);
                sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(&sql))
                    .await
                    .map_err(|e| {
                        db_error(&e, target).context(format_args!(
                            "creating the roles {} (the restoring login needs CREATEROLE)",
                            missing.join(", ")
                        ))
                    })?;
                present.extend(missing.iter().cloned());
                return Ok(RoleMap {
                    choice,
                    present,
                    missing: Vec::new(),
                    created: missing,
                    superuser,
                    skipped_event_triggers,
                });
            }
            _ => {}
        }
        Ok(RoleMap {
            choice,
            present,
            missing,
            created: Vec::new(),
            superuser,
            skipped_event_triggers,
        })
    }

    /// Every role present (no mapping): for tests and previews.
    pub fn identity(privileges: &Privileges) -> RoleMap {
        RoleMap {
            choice: RoleChoice::Require,
            present: privileges.roles.iter().map(|r| r.name.clone()).collect(),
            missing: Vec::new(),
            created: Vec::new(),
            superuser: true,
            skipped_event_triggers: Vec::new(),
        }
    }

    /// What a person should know after the restore: roles created without login, roles
    /// missing whose objects went to one owner or stayed with the restoring role.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.skipped_event_triggers.is_empty() {
            notes.push(format!(
                "event triggers not restored (only a superuser may create them; restore as one, or create them yourself): {}",
                self.skipped_event_triggers.join(", ")
            ));
        }
        if !self.created.is_empty() {
            notes.push(format!(
                "created the roles {} without login: give them passwords (ALTER ROLE … LOGIN PASSWORD …) before the application connects",
                self.created.join(", ")
            ));
        }
        if !self.missing.is_empty() {
            notes.push(match self.mapped_owner() {
                Some(o) => format!(
                    "roles not on this server: {}; their objects belong to {o}, and their privileges were left out",
                    self.missing.join(", ")
                ),
                None => format!(
                    "roles not on this server: {}; their objects belong to the restoring login, and their privileges were left out",
                    self.missing.join(", ")
                ),
            });
        }
        notes
    }

    fn mapped_owner(&self) -> Option<&str> {
        match &self.choice {
            RoleChoice::Owner(o) => Some(o),
            _ => None,
        }
    }

    /// The role that owns what `owner` owned; none: leave it with the restoring role.
    fn owner(&self, owner: &str) -> Option<String> {
        if let Some(o) = self.mapped_owner() {
            return Some(o.to_string());
        }
        (self.present.contains(owner) || owner.starts_with("pg_")).then(|| owner.to_string())
    }

    /// The role a privilege or policy of `role` goes to; none: left out.
    fn grantee(&self, role: &str, owner: Option<&str>) -> Option<String> {
        if let (Some(mapped), Some(original)) = (self.mapped_owner(), owner) {
            if role == original {
                return Some(mapped.to_string());
            }
        }
        (self.present.contains(role) || role.starts_with("pg_")).then(|| role.to_string())
    }
}

fn role_sql(role: &str) -> String {
    if role.is_empty() {
        "PUBLIC".into()
    } else {
        quote_ident(role)
    }
}

/// `GRANT …` statements for `acl` on `on` (`TABLE "s"."t"`), columns `(c)` when given.
fn grants_sql(
    out: &mut String,
    acl: &[AclItem],
    on: &str,
    column: Option<&str>,
    owner: Option<&str>,
    map: &RoleMap,
) {
    let cols = column.map(|c| format!(" ({c})")).unwrap_or_default();
    for item in acl {
        let grantee = if item.grantee.is_empty() {
            String::new()
        } else {
            match map.grantee(&item.grantee, owner) {
                Some(g) => g,
                None => continue,
            }
        };
        let plain: Vec<String> = item
            .privileges
            .iter()
            .filter(|(_, g)| !g)
            .map(|(p, _)| format!("{p}{cols}"))
            .collect();
        let grantable: Vec<String> = item
            .privileges
            .iter()
            .filter(|(_, g)| *g)
            .map(|(p, _)| format!("{p}{cols}"))
            .collect();
        if !plain.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {on} TO {};\n",
                plain.join(", "),
                role_sql(&grantee)
            ));
        }
        if !grantable.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {on} TO {} WITH GRANT OPTION;\n",
                grantable.join(", "),
                role_sql(&grantee)
            ));
        }
    }
}

/// The SQL that gives a restored database its owners, privileges and policies. `database`:
/// the name of a database this restore created (its owner and privileges too), or none.
pub fn privileges_sql(p: &Privileges, map: &RoleMap, database: Option<&str>) -> String {
    let mut sql = String::new();
    if let Some(db) = database {
        let on = format!("DATABASE {}", quote_ident(db));
        let owner = p.database_owner.as_deref().and_then(|o| map.owner(o));
        if let Some(o) = &owner {
            sql.push_str(&format!("ALTER {on} OWNER TO {};\n", quote_ident(o)));
        }
        if let Some(acl) = &p.database_acl {
            sql.push_str(&format!("REVOKE ALL ON {on} FROM PUBLIC;\n"));
            if let Some(o) = &owner {
                sql.push_str(&format!("REVOKE ALL ON {on} FROM {};\n", quote_ident(o)));
            }
            grants_sql(&mut sql, acl, &on, None, p.database_owner.as_deref(), map);
        }
    }
    for o in &p.owners {
        // A publication FOR ALL TABLES (or TABLES IN SCHEMA) may only be owned by a superuser:
        // mapped to one owner, it stays the restoring login's.
        if o.kind == "PUBLICATION" && map.mapped_owner().is_some() {
            continue;
        }
        if let Some(owner) = map.owner(&o.owner) {
            sql.push_str(&format!(
                "ALTER {} {} OWNER TO {};\n",
                o.kind,
                o.object,
                quote_ident(&owner)
            ));
        }
    }
    for g in &p.grants {
        let on = format!("{} {}", g.kind, g.object);
        if g.column.is_none() {
            // The list replaces the defaults: PUBLIC's and the owner's are taken back first.
            sql.push_str(&format!("REVOKE ALL ON {on} FROM PUBLIC;\n"));
            if let Some(owner) = map.owner(&g.owner) {
                sql.push_str(&format!(
                    "REVOKE ALL ON {on} FROM {};\n",
                    quote_ident(&owner)
                ));
            }
        }
        grants_sql(
            &mut sql,
            &g.acl,
            &on,
            g.column.as_deref(),
            Some(&g.owner),
            map,
        );
    }
    for d in &p.default_acls {
        let Some(role) = map.owner(&d.role) else {
            continue;
        };
        let prefix = match &d.schema {
            Some(s) => format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {s}",
                quote_ident(&role)
            ),
            None => format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", quote_ident(&role)),
        };
        let on = d.objects.as_str();
        if d.schema.is_none() {
            // A global entry replaces the built-in defaults; a schema's adds to them.
            sql.push_str(&format!("{prefix} REVOKE ALL ON {on} FROM PUBLIC;\n"));
            sql.push_str(&format!(
                "{prefix} REVOKE ALL ON {on} FROM {};\n",
                quote_ident(&role)
            ));
        }
        let mut grants = String::new();
        grants_sql(&mut grants, &d.acl, on, None, Some(&d.role), map);
        for line in grants.lines() {
            // `GRANT … ON TABLE x` → `… GRANT … ON TABLES`.
            sql.push_str(&format!("{prefix} {line}\n"));
        }
    }
    for pol in &p.policies {
        let mut roles: BTreeSet<String> = BTreeSet::new();
        for r in &pol.roles {
            match map.grantee(r, None) {
                Some(g) => {
                    roles.insert(quote_ident(&g));
                }
                None => {
                    roles.insert(match map.mapped_owner() {
                        Some(o) => quote_ident(o),
                        None => "CURRENT_USER".into(),
                    });
                }
            }
        }
        let to = if roles.is_empty() {
            "PUBLIC".to_string()
        } else {
            roles.into_iter().collect::<Vec<_>>().join(", ")
        };
        sql.push_str(&format!(
            "CREATE POLICY {} ON {} AS {} FOR {} TO {to}{}{};\n",
            pol.name,
            pol.table,
            pol.permissive,
            pol.command,
            pol.using
                .as_ref()
                .map(|u| format!(" USING ({u})"))
                .unwrap_or_default(),
            pol.check
                .as_ref()
                .map(|c| format!(" WITH CHECK ({c})"))
                .unwrap_or_default(),
        ));
    }
    // Last, as pg_dump does: created earlier, they would fire on every statement above.
    if map.superuser {
        for e in &p.event_triggers {
            sql.push_str(&e.sql);
            sql.push('\n');
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::model::{DefaultAcl, ObjectAcl, Ownership, Policy};

    fn sample() -> Privileges {
        Privileges {
            roles: vec![
                RoleInfo {
                    name: "erp_app".into(),
                    login: true,
                    ..RoleInfo::default()
                },
                RoleInfo {
                    name: "reporting".into(),
                    ..RoleInfo::default()
                },
            ],
            database_owner: Some("erp_app".into()),
            database_acl: None,
            owners: vec![Ownership {
                kind: "TABLE".into(),
                object: "\"public\".\"pupils\"".into(),
                owner: "erp_app".into(),
            }],
            grants: vec![
                ObjectAcl {
                    kind: "TABLE".into(),
                    object: "\"public\".\"pupils\"".into(),
                    column: None,
                    owner: "erp_app".into(),
                    acl: vec![
                        AclItem {
                            grantee: "erp_app".into(),
                            privileges: vec![("SELECT".into(), false), ("INSERT".into(), false)],
                        },
                        AclItem {
                            grantee: "reporting".into(),
                            privileges: vec![("SELECT".into(), true)],
                        },
                    ],
                },
                ObjectAcl {
                    kind: "TABLE".into(),
                    object: "\"public\".\"fees\"".into(),
                    column: Some("\"amount\"".into()),
                    owner: "erp_app".into(),
                    acl: vec![AclItem {
                        grantee: "reporting".into(),
                        privileges: vec![("SELECT".into(), false)],
                    }],
                },
            ],
            default_acls: vec![DefaultAcl {
                role: "erp_app".into(),
                schema: Some("\"public\"".into()),
                objects: "TABLES".into(),
                acl: vec![AclItem {
                    grantee: "reporting".into(),
                    privileges: vec![("SELECT".into(), false)],
                }],
            }],
            event_triggers: Vec::new(),
            policies: vec![Policy {
                name: "\"own_rows\"".into(),
                table: "\"public\".\"pupils\"".into(),
                permissive: "PERMISSIVE".into(),
                command: "SELECT".into(),
                roles: vec!["reporting".into()],
                using: Some("(class_id = 1)".into()),
                check: None,
            }],
        }
    }

    #[test]
    fn the_sql_gives_back_owners_grants_defaults_and_policies() {
        let p = sample();
        let sql = privileges_sql(&p, &RoleMap::identity(&p), Some("erp"));
        for want in [
            "ALTER DATABASE \"erp\" OWNER TO \"erp_app\";",
            "ALTER TABLE \"public\".\"pupils\" OWNER TO \"erp_app\";",
            "REVOKE ALL ON TABLE \"public\".\"pupils\" FROM PUBLIC;",
            "GRANT SELECT, INSERT ON TABLE \"public\".\"pupils\" TO \"erp_app\";",
            "GRANT SELECT ON TABLE \"public\".\"pupils\" TO \"reporting\" WITH GRANT OPTION;",
            "GRANT SELECT (\"amount\") ON TABLE \"public\".\"fees\" TO \"reporting\";",
            "ALTER DEFAULT PRIVILEGES FOR ROLE \"erp_app\" IN SCHEMA \"public\" GRANT SELECT ON TABLES TO \"reporting\";",
            "CREATE POLICY \"own_rows\" ON \"public\".\"pupils\" AS PERMISSIVE FOR SELECT TO \"reporting\" USING ((class_id = 1));",
        ] {
            assert!(sql.contains(want), "{want}\n{sql}");
        }
    }

    #[test]
    fn one_owner_for_everything_leaves_out_missing_roles() {
        let p = sample();
        let map = RoleMap {
            choice: RoleChoice::Owner("school".into()),
            present: ["school".to_string()].into_iter().collect(),
            missing: vec!["erp_app".into(), "reporting".into()],
            created: Vec::new(),
            superuser: false,
            skipped_event_triggers: Vec::new(),
        };
        let sql = privileges_sql(&p, &map, Some("erp"));
        assert!(
            sql.contains("ALTER TABLE \"public\".\"pupils\" OWNER TO \"school\";"),
            "{sql}"
        );
        assert!(
            sql.contains("GRANT SELECT, INSERT ON TABLE \"public\".\"pupils\" TO \"school\";"),
            "{sql}"
        );
        assert!(!sql.contains("reporting\";"), "{sql}");
        assert!(!sql.contains("erp_app"), "{sql}");
        assert!(sql.contains("FOR SELECT TO \"school\""), "{sql}");
        let lenient = RoleMap {
            choice: RoleChoice::Lenient,
            present: HashSet::new(),
            missing: vec!["erp_app".into(), "reporting".into()],
            created: Vec::new(),
            superuser: false,
            skipped_event_triggers: Vec::new(),
        };
        let sql = privileges_sql(&p, &lenient, None);
        assert!(!sql.contains("OWNER TO"), "{sql}");
        assert!(sql.contains("TO CURRENT_USER"), "{sql}");
    }

    #[test]
    fn created_roles_never_log_in_and_keep_their_groups() {
        let admin = RoleInfo {
            name: "erp_app".into(),
            login: true,
            superuser: true,
            create_db: true,
            member_of: vec!["readers".into(), "elsewhere".into()],
            ..RoleInfo::default()
        };
        let readers = RoleInfo {
            name: "readers".into(),
            inherit: true,
            ..RoleInfo::default()
        };
        let sql = create_roles_sql(&[&admin, &readers], &HashSet::new());
        assert!(
            sql.contains("CREATE ROLE \"erp_app\" NOLOGIN CREATEDB NOINHERIT;"),
            "{sql}"
        );
        assert!(!sql.contains("SUPERUSER"), "{sql}");
        assert!(sql.contains("GRANT \"readers\" TO \"erp_app\";"), "{sql}");
        assert!(!sql.contains("elsewhere"), "{sql}");
    }
}
