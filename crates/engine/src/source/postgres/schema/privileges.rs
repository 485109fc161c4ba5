//! Who owns what and who may do what, read as data (not SQL) so a restore can map the roles:
//! each object's owner, the access control lists of objects and columns that differ from the
//! default, `ALTER DEFAULT PRIVILEGES`, row-level security policies, the database's owner and
//! privileges, and the roles all of these name (with their attributes, never a password).
//! `crate::source::postgres::privileges` turns it back into SQL for a restore.

use std::collections::BTreeSet;

use sqlx::postgres::PgConnection;

use super::rows;
use crate::error::Result;
use crate::source::model::{
    AclItem, DefaultAcl, EventTrigger, ObjectAcl, Ownership, Policy, Privileges, RoleInfo,
};
use crate::source::postgres::sql::{not_extension, USER_NS, USER_SCHEMAS};
use crate::source::postgres::{col, PgTarget};

/// Built-in roles exist on every server and are never listed (`pg_database_owner`, …).
fn builtin(role: &str) -> bool {
    role.starts_with("pg_")
}

/// The kind and object of every owned thing, in an order that restores: schemas, types,
/// routines, relations. Sequences that belong to a column follow their table's owner.
fn owners_sql() -> String {
    let ns_not_ext = not_extension("pg_namespace", "n.oid");
    let type_not_ext = not_extension("pg_type", "t.oid");
    let proc_not_ext = not_extension("pg_proc", "p.oid");
    let coll_not_ext = not_extension("pg_collation", "c.oid");
    let op_not_ext = not_extension("pg_operator", "o.oid");
    format!(
        "SELECT 1, 'SCHEMA', format('%I', n.nspname), pg_get_userbyid(n.nspowner)::text, n.nspname::text \
           FROM pg_namespace n WHERE {USER_NS} AND {ns_not_ext} \
         UNION ALL \
         SELECT 2, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, format('%I.%I', n.nspname, t.typname), \
                pg_get_userbyid(t.typowner)::text, n.nspname || '.' || t.typname \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE {USER_NS} AND {type_not_ext} AND (t.typtype IN ('e', 'd') \
                OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')) \
         UNION ALL \
         SELECT 3, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, \
                format('%I.%I(%s)', n.nspname, p.proname, CASE WHEN p.prokind = 'a' \
                       THEN coalesce(nullif(pg_get_function_identity_arguments(p.oid), ''), '*') \
                       ELSE pg_get_function_identity_arguments(p.oid) END), \
                pg_get_userbyid(p.proowner)::text, n.nspname || '.' || p.proname \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE p.prokind <> 'w' AND {USER_NS} AND {proc_not_ext} \
         UNION ALL \
         SELECT 4, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' \
                ELSE 'TABLE' END, format('%I.%I', n.nspname, c.relname), \
                pg_get_userbyid(c.relowner)::text, n.nspname || '.' || c.relname \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {USER_SCHEMAS} \
            AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                     AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))) \
         UNION ALL \
         SELECT 2, 'COLLATION', format('%I.%I', n.nspname, c.collname), pg_get_userbyid(c.collowner)::text, \
                n.nspname || '.' || c.collname \
           FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {USER_NS} AND {coll_not_ext} \
         UNION ALL \
         SELECT 3, 'OPERATOR', format('%I.%s (%s, %s)', n.nspname, o.oprname, \
                CASE WHEN o.oprleft = 0 THEN 'NONE' ELSE format_type(o.oprleft, NULL) END, \
                CASE WHEN o.oprright = 0 THEN 'NONE' ELSE format_type(o.oprright, NULL) END), \
                pg_get_userbyid(o.oprowner)::text, n.nspname || '.' || o.oprname \
           FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_NS} AND {op_not_ext} \
         UNION ALL \
         SELECT 5, 'PUBLICATION', format('%I', p.pubname), pg_get_userbyid(p.pubowner)::text, p.pubname::text \
           FROM pg_publication p \
         UNION ALL \
         SELECT 5, 'LARGE OBJECT', m.oid::text, pg_get_userbyid(m.lomowner)::text, lpad(m.oid::text, 10, '0') \
           FROM pg_largeobject_metadata m \
         ORDER BY 1, 5"
    )
}

