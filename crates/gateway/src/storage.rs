//! Plugins' data: entity storage (`@ones-op/sdk` `storage.entity(name)`),
//! each call parsed and checked against the instance's declared entities and
//! run on the gateway's store, and the plugin's SQL database
//! (`@ones-op/node-database`) — both within the hook's deadline.

use interpose_js::{SdkFailure, SdkRequest};
use interpose_manifest::Entity;
use interpose_plugindb::PluginDb;
use interpose_registry::{Condition, EntityError, EntityQuery, Store, StoreError};
use serde_json::{json, Value};

/// Most items one batch call takes (`batchSet`, `batchGet`, `batchDelete`).
const MAX_BATCH: usize = 1000;

fn invalid(reason: impl Into<String>) -> SdkFailure {
    SdkFailure::new("InvalidParameter", 400, reason)
}

fn failure(e: EntityError) -> SdkFailure {
    match e {
        EntityError::Invalid(why) => invalid(why),
        EntityError::Store(e) => store_failure(e),
    }
}

fn store_failure(e: StoreError) -> SdkFailure {
    tracing::warn!("entity storage call failed: {e}");
    SdkFailure::new("Storage.Unavailable", 503, format!("entity storage is unavailable: {e}"))
}

/// Run one call, within what is left of the hook's deadline.
pub(crate) async fn serve(store: &Store, req: SdkRequest) -> Result<Value, SdkFailure> {
    let timeout = req.timeout.max(std::time::Duration::from_millis(1));
    within(timeout, "entity storage", run(store, &req)).await
}

async fn within(
    timeout: std::time::Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<Value, SdkFailure>>,
) -> Result<Value, SdkFailure> {
    match tokio::time::timeout(timeout, f).await {
        Ok(result) => result,
        Err(_) => Err(SdkFailure::new(
            "RequestTimeOut",
            504,
            format!("{what} did not answer within the hook's remaining {} ms", timeout.as_millis()),
        )),
    }
}

/// One `@ones-op/node-database` call, within what is left of the hook's deadline.
pub(crate) async fn database(db: &PluginDb, req: SdkRequest) -> Result<Value, SdkFailure> {
    let timeout = req.timeout.max(std::time::Duration::from_millis(1));
    within(timeout, "the plugin database", async {
        let instance = req.instance.as_str();
        let text = |k: &str| req.op.get(k).and_then(Value::as_str).unwrap_or("");
        let result = match text("op") {
            "importSQL" => {
                let Some(ws) = &req.workspace else {
                    return Err(SdkFailure::new("DB.SqlFileFetchingFailed", 400, "this instance has no workspace"));
                };
                db.import_sql(instance, ws, text("file")).await.map(|()| Value::Null)
            }
            "select" => db
                .select(instance, text("sql"))
                .await
                .map(|rows| Value::Array(rows.into_iter().map(Value::Object).collect())),
            "exec" => db.exec(instance, text("operate"), text("sql")).await.map(|()| Value::Null),
            "count" => db.count(instance, text("sql")).await.map(Value::from),
            other => return Err(invalid(format!("unknown database operation {other:?}"))),
        };
        result.map_err(|e| SdkFailure::new(e.errcode, e.status, e.reason))
    })
    .await
}

/// A `get` this process can answer without the store (its cache), checked
/// as [`run`] checks it.
pub(crate) fn cached(store: &Store, req: &SdkRequest) -> Option<Result<Value, SdkFailure>> {
    if req.op.get("op").and_then(Value::as_str) != Some("get") {
        return None;
    }
    let name = req.op.get("entity").and_then(Value::as_str)?;
    let key = req.op.get("key").and_then(Value::as_str)?;
    req.entities.iter().find(|e| e.name == name)?;
    store.entity_cached(&req.instance, name, key).map(|v| Ok(v.unwrap_or(Value::Null)))
}

