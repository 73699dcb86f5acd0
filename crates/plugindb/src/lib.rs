//! Plugins' SQL databases (`@ones-op/node-database`): MySQL 5.7 as ONES
//! plugins write it, one isolated database per instance, on one of two
//! backends —
//!
//! - a MySQL or MariaDB server (`[plugin_db] url = "mysql://…"`): each
//!   instance gets a database of its own on it (`<prefix>_<instance>`),
//!   created on first use; what plugins write runs as written. The one
//!   several gateway nodes share.
//! - the embedded default, SQLite: one file per instance under
//!   `[plugin_db] dir`, the MySQL text translated by [`translate`]. Local to
//!   one node.
//!
//! `{{name}}` in the SQL (ONES's table placeholder in `plugin.sql`) is the
//! table's own name. Failures carry the errcodes ONES documents.

pub mod translate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Column, Executor, Row, TypeInfo, ValueRef};

use translate::{Kind, Parsed};

/// Why a database call failed, as the plugin's `DBError` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFailure {
    pub errcode: &'static str,
    pub status: u16,
    pub reason: String,
}

fn fail(errcode: &'static str, status: u16, reason: impl Into<String>) -> DbFailure {
    DbFailure { errcode, status, reason: reason.into() }
}

fn syntax(reason: impl Into<String>) -> DbFailure {
    fail("DB.SqlSyntaxErr", 400, reason)
}

fn invalid(reason: impl Into<String>) -> DbFailure {
    fail("InvalidParameter", 400, reason)
}

/// The databases of every instance, on one backend.
pub struct PluginDb {
    backend: Backend,
}

enum Backend {
    Sqlite {
        dir: PathBuf,
        pools: Mutex<HashMap<String, SqlitePool>>,
    },
    MySql {
        server: Box<MySqlConnectOptions>,
        admin: MySqlPool,
        prefix: String,
        pools: Mutex<HashMap<String, MySqlPool>>,
    },
}