/// Every non-default access control list, one row per privilege in the list's order:
/// kind, object, column, owner, entry number, grantee ('' for PUBLIC), privilege, grantable.
fn acls_sql() -> String {
    let ns_not_ext = not_extension("pg_namespace", "n.oid");
    let type_not_ext = not_extension("pg_type", "t.oid");
    let proc_not_ext = not_extension("pg_proc", "p.oid");
    // LEFT JOIN: an emptied list (`{}`, e.g. REVOKE ALL from PUBLIC and the owner) gives one
    // row without a grantee, so it is kept too.
    let explode = "LEFT JOIN LATERAL aclexplode({acl}) WITH ORDINALITY AS a(grantor, grantee, privilege, grantable, ord) ON true";
    let e = |acl: &str| explode.replace("{acl}", acl);
    format!(
        "SELECT * FROM ( \
         SELECT 1 AS k, 'SCHEMA' AS kind, format('%I', n.nspname) AS object, NULL::text AS col, \
                pg_get_userbyid(n.nspowner)::text AS owner, {item} \
           FROM pg_namespace n {} WHERE n.nspacl IS NOT NULL AND {USER_NS} AND {ns_not_ext} \
         UNION ALL \
         SELECT 2, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, format('%I.%I', n.nspname, t.typname), NULL, \
                pg_get_userbyid(t.typowner)::text, {item} \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace {} \
          WHERE t.typacl IS NOT NULL AND {USER_NS} AND {type_not_ext} AND t.typtype IN ('e', 'd', 'c') \
         UNION ALL \
         SELECT 3, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, \
                format('%I.%I(%s)', n.nspname, p.proname, CASE WHEN p.prokind = 'a' THEN oidvectortypes(p.proargtypes) \
                       ELSE pg_get_function_identity_arguments(p.oid) END), NULL, \
                pg_get_userbyid(p.proowner)::text, {item} \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace {} \
          WHERE p.proacl IS NOT NULL AND p.prokind <> 'w' AND {USER_NS} AND {proc_not_ext} \
         UNION ALL \
         SELECT 4, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, format('%I.%I', n.nspname, c.relname), NULL, \
                pg_get_userbyid(c.relowner)::text, {item} \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace {} \
          WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {USER_SCHEMAS} \
         UNION ALL \
         SELECT 5, 'TABLE', format('%I.%I', n.nspname, c.relname), format('%I', att.attname), \
                pg_get_userbyid(c.relowner)::text, {item} \
           FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace {} \
          WHERE att.attacl IS NOT NULL AND att.attnum > 0 AND NOT att.attisdropped \
            AND c.relkind IN ('r', 'p', 'v', 'm') AND {USER_SCHEMAS} \
         UNION ALL \
         SELECT 6, 'LARGE OBJECT', m.oid::text, NULL, pg_get_userbyid(m.lomowner)::text, {item} \
           FROM pg_largeobject_metadata m {} WHERE m.lomacl IS NOT NULL \
         ) x ORDER BY k, object, col NULLS FIRST, ord",
        e("n.nspacl"),
        e("t.typacl"),
        e("p.proacl"),
        e("c.relacl"),
        e("att.attacl"),
        e("m.lomacl"),
        item = item(),
    )
}

/// A role's name from its oid ('' for PUBLIC, oid 0).
const ROLE: &str = "COALESCE((SELECT r.rolname::text FROM pg_roles r WHERE r.oid = a.grantee), '')";

/// One privilege of a list: its entry's number, the grantee, the privilege, grantable (the
/// last three null for an emptied list).
fn item() -> String {
    format!(
        "a.ord, CASE WHEN a.grantee IS NULL THEN NULL ELSE {ROLE} END AS grantee, \
         a.privilege::text AS privilege, a.grantable"
    )
}

