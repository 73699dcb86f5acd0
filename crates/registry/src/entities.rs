//! Entity storage: the records plugins keep with `@ones-op/sdk`'s
//! `storage.entity(name)`, per instance, checked against the entity as the
//! manifest declares it. Each record's value is JSON; each declared index
//! it is in has a row in `entity_index` (its partition and where it sorts),
//! written in the same transaction, so a query is one ordered range scan.
//! Pages are ordered by the index's attribute then the key (by the key
//! without an index), and continue from an opaque cursor.

use base64::Engine as _;
use interpose_manifest::storage::{range_value, RangeValue};
use interpose_manifest::{AttributeType, Entity};
use sqlx::Row;

use crate::{on, BeginWrite, Db, Store, StoreError};

/// Records a page holds when the plugin does not say (`limit`), and at most.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Why an entity call failed.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// The plugin asked for something its declaration does not allow.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EntityError {
    fn from(e: sqlx::Error) -> Self {
        EntityError::Store(e.into())
    }
}

/// A range condition on the index's attribute (on the key without an index).
#[derive(Debug, Clone)]
pub enum Condition {
    Equal(serde_json::Value),
    Greater(serde_json::Value),
    GreaterOrEqual(serde_json::Value),
    Less(serde_json::Value),
    LessOrEqual(serde_json::Value),
    Between(serde_json::Value, serde_json::Value),
    BeginsWith(String),
}

/// One `query()`: which records, in which order, from where.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// An index by name, with its partition values.
    pub index: Option<(String, Vec<serde_json::Value>)>,
    pub condition: Option<Condition>,
    pub descending: bool,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct Page {
    pub data: Vec<(String, serde_json::Value)>,
    pub has_more: bool,
    /// Where the next page starts (`None` on an empty page).
    pub end_cursor: Option<String>,
}

/// Records cached at most; past it the cache starts again empty.
const CACHE_RECORDS: usize = 100_000;

/// Entity records as last read or written by this process (SQLite only).
/// A read that missed fills it only if no write happened meanwhile (the
/// generation did not move), so it never keeps a value older than a write.
#[derive(Default)]
pub(crate) struct Cache {
    records: std::sync::Mutex<std::collections::HashMap<(String, String, String), Option<serde_json::Value>>>,
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

impl Cache {
    fn get(&self, key: &(String, String, String)) -> Option<Option<serde_json::Value>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn fill(&self, key: (String, String, String), value: Option<serde_json::Value>, read_at: u64) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation() != read_at {
            return;
        }
        if records.len() >= CACHE_RECORDS {
            records.clear();
        }
        records.insert(key, value);
    }

    /// A write is about to change these records (all of `instance`'s when
    /// `keys` is `None`).
    fn forget(&self, instance: &str, entity: &str, keys: Option<&[String]>) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        match keys {
            Some(keys) => {
                for k in keys {
                    records.remove(&(instance.to_string(), entity.to_string(), k.clone()));
                }
            }
            None => records.retain(|(i, ..), _| i != instance),
        }
    }
}

/// A value bound into a query.
#[derive(Debug, Clone)]
enum Param {
    Text(String),
    Num(f64),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// The connections entity calls use.
    fn data(&self) -> &Db {
        &self.data
    }

    /// The record `key` if this process knows it without a read (SQLite:
    /// a record read or written here before) — `Some(None)`: known absent.
    pub fn entity_cached(&self, instance: &str, entity: &str, key: &str) -> Option<Option<serde_json::Value>> {
        self.cache.as_ref()?.get(&(instance.to_string(), entity.to_string(), key.to_string()))
    }

    /// The record `key`, or `None`.
    pub async fn entity_get(
        &self,
        instance: &str,
        entity: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(cache) = &self.cache else { return self.entity_read(instance, entity, key).await };
        let id = (instance.to_string(), entity.to_string(), key.to_string());
        if let Some(known) = cache.get(&id) {
            return Ok(known);
        }
        let read_at = cache.generation();
        let value = self.entity_read(instance, entity, key).await?;
        cache.fill(id, value.clone(), read_at);
        Ok(value)
    }

