//! Writing the ERP's database as an old-system file, as Prisma serialised the records, so a
//! school can go back to its old system.

use serde_json::Value;

use crate::crypto::Key;
use crate::error::{Error, ErrorKind, Result};
use crate::source::postgres::{col, db_error, qualified, quote_ident, PgTarget};

use crate::legacy::file::encrypt;
use crate::legacy::restore::{exec, shape};
use crate::legacy::V1_TABLES;

/// A column as the v1 export selects it.
pub(super) fn export_expr(column: &str, ty: &str) -> String {
    let c = quote_ident(column);
    if ty.starts_with("timestamp") {
        // Prisma's DateTime in JSON: ISO-8601, milliseconds, Z (the ERP stores UTC).
        format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS {c}")
    } else if ty.starts_with("numeric") {
        format!("{c}::text AS {c}")
    } else if ty == "bytea" {
        format!("encode({c}, 'hex') AS {c}")
    } else if ty == "bigint" {
        // JSON.stringify cannot write a BigInt; the old service stored them as strings.
        format!("{c}::text AS {c}")
    } else {
        c
    }
}

/// Prisma's Decimal in JSON: the shortest decimal string ("35700.00" → "35700").
pub(super) fn prisma_decimal(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

/// Write the 22 tables of `target` as a v1 file the old system's restore code reads: the same
/// keys, Prisma's JSON conventions, gzip, `[IV 16][tag 16][AES-256-GCM]` with `key`. Rows come
/// from one consistent snapshot, ordered by primary key.
///
/// # Errors
/// Connection errors; `TargetMismatch` when the database lacks one of the 22 tables.
pub async fn export(target: &PgTarget, key: &Key) -> Result<(Vec<u8>, u64)> {
    let mut conn = target.connect().await?;
    // As for every export: refuse rather than silently lose rows a policy hides.
    exec(
        &mut conn,
        target,
        "SET row_security = off; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )
    .await?;
    let mut tables = serde_json::Map::new();
    let mut records = 0u64;
    for (v1_key, table) in V1_TABLES {
        let columns = sqlx::query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
        .bind(table)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| db_error(&e, target))?;
        if columns.is_empty() {
            return Err(Error::new(
                ErrorKind::TargetMismatch,
                format!(
                    "The database {} has no table {table:?}, which an old-system backup holds",
                    target.describe()
                ),
                "Export from the school ERP's database",
            ));
        }
        let types: Vec<(String, String)> = columns
            .iter()
            .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
            .collect::<Result<_>>()?;
        let pk = shape(&mut conn, target, table)
            .await?
            .map(|s| s.pk)
            .unwrap_or_default();
        let order = if pk.is_empty() {
            String::new()
        } else {
            format!(
                " ORDER BY {}",
                pk.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let select = types
            .iter()
            .map(|(c, t)| export_expr(c, t))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT to_jsonb(x)::text FROM (SELECT {select} FROM {}{order}) x",
            qualified("public", table)
        );
        let rows: Vec<String> = sqlx::query_scalar(&sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| db_error(&e, target))?;
        let mut out = Vec::with_capacity(rows.len());
        for text in rows {
            let mut v: Value = serde_json::from_str(&text).map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("reading a row of {table}: {e}"),
                    "",
                )
            })?;
            if let Value::Object(m) = &mut v {
                for (c, t) in &types {
                    let Some(field) = m.get_mut(c) else { continue };
                    if let Value::String(s) = field {
                        if t.starts_with("numeric") {
                            *field = Value::String(prisma_decimal(s));
                        } else if t == "bytea" {
                            let bytes = hex::decode(s.as_str()).unwrap_or_default();
                            *field = serde_json::json!({"type": "Buffer", "data": bytes});
                        }
                    }
                }
            }
            out.push(v);
        }
        records += out.len() as u64;
        tables.insert(v1_key.to_string(), Value::Array(out));
    }
    let _ = sqlx::Executor::execute(&mut conn, sqlx::raw_sql("COMMIT")).await;
    let doc = serde_json::json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "tables": Value::Object(tables),
    });
    let json = serde_json::to_vec(&doc)
        .map_err(|e| Error::new(ErrorKind::Internal, format!("writing JSON: {e}"), ""))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &json).map_err(|e| Error::io("compressing", &e))?;
    let data = gz.finish().map_err(|e| Error::io("compressing", &e))?;
    Ok((encrypt(key, data)?, records))
}