/// A name made only of letters, digits and `_` (database and file names).
fn safe(instance: &str) -> String {
    instance.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

impl PluginDb {
    /// The embedded backend: one SQLite file per instance in `dir`.
    pub fn sqlite(dir: PathBuf) -> PluginDb {
        PluginDb { backend: Backend::Sqlite { dir, pools: Mutex::new(HashMap::new()) } }
    }

    /// A MySQL or MariaDB server; the URL's database name (default
    /// `interpose`) prefixes each instance's database. Connects once to say
    /// at start whether it can.
    pub async fn mysql(url: &str) -> Result<PluginDb, String> {
        let mut u = url::Url::parse(url).map_err(|e| format!("plugin_db.url: {e}"))?;
        let prefix = match u.path().trim_matches('/') {
            "" => "interpose".to_string(),
            p => p.to_string(),
        };
        u.set_path("");
        let server = MySqlConnectOptions::from_str(u.as_str()).map_err(|e| format!("plugin_db.url: {e}"))?;
        let admin = MySqlPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(server.clone())
            .await
            .map_err(|e| format!("plugin_db.url: cannot connect to MySQL: {e}"))?;
        Ok(PluginDb {
            backend: Backend::MySql {
                server: Box::new(server),
                admin,
                prefix: safe(&prefix),
                pools: Mutex::new(HashMap::new()),
            },
        })
    }

    /// Whether the databases are files on this node (several nodes would
    /// each have their own).
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Sqlite { .. })
    }

    /// `importSQL`: every statement of a workspace file, in one go (all or
    /// nothing on SQLite; MySQL commits DDL as it goes).
    pub async fn import_sql(&self, instance: &str, workspace: &Path, file: &str) -> Result<(), DbFailure> {
        if !file.ends_with(".sql") || file.split(['/', '\\']).any(|p| p == "..") || Path::new(file).is_absolute() {
            return Err(fail(
                "DB.SqlFileNameFormatInvalid",
                400,
                format!("{file:?}: importSQL takes a .sql file's path inside the workspace"),
            ));
        }
        let text = std::fs::read_to_string(workspace.join(file))
            .map_err(|e| fail("DB.SqlFileFetchingFailed", 400, format!("cannot read {file}: {e}")))?;
        let parsed = translate::parse(&text).map_err(|e| syntax(format!("{file}: {e}")))?;
        let import = |e: String| fail("DB.ImportSqlErr", 500, format!("{file}: {e}"));
        match &self.backend {
            Backend::Sqlite { .. } => {
                let mut sql = Vec::new();
                for (i, p) in parsed.iter().enumerate() {
                    sql.extend(
                        translate::to_sqlite(p).map_err(|e| syntax(format!("{file}: statement {}: {e}", i + 1)))?,
                    );
                }
                let pool = self.sqlite_pool(instance).await?;
                let mut tx = pool.begin().await.map_err(|e| import(e.to_string()))?;
                for (i, s) in sql.iter().enumerate() {
                    tx.execute(s.as_str())
                        .await
                        .map_err(|e| import(format!("statement {}: {}", i + 1, db_message(&e))))?;
                }
                tx.commit().await.map_err(|e| import(e.to_string()))
            }
            Backend::MySql { .. } => {
                let pool = self.mysql_pool(instance).await?;
                for (i, p) in parsed.iter().enumerate().filter(|(_, p)| p.kind != Kind::Nothing) {
                    let s = p.statement.to_string();
                    pool.execute(sqlx::raw_sql(&s))
                        .await
                        .map_err(|e| import(format!("statement {}: {}", i + 1, db_message(&e))))?;
                }
                Ok(())
            }
        }
    }

    /// `select(sql)`: the rows of one SELECT, each `{column: value}`.
    pub async fn select(&self, instance: &str, sql: &str) -> Result<Vec<Map<String, Value>>, DbFailure> {
        let p = one(sql, "select")?;
        if p.kind != Kind::Select {
            return Err(invalid(format!("select() runs a SELECT, not {}", p.kind.as_str().to_uppercase())));
        }
        self.query(instance, sql, &p).await
    }

    /// `count(sql)`: the number a `SELECT count(…) …` answers.
    pub async fn count(&self, instance: &str, sql: &str) -> Result<i64, DbFailure> {
        let p = one(sql, "count")?;
        if !is_count(&p) {
            return Err(invalid("count() runs a SELECT of a single count(…) column"));
        }
        let rows = self.query(instance, sql, &p).await?;
        let n = rows.first().and_then(|r| r.values().next()).cloned().unwrap_or(Value::from(0));
        Ok(n.as_i64().or_else(|| n.as_str().and_then(|s| s.parse().ok())).unwrap_or(0))
    }

    /// `exec(operate, sql)`: one statement of the kind `operate` names.
    pub async fn exec(&self, instance: &str, operate: &str, sql: &str) -> Result<(), DbFailure> {
        const KINDS: [&str; 6] = ["insert", "update", "delete", "create", "alter", "drop"];
        if !KINDS.contains(&operate) {
            return Err(invalid(format!("exec({operate:?}, …): the operation is one of {}", KINDS.join(", "))));
        }
        let p = one(sql, "exec")?;
        if p.kind.as_str() != operate {
            return Err(invalid(format!("exec({operate:?}, …) was given {} statement", article(p.kind))));
        }
        let run = |e: String| fail("DB.ExecSqlErr", 500, e);
        match &self.backend {
            Backend::Sqlite { .. } => {
                let statements = translate::to_sqlite(&p).map_err(syntax)?;
                let pool = self.sqlite_pool(instance).await?;
                let mut tx = pool.begin().await.map_err(|e| run(e.to_string()))?;
                for s in &statements {
                    tx.execute(s.as_str()).await.map_err(|e| run(db_message(&e)))?;
                }
                tx.commit().await.map_err(|e| run(e.to_string()))
            }
            Backend::MySql { .. } => {
                let pool = self.mysql_pool(instance).await?;
                let text = translate::unwrap_placeholders(sql);
                pool.execute(sqlx::raw_sql(&text)).await.map(|_| ()).map_err(|e| run(db_message(&e)))
            }
        }
    }

    /// Remove an instance's database (its uninstall).
    pub async fn drop_instance(&self, instance: &str) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite { dir, pools } => {
                let pool = pools.lock().unwrap_or_else(|e| e.into_inner()).remove(instance);
                if let Some(pool) = pool {
                    pool.close().await;
                }
                let file = dir.join(format!("{}.sqlite", safe(instance)));
                for f in [file.clone(), file.with_extension("sqlite-wal"), file.with_extension("sqlite-shm")] {
                    if f.exists() {
                        std::fs::remove_file(&f).map_err(|e| format!("cannot remove {}: {e}", f.display()))?;
                    }
                }
                Ok(())
            }
            Backend::MySql { admin, prefix, pools, .. } => {
                let pool = pools.lock().unwrap_or_else(|e| e.into_inner()).remove(instance);
                if let Some(pool) = pool {
                    pool.close().await;
                }
                let name = format!("{prefix}_{}", safe(instance));
                admin
                    .execute(sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`")))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
        }
    }

    async fn query(&self, instance: &str, sql: &str, p: &Parsed) -> Result<Vec<Map<String, Value>>, DbFailure> {
        let failed = |e: sqlx::Error| fail("DB.QuerySqlErr", 500, db_message(&e));
        match &self.backend {
            Backend::Sqlite { .. } => {
                let text = translate::to_sqlite(p).map_err(syntax)?.join("; ");
                let pool = self.sqlite_pool(instance).await?;
                let rows = sqlx::query(&text).fetch_all(&pool).await.map_err(failed)?;
                Ok(rows.iter().map(sqlite_row).collect())
            }
            Backend::MySql { .. } => {
                let pool = self.mysql_pool(instance).await?;
                let text = translate::unwrap_placeholders(sql);
                let rows = pool.fetch_all(sqlx::raw_sql(&text)).await.map_err(failed)?;
                Ok(rows.iter().map(mysql_row).collect())
            }
        }
    }

    async fn sqlite_pool(&self, instance: &str) -> Result<SqlitePool, DbFailure> {
        let Backend::Sqlite { dir, pools } = &self.backend else { unreachable!("sqlite_pool on MySQL") };
        if let Some(p) = pools.lock().unwrap_or_else(|e| e.into_inner()).get(instance) {
            return Ok(p.clone());
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| fail("DB.QuerySqlErr", 500, format!("cannot create {}: {e}", dir.display())))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join(format!("{}.sqlite", safe(instance))))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| fail("DB.QuerySqlErr", 500, format!("cannot open the plugin database: {e}")))?;
        let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
        Ok(pools.entry(instance.to_string()).or_insert(pool).clone())
    }

    async fn mysql_pool(&self, instance: &str) -> Result<MySqlPool, DbFailure> {
        let Backend::MySql { server, admin, prefix, pools } = &self.backend else {
            unreachable!("mysql_pool on SQLite")
        };
        if let Some(p) = pools.lock().unwrap_or_else(|e| e.into_inner()).get(instance) {
            return Ok(p.clone());
        }
        let unavailable =
            |e: sqlx::Error| fail("DB.QuerySqlErr", 500, format!("the plugin database is unavailable: {e}"));
        let name = format!("{prefix}_{}", safe(instance));
        admin
            .execute(sqlx::raw_sql(&format!(
                "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            )))
            .await
            .map_err(unavailable)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with((**server).clone().database(&name))
            .await
            .map_err(unavailable)?;
        let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
        Ok(pools.entry(instance.to_string()).or_insert(pool).clone())
    }
}

fn article(k: Kind) -> String {
    match k {
        Kind::Insert | Kind::Update | Kind::Alter => format!("an {}", k.as_str().to_uppercase()),
        Kind::Nothing => "a statement of another kind".into(),
        _ => format!("a {}", k.as_str().to_uppercase()),
    }
}

/// Exactly one statement.
fn one(sql: &str, call: &str) -> Result<Parsed, DbFailure> {
    let mut parsed = translate::parse(sql).map_err(syntax)?;
    match parsed.len() {
        1 => Ok(parsed.remove(0)),
        0 => Err(invalid(format!("{call}() was given no SQL statement"))),
        n => Err(invalid(format!("{call}() runs one statement, not {n}"))),
    }
}

fn is_count(p: &Parsed) -> bool {
    use sqlparser::ast::{SelectItem, SetExpr, Statement};
    let Statement::Query(q) = &p.statement else { return false };
    let SetExpr::Select(s) = q.body.as_ref() else { return false };
    match s.projection.as_slice() {
        [SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }] => {
            matches!(e, sqlparser::ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("count"))
        }
        _ => false,
    }
}

/// The database's own message, without sqlx's wrapping.
fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, c) in row.columns().iter().enumerate() {
        let value = match row.try_get_raw(i) {
            Ok(v) if v.is_null() => Value::Null,
            Ok(v) => match v.type_info().name() {
                "INTEGER" => row.try_get_unchecked::<i64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "REAL" => row.try_get_unchecked::<f64, _>(i).map(Value::from).unwrap_or(Value::Null),
                "BLOB" => row
                    .try_get_unchecked::<Vec<u8>, _>(i)
                    .map(|b| Value::String(String::from_utf8_lossy(&b).into_owned()))
                    .unwrap_or(Value::Null),
                _ => row.try_get_unchecked::<String, _>(i).map(Value::String).unwrap_or(Value::Null),
            },
            Err(_) => Value::Null,
        };
        out.insert(c.name().to_string(), value);
    }
    out
}

/// A MySQL row (text protocol: every value arrives as text) as JSON:
/// integers and floating/decimal numbers as numbers, the rest as strings.
fn mysql_row(row: &sqlx::mysql::MySqlRow) -> Map<String, Value> {
    let mut out = Map::new();
    for (i, c) in row.columns().iter().enumerate() {
        let ty = c.type_info().name().to_ascii_uppercase();
        let text: Option<String> = match row.try_get_raw(i) {
            Ok(v) if v.is_null() => None,
            Ok(_) => row.try_get_unchecked::<Vec<u8>, _>(i).ok().map(|b| String::from_utf8_lossy(&b).into_owned()),
            Err(_) => None,
        };
        let value = match text {
            None => Value::Null,
            Some(t) if ty.contains("INT") || ty == "BOOLEAN" || ty == "YEAR" => {
                t.parse::<i64>().map(Value::from).unwrap_or(Value::String(t))
            }
            Some(t) if ty.contains("FLOAT") || ty.contains("DOUBLE") || ty.contains("DECIMAL") => t
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::String(t)),
            Some(t) => Value::String(t),
        };
        out.insert(c.name().to_string(), value);
    }
    out
}

#[cfg(test)]
mod tests;