    async fn entity_read(
        &self,
        instance: &str,
        entity: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row: Option<(String,)> = on!(self.data(), |p| sqlx::query_as(
            "SELECT value FROM entity_records WHERE instance = $1 AND entity = $2 AND key = $3"
        )
        .bind(instance)
        .bind(entity)
        .bind(key)
        .fetch_optional(p)
        .await?);
        row.map(|(v,)| serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("entity record {key:?}: {e}"))))
            .transpose()
    }

    /// Create or update each record, all or none: every value is checked
    /// and completed against `entity` (see [`Entity::merge`]) before
    /// anything is written. Records created together share a timestamp.
    pub async fn entity_set(
        &self,
        instance: &str,
        entity: &Entity,
        items: &[(String, serde_json::Value)],
    ) -> Result<(), EntityError> {
        for (key, _) in items {
            interpose_manifest::storage::check_key(key).map_err(EntityError::Invalid)?;
        }
        if let Some(cache) = &self.cache {
            let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
            cache.forget(instance, &entity.name, Some(&keys));
        }
        let now = now_ms();
        // PostgreSQL: lock each record read, so two nodes updating it take turns.
        let lock = if matches!(self.data(), Db::Postgres(_)) { " FOR UPDATE" } else { "" };
        let select = format!("SELECT value FROM entity_records WHERE instance = $1 AND entity = $2 AND key = $3{lock}");
        let _turn = self.data_write_turn().await;
        on!(self.data(), |p| {
            let mut tx = p.begin_write().await?;
            for (key, value) in items {
                let old: Option<(String,)> = sqlx::query_as(&select)
                    .bind(instance)
                    .bind(&entity.name)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                let old = match old {
                    Some((text,)) => match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(m)) => Some(m),
                        _ => None,
                    },
                    None => None,
                };
                let merged =
                    entity.merge(old.as_ref(), value).map_err(|e| EntityError::Invalid(format!("key {key:?}: {e}")))?;
                sqlx::query(
                    "INSERT INTO entity_records (instance, entity, key, value, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5)
                     ON CONFLICT (instance, entity, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(instance)
                .bind(&entity.name)
                .bind(key)
                .bind(serde_json::Value::Object(merged.clone()).to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if entity.indexes.is_empty() {
                    continue;
                }
                sqlx::query("DELETE FROM entity_index WHERE instance = $1 AND entity = $2 AND key = $3")
                    .bind(instance)
                    .bind(&entity.name)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                for index in &entity.indexes {
                    let Some((part, range)) = entity.index_entry(index, &merged) else { continue };
                    let (num, txt) = match range {
                        RangeValue::Number(n) => (Some(n), None),
                        RangeValue::Text(t) => (None, Some(t)),
                    };
                    sqlx::query(
                        "INSERT INTO entity_index (instance, entity, idx, part, num, txt, key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(instance)
                    .bind(&entity.name)
                    .bind(&index.name)
                    .bind(part)
                    .bind(num)
                    .bind(txt)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        // Again once committed: a read that began before the commit must
        // not leave the old value behind.
        if let Some(cache) = &self.cache {
            let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
            cache.forget(instance, &entity.name, Some(&keys));
        }
        Ok(())
    }

    /// Delete the records `keys` (absent ones are no error); how many were there.
    pub async fn entity_delete(&self, instance: &str, entity: &str, keys: &[String]) -> Result<u64, StoreError> {
        if let Some(cache) = &self.cache {
            cache.forget(instance, entity, Some(keys));
        }
        let mut n = 0;
        let _turn = self.data_write_turn().await;
        on!(self.data(), |p| {
            let mut tx = p.begin_write().await?;
            for key in keys {
                n += sqlx::query("DELETE FROM entity_records WHERE instance = $1 AND entity = $2 AND key = $3")
                    .bind(instance)
                    .bind(entity)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM entity_index WHERE instance = $1 AND entity = $2 AND key = $3")
                    .bind(instance)
                    .bind(entity)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        if let Some(cache) = &self.cache {
            cache.forget(instance, entity, Some(keys));
        }
        Ok(n)
    }

    /// Every record of `instance`, of every entity (its uninstall).
    pub async fn drop_entities(&self, instance: &str) -> Result<u64, StoreError> {
        if let Some(cache) = &self.cache {
            cache.forget(instance, "", None);
        }
        let _turn = self.data_write_turn().await;
        let n = on!(self.data(), |p| {
            let mut tx = p.begin_write().await?;
            let n = sqlx::query("DELETE FROM entity_records WHERE instance = $1")
                .bind(instance)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM entity_index WHERE instance = $1").bind(instance).execute(&mut *tx).await?;
            tx.commit().await?;
            n
        });
        if let Some(cache) = &self.cache {
            cache.forget(instance, "", None);
        }
        Ok(n)
    }

    /// One page of `q`.
    pub async fn entity_query(&self, instance: &str, entity: &Entity, q: &EntityQuery) -> Result<Page, EntityError> {
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(EntityError::Invalid(format!("limit {limit}: from 1 to {MAX_LIMIT}")));
        }
        let plan = Plan::new(instance, entity, q)?;
        let (mut sql, mut params) = (plan.select(), plan.params.clone());
        if let Some(cursor) = &q.cursor {
            let (value, key) = decode_cursor(cursor)?;
            let (gt, col) = (if q.descending { "<" } else { ">" }, plan.column);
            match (col, value) {
                ("r.key", _) => {
                    params.push(Param::Text(key));
                    sql.push_str(&format!(" AND r.key {gt} ${}", params.len()));
                }
                (col, Some(v)) => {
                    params.push(v);
                    let n = params.len();
                    params.push(Param::Text(key));
                    sql.push_str(&format!(" AND ({col} {gt} ${n} OR ({col} = ${n} AND r.key {gt} ${}))", n + 1));
                }
                _ => return Err(EntityError::Invalid(format!("cursor {cursor:?} is not from a query of this index"))),
            }
        }
        let dir = if q.descending { "DESC" } else { "ASC" };
        if plan.column == "r.key" {
            sql.push_str(&format!(" ORDER BY r.key {dir}"));
        } else {
            sql.push_str(&format!(" ORDER BY {} {dir}, r.key {dir}", plan.column));
        }
        sql.push_str(&format!(" LIMIT {}", limit + 1));
        let rows: Vec<(String, String, Option<f64>, Option<String>)> = on!(self.data(), |p| {
            let mut query = sqlx::query(&sql);
            for param in &params {
                query = match param {
                    Param::Text(s) => query.bind(s.clone()),
                    Param::Num(n) => query.bind(*n),
                };
            }
            query
                .fetch_all(p)
                .await?
                .into_iter()
                .map(|row| Ok::<_, sqlx::Error>((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))
                .collect::<Result<Vec<_>, _>>()?
        });
        let has_more = rows.len() > limit;
        let mut data = Vec::with_capacity(limit.min(rows.len()));
        let mut end_cursor = None;
        for (key, value, num, txt) in rows.into_iter().take(limit) {
            let v =
                serde_json::from_str(&value).map_err(|e| StoreError::Corrupt(format!("entity record {key:?}: {e}")))?;
            let at = match (num, txt) {
                (Some(n), _) => Some(serde_json::json!(n)),
                (None, Some(t)) => Some(serde_json::Value::String(t)),
                _ => None,
            };
            end_cursor = Some(encode_cursor(at, &key));
            data.push((key, v));
        }
        Ok(Page { data, has_more, end_cursor })
    }

    /// How many records `q` matches (its cursor and limit aside).
    pub async fn entity_count(&self, instance: &str, entity: &Entity, q: &EntityQuery) -> Result<u64, EntityError> {
        let plan = Plan::new(instance, entity, q)?;
        let sql = format!("SELECT COUNT(*) FROM {}{}", plan.from, plan.conditions);
        let n: i64 = on!(self.data(), |p| {
            let mut query = sqlx::query_scalar(&sql);
            for param in &plan.params {
                query = match param {
                    Param::Text(s) => query.bind(s.clone()),
                    Param::Num(n) => query.bind(*n),
                };
            }
            query.fetch_one(p).await?
        });
        Ok(n as u64)
    }
}

/// A query's FROM and WHERE, with its parameters.
struct Plan {
    from: String,
    sort_columns: &'static str,
    /// What the page is ordered by: `r.key`, `i.num` or `i.txt`.
    column: &'static str,
    params: Vec<Param>,
    conditions: String,
}

impl Plan {
    fn new(instance: &str, entity: &Entity, q: &EntityQuery) -> Result<Plan, EntityError> {
        let mut params = vec![Param::Text(instance.to_string()), Param::Text(entity.name.clone())];
        let mut conditions = String::new();
        let (from, sort_columns, column, kind) = match &q.index {
            None => (
                "entity_records r WHERE r.instance = $1 AND r.entity = $2".to_string(),
                "CAST(NULL AS DOUBLE PRECISION), CAST(NULL AS TEXT)",
                "r.key",
                None,
            ),
            Some((name, partition)) => {
                let index = entity.index(name).map_err(EntityError::Invalid)?;
                let part = entity.partition_of(index, partition).map_err(EntityError::Invalid)?;
                params.push(Param::Text(index.name.clone()));
                params.push(Param::Text(part));
                let attr = &entity.attributes[&index.range_attribute];
                let column = if attr.kind == AttributeType::String { "i.txt" } else { "i.num" };
                (
                    "entity_index i JOIN entity_records r ON r.instance = i.instance AND r.entity = i.entity AND r.key = i.key \
                     WHERE i.instance = $1 AND i.entity = $2 AND i.idx = $3 AND i.part = $4"
                        .to_string(),
                    "i.num, i.txt",
                    column,
                    Some((attr.clone(), index.range_attribute.clone())),
                )
            }
        };
        if let Some(c) = &q.condition {
            // A value compared with the index's attribute (the key without one).
            let mut param = |v: &serde_json::Value| -> Result<String, EntityError> {
                let p = match &kind {
                    Some((attr, name)) => {
                        attr.check(v).map_err(|why| EntityError::Invalid(format!("condition on {name:?}: {why}")))?;
                        match range_value(v) {
                            Some(RangeValue::Number(n)) => Param::Num(n),
                            Some(RangeValue::Text(t)) => Param::Text(t),
                            None => return Err(EntityError::Invalid(format!("condition on {name:?}: not comparable"))),
                        }
                    }
                    None => match v {
                        serde_json::Value::String(s) => Param::Text(s.clone()),
                        other => {
                            return Err(EntityError::Invalid(format!(
                                "a condition without an index compares keys, which are strings, not {other}"
                            )))
                        }
                    },
                };
                params.push(p);
                Ok(format!("${}", params.len()))
            };
            let clause = match c {
                Condition::Equal(v) => format!("{column} = {}", param(v)?),
                Condition::Greater(v) => format!("{column} > {}", param(v)?),
                Condition::GreaterOrEqual(v) => format!("{column} >= {}", param(v)?),
                Condition::Less(v) => format!("{column} < {}", param(v)?),
                Condition::LessOrEqual(v) => format!("{column} <= {}", param(v)?),
                Condition::Between(a, b) => {
                    let (a, b) = (param(a)?, param(b)?);
                    format!("{column} >= {a} AND {column} <= {b}")
                }
                Condition::BeginsWith(prefix) => {
                    if column == "i.num" {
                        return Err(EntityError::Invalid(
                            "beginsWith compares strings; this index's attribute is not a string".into(),
                        ));
                    }
                    // A range the index can seek, then the exact test.
                    let low = param(&serde_json::Value::String(prefix.clone()))?;
                    params.push(Param::Text(format!("{prefix}\u{10FFFF}")));
                    let high = format!("${}", params.len());
                    format!("{column} >= {low} AND {column} < {high} AND substr({column}, 1, length({low})) = {low}")
                }
            };
            conditions = format!(" AND {clause}");
        }
        Ok(Plan { from, sort_columns, column, params, conditions })
    }

    fn select(&self) -> String {
        format!("SELECT r.key, r.value, {} FROM {}{}", self.sort_columns, self.from, self.conditions)
    }
}

fn encode_cursor(at: Option<serde_json::Value>, key: &str) -> String {
    let text = serde_json::json!([at, key]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor(cursor: &str) -> Result<(Option<Param>, String), EntityError> {
    let bad = || EntityError::Invalid(format!("cursor {cursor:?} is not one a page of this query returned"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let key = v.get(1).and_then(|k| k.as_str()).ok_or_else(bad)?.to_string();
    let at = match v.get(0) {
        Some(serde_json::Value::Number(n)) => Some(Param::Num(n.as_f64().ok_or_else(bad)?)),
        Some(serde_json::Value::String(s)) => Some(Param::Text(s.clone())),
        _ => None,
    };
    Ok((at, key))
}
