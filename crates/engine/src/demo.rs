//! The demo school database: a small school (the project's own schema and data, then about
//! 300,000 rows of attendance and marks) that `make run` and the app's first-run screen offer
//! when no school database is set up, so a person can try backups and restores on something
//! real without touching the school's data.

use crate::error::Result;
use crate::source::postgres::{self, PgTarget};

/// The demo database's name.
pub const DEMO_DB: &str = "schoolvault_demo";

/// The school: schema and a few rows of everything.
pub const SCHOOL_SQL: &str = include_str!("demo/school.sql");

/// The volume loaded after [`SCHOOL_SQL`]: a term of attendance and marks.
pub const VOLUME_SQL: &str = include_str!("demo/volume.sql");

/// Create the demo database on `server` (the server's `postgres` database), or reuse it when
/// it is there. A load that fails drops what it created.
///
/// # Errors
/// Connection and permission errors (the user may not create databases…).
pub async fn create(server: &PgTarget) -> Result<PgTarget> {
    if postgres::database_exists(server, DEMO_DB).await? {
        return Ok(server.with_database(DEMO_DB));
    }
    let demo = postgres::create_database(server, DEMO_DB).await?;
    let loaded = async {
        postgres::run_script(&demo, SCHOOL_SQL).await?;
        postgres::run_script(&demo, VOLUME_SQL).await
    }
    .await;
    if let Err(e) = loaded {
        postgres::drop_database(server, DEMO_DB).await;
        return Err(e);
    }
    Ok(demo)
}