/// Rows of (…, grantee, privilege, grantable) in a list's order, folded into entries: one per
/// run of the same grantee.
fn push_privilege(acl: &mut Vec<AclItem>, grantee: String, privilege: String, grantable: bool) {
    match acl.last_mut() {
        Some(last) if last.grantee == grantee => last.privileges.push((privilege, grantable)),
        _ => acl.push(AclItem {
            grantee,
            privileges: vec![(privilege, grantable)],
        }),
    }
}

/// Capture the privileges through `conn` (inside the snapshot's transaction).
///
/// # Errors
/// Database errors.
pub(crate) async fn capture(conn: &mut PgConnection, target: &PgTarget) -> Result<Privileges> {
    let mut p = Privileges::default();
    let mut named: BTreeSet<String> = BTreeSet::new();

    let db = rows(
        conn,
        target,
        "SELECT pg_get_userbyid(d.datdba)::text, d.datacl IS NULL FROM pg_database d WHERE d.datname = current_database()",
    )
    .await?;
    if let Some(r) = db.first() {
        let owner: String = col(r, 0)?;
        named.insert(owner.clone());
        p.database_owner = Some(owner);
        let default: bool = col(r, 1)?;
        if !default {
            let mut acl = Vec::new();
            for r in rows(
                conn,
                target,
                &format!(
                    "SELECT {ROLE}, a.privilege::text, a.grantable FROM pg_database d \
                     CROSS JOIN LATERAL aclexplode(d.datacl) WITH ORDINALITY AS a(grantor, grantee, privilege, grantable, ord) \
                     WHERE d.datname = current_database() ORDER BY a.ord"
                ),
            )
            .await?
            {
                push_privilege(&mut acl, col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
            }
            p.database_acl = Some(acl);
        }
    }

    for r in rows(conn, target, &owners_sql()).await? {
        let owner: String = col(&r, 3)?;
        named.insert(owner.clone());
        p.owners.push(Ownership {
            kind: col(&r, 1)?,
            object: col(&r, 2)?,
            owner,
        });
    }

    for r in rows(conn, target, &acls_sql()).await? {
        let (kind, object, column, owner): (String, String, Option<String>, String) =
            (col(&r, 1)?, col(&r, 2)?, col(&r, 3)?, col(&r, 4)?);
        let (grantee, privilege, grantable): (Option<String>, Option<String>, Option<bool>) =
            (col(&r, 6)?, col(&r, 7)?, col(&r, 8)?);
        let same = p
            .grants
            .last()
            .is_some_and(|g| g.kind == kind && g.object == object && g.column == column);
        if !same {
            named.insert(owner.clone());
            p.grants.push(ObjectAcl {
                kind,
                object,
                column,
                owner,
                acl: Vec::new(),
            });
        }
        // None: an emptied list, recorded with no entries (nothing granted, even to the owner).
        let (Some(grantee), Some(privilege)) = (grantee, privilege) else {
            continue;
        };
        if !grantee.is_empty() {
            named.insert(grantee.clone());
        }
        if let Some(g) = p.grants.last_mut() {
            push_privilege(&mut g.acl, grantee, privilege, grantable.unwrap_or(false));
        }
    }

    for r in rows(
        conn,
        target,
        &format!(
            "SELECT pg_get_userbyid(d.defaclrole)::text, \
                    CASE WHEN d.defaclnamespace = 0 THEN NULL ELSE format('%I', n.nspname) END, \
                    CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' \
                         WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' WHEN 'L' THEN 'LARGE OBJECTS' \
                         ELSE 'UNKNOWN ' || d.defaclobjtype::text END, \
                    {ROLE}, a.privilege::text, a.grantable \
               FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace \
               CROSS JOIN LATERAL aclexplode(d.defaclacl) WITH ORDINALITY AS a(grantor, grantee, privilege, grantable, ord) \
              ORDER BY 1, 2 NULLS FIRST, 3, a.ord"
        ),
    )
    .await?
    {
        // (role, schema, kind of object) is unique in pg_default_acl.
        let (role, schema, objects): (String, Option<String>, String) =
            (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?);
        let (grantee, privilege, grantable): (String, String, bool) =
            (col(&r, 3)?, col(&r, 4)?, col(&r, 5)?);
        let same = p
            .default_acls
            .last()
            .is_some_and(|d| d.role == role && d.schema == schema && d.objects == objects);
        if !same {
            named.insert(role.clone());
            p.default_acls.push(DefaultAcl {
                role,
                schema,
                objects,
                acl: Vec::new(),
            });
        }
        if !grantee.is_empty() {
            named.insert(grantee.clone());
        }
        if let Some(d) = p.default_acls.last_mut() {
            push_privilege(&mut d.acl, grantee, privilege, grantable);
        }
    }

    for r in rows(
        conn,
        target,
        &format!(
            "SELECT format('%I', pol.polname), format('%I.%I', n.nspname, c.relname), \
                    CASE WHEN pol.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END, \
                    CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' \
                         WHEN 'd' THEN 'DELETE' ELSE 'ALL' END, \
                    ARRAY(SELECT r.rolname::text FROM unnest(pol.polroles) AS u(oid) JOIN pg_roles r ON r.oid = u.oid ORDER BY 1), \
                    pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid) \
               FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE {USER_SCHEMAS} ORDER BY 2, 1"
        ),
    )
    .await?
    {
        let roles: Vec<String> = col(&r, 4)?;
        named.extend(roles.iter().cloned());
        p.policies.push(Policy {
            name: col(&r, 0)?,
            table: col(&r, 1)?,
            permissive: col(&r, 2)?,
            command: col(&r, 3)?,
            roles,
            using: col(&r, 5)?,
            check: col(&r, 6)?,
        });
    }

    for r in rows(
        conn,
        target,
        &format!(
            "SELECT e.evtname::text, format('CREATE EVENT TRIGGER %I ON %I%s EXECUTE FUNCTION %s();%s', \
                    e.evtname, e.evtevent, \
                    CASE WHEN e.evttags IS NULL THEN '' ELSE ' WHEN TAG IN (' || \
                         (SELECT string_agg(quote_literal(t), ', ') FROM unnest(e.evttags) t) || ')' END, \
                    e.evtfoid::regproc::text, \
                    CASE e.evtenabled WHEN 'D' THEN format(' ALTER EVENT TRIGGER %I DISABLE;', e.evtname) \
                         WHEN 'R' THEN format(' ALTER EVENT TRIGGER %I ENABLE REPLICA;', e.evtname) \
                         WHEN 'A' THEN format(' ALTER EVENT TRIGGER %I ENABLE ALWAYS;', e.evtname) ELSE '' END) \
               FROM pg_event_trigger e WHERE {} ORDER BY 1",
            not_extension("pg_event_trigger", "e.oid")
        ),
    )
    .await?
    {
        p.event_triggers.push(EventTrigger {
            name: col(&r, 0)?,
            sql: col(&r, 1)?,
        });
    }

    named.retain(|r| !builtin(r));
    let names: Vec<String> = named.into_iter().collect();
    for r in sqlx::query(
        "SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit, r.rolbypassrls, \
                ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                       WHERE m.member = r.oid AND g.rolname = ANY($1) ORDER BY 1) \
           FROM pg_roles r WHERE r.rolname = ANY($1) ORDER BY 1",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| crate::source::postgres::db_error(&e, target).context("reading the roles"))?
    {
        p.roles.push(RoleInfo {
            name: col(&r, 0)?,
            login: col(&r, 1)?,
            superuser: col(&r, 2)?,
            create_db: col(&r, 3)?,
            create_role: col(&r, 4)?,
            inherit: col(&r, 5)?,
            bypass_rls: col(&r, 6)?,
            member_of: col(&r, 7)?,
        });
    }
    Ok(p)
}