async fn run(store: &Store, req: &SdkRequest) -> Result<Value, SdkFailure> {
    let op = req.op.get("op").and_then(Value::as_str).unwrap_or("");
    let name = req.op.get("entity").and_then(Value::as_str).unwrap_or("");
    let entity = declared(&req.entities, name)?;
    let instance = req.instance.as_str();
    let key_of = |v: &Value| -> Result<String, SdkFailure> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(invalid(format!("an entity key is a string, not {other}"))),
        }
    };
    let keys = || -> Result<Vec<String>, SdkFailure> {
        let keys = req.op.get("keys").and_then(Value::as_array).ok_or_else(|| invalid("expected a list of keys"))?;
        if keys.len() > MAX_BATCH {
            return Err(invalid(format!("{} keys in one call; at most {MAX_BATCH}", keys.len())));
        }
        keys.iter().map(key_of).collect()
    };
    match op {
        "get" => {
            let key = key_of(req.op.get("key").unwrap_or(&Value::Null))?;
            Ok(store.entity_get(instance, &entity.name, &key).await.map_err(store_failure)?.unwrap_or(Value::Null))
        }
        "batchGet" => {
            let mut out = Vec::new();
            for key in keys()? {
                if let Some(value) = store.entity_get(instance, &entity.name, &key).await.map_err(store_failure)? {
                    out.push(json!({"key": key, "value": value}));
                }
            }
            Ok(Value::Array(out))
        }
        "set" => {
            let items =
                req.op.get("items").and_then(Value::as_array).ok_or_else(|| invalid("expected [{key, value}]"))?;
            if items.len() > MAX_BATCH {
                return Err(invalid(format!("{} items in one batchSet; at most {MAX_BATCH}", items.len())));
            }
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let key = key_of(item.get("key").unwrap_or(&Value::Null))
                        .map_err(|e| invalid(format!("item {i}: {}", e.reason)))?;
                    Ok((key, item.get("value").cloned().unwrap_or(Value::Null)))
                })
                .collect::<Result<Vec<_>, SdkFailure>>()?;
            store.entity_set(instance, entity, &items).await.map_err(failure)?;
            Ok(Value::Null)
        }
        "delete" => {
            store.entity_delete(instance, &entity.name, &keys()?).await.map_err(store_failure)?;
            Ok(Value::Null)
        }
        "query" | "count" => {
            let q = query(&req.op)?;
            if op == "count" {
                return Ok(json!(store.entity_count(instance, entity, &q).await.map_err(failure)?));
            }
            let page = store.entity_query(instance, entity, &q).await.map_err(failure)?;
            let data: Vec<Value> =
                page.data.into_iter().map(|(key, value)| json!({"key": key, "value": value})).collect();
            Ok(json!({"data": data, "page_info": {"has_more": page.has_more, "end_cursor": page.end_cursor}}))
        }
        other => Err(invalid(format!("unknown storage operation {other:?}"))),
    }
}

/// The declared entity `name`, or why the plugin cannot use it.
fn declared<'e>(entities: &'e [Entity], name: &str) -> Result<&'e Entity, SdkFailure> {
    entities.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
        SdkFailure::new(
            "Storage.EntityNotDeclared",
            400,
            if known.is_empty() {
                format!("entity {name:?} is not declared: the manifest has no storage.entities")
            } else {
                format!("entity {name:?} is not declared in storage.entities (declared: {})", known.join(", "))
            },
        )
    })
}

fn query(op: &Value) -> Result<EntityQuery, SdkFailure> {
    let index = op
        .get("index")
        .and_then(Value::as_str)
        .map(|name| (name.to_string(), op.get("partition").and_then(Value::as_array).cloned().unwrap_or_default()));
    let condition = match op.get("where") {
        None | Some(Value::Null) => None,
        Some(w) => {
            let values = w.get("values").and_then(Value::as_array).cloned().unwrap_or_default();
            let one = || values.first().cloned().ok_or_else(|| invalid("the condition has no value"));
            Some(match w.get("condition").and_then(Value::as_str).unwrap_or("") {
                "EQUAL_TO" => Condition::Equal(one()?),
                "GREATER_THAN" => Condition::Greater(one()?),
                "GREATER_THAN_EQUAL_TO" => Condition::GreaterOrEqual(one()?),
                "LESS_THAN" => Condition::Less(one()?),
                "LESS_THAN_EQUAL_TO" => Condition::LessOrEqual(one()?),
                "BETWEEN" if values.len() == 2 => Condition::Between(values[0].clone(), values[1].clone()),
                "BEGINS_WITH" => match one()? {
                    Value::String(s) => Condition::BeginsWith(s),
                    other => return Err(invalid(format!("beginsWith takes a string, not {other}"))),
                },
                other => return Err(invalid(format!("unknown condition {other:?}"))),
            })
        }
    };
    let descending = match op.get("sort").and_then(Value::as_str) {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(other) => return Err(invalid(format!("sort order {other:?}: ASC or DESC"))),
    };
    let limit = match op.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => {
            Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| invalid(format!("limit {v}: a whole number above 0")))?
                as usize)
        }
    };
    let cursor = op.get("cursor").and_then(Value::as_str).map(str::to_string);
    Ok(EntityQuery { index, condition, descending, limit, cursor })
}
