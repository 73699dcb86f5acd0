//! Values a plugin hands the gateway as JSON, read the same way wherever
//! they come from: the `headers` of a hook's result and of fetch options,
//! and the query values of a prefix's result.

use serde_json::Value;

/// One header or query value: a string as it is, a number or boolean as JS
/// writes it. `what` names the value for the error ("header \"x-a\"").
pub fn scalar(v: &Value, what: &dyn Fn() -> String) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{} must be a string, number or boolean (or an array of them), got {other}", what())),
    }
}

/// A headers object (`{name: value | value[]}`) as name/value pairs, in
/// order: an array sends the header once per item. A later key naming a
/// header again in another case replaces it, as the plugin meant with
/// `{...request.headers, 'Ones-User-Id': 'admin'}`. Names and values are
/// not checked against HTTP's rules here: the caller does, with its own
/// error.
pub fn header_pairs(v: &Value) -> Result<Vec<(String, String)>, String> {
    let map = v.as_object().ok_or_else(|| format!("headers must be an object, got {v}"))?;
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (k, v) in map {
        pairs.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        let what = || format!("header {k:?}");
        match v {
            Value::Array(items) => {
                for item in items {
                    pairs.push((k.clone(), scalar(item, &what)?));
                }
            }
            other => pairs.push((k.clone(), scalar(other, &what)?)),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::header_pairs;

    #[test]
    fn headers_objects_read_as_pairs() {
        let pairs = header_pairs(&json!({"X-A": ["1", 2], "x-b": true, "x-a": "3", "Ones-User-Id": "u"})).expect("ok");
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(pairs, [("x-b", "true"), ("x-a", "3"), ("Ones-User-Id", "u")]);
        let e = header_pairs(&json!({"x-a": {"no": 1}})).expect_err("object value");
        assert_eq!(e, r#"header "x-a" must be a string, number or boolean (or an array of them), got {"no":1}"#);
        assert!(header_pairs(&json!({"x-a": [null]})).is_err());
        assert_eq!(header_pairs(&json!("x")).expect_err("not an object"), r#"headers must be an object, got "x""#);
    }
}
