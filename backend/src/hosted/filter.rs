//! `list`'s `filter.metadata`, parsed and checked against Cloudflare's rules before any store
//! sees it: at most 5 conditions (each operator counts once), field paths of at most 5 levels
//! and 100 characters of letters, digits and `_`, `in` with 1 to 10 values. Anything else is a
//! 9401, never "match everything". Matching is strict, as workerd's mock and Miniflare's local
//! binding match: `"3"` does not equal `3`, and `gt`/`gte`/`lt`/`lte` hold only for numbers.

use imgbind_wire::Error;
use serde_json::{Map, Value};

/// At most this many conditions per `list` (an operator object counts each operator).
pub(crate) const MAX_CONDITIONS: usize = 5;
/// At most this many levels in a field path (`a.b.c.d.e`).
pub(crate) const MAX_DEPTH: usize = 5;
/// At most this many characters in a field path.
pub(crate) const MAX_FIELD_CHARS: usize = 100;
/// At most this many values in an `in`.
pub(crate) const MAX_IN_VALUES: usize = 10;

/// One condition on a metadata field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// The field's path from `meta`: `["a", "b"]` for `a.b`. Segments are `[A-Za-z0-9_]+`.
    pub(crate) path: Vec<String>,
    pub(crate) op: Op,
}

/// A comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Eq(Scalar),
    /// Equal to one of these (all strings or all numbers).
    In(Vec<Scalar>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

/// A value a field is compared with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// Parses `filter.metadata` (a JSON object) into conditions, or says what is wrong (9401).
pub(crate) fn parse(metadata: &Value) -> Result<Vec<Condition>, Error> {
    let Value::Object(fields) = metadata else {
        return Err(Error::invalid("filter.metadata must be an object"));
    };
    let mut conditions = Vec::new();
    for (field, value) in fields {
        let path = field_path(field)?;
        match value {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(Error::invalid(format!(
                        "filter.metadata.{field}: an operator object needs at least one of eq, in, gt, gte, lt, lte"
                    )));
                }
                for (name, operand) in ops {
                    let op = operator(field, name, operand)?;
                    conditions.push(Condition {
                        path: path.clone(),
                        op,
                    });
                }
            }
            other => conditions.push(Condition {
                path,
                op: Op::Eq(scalar(field, "eq", other)?),
            }),
        }
        if conditions.len() > MAX_CONDITIONS {
            return Err(Error::invalid(format!(
                "filter.metadata has more than {MAX_CONDITIONS} conditions (each operator counts)"
            )));
        }
    }
    Ok(conditions)
}

fn field_path(field: &str) -> Result<Vec<String>, Error> {
    let invalid = |why: &str| {
        Err(Error::invalid(format!(
            "filter.metadata field {field:?}: {why}"
        )))
    };
    if field.is_empty() || field.chars().count() > MAX_FIELD_CHARS {
        return invalid(&format!(
            "a field name has 1 to {MAX_FIELD_CHARS} characters"
        ));
    }
    let path: Vec<String> = field.split('.').map(str::to_owned).collect();
    if path.len() > MAX_DEPTH {
        return invalid(&format!("at most {MAX_DEPTH} levels of nesting"));
    }
    let valid_segment =
        |s: &String| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !path.iter().all(valid_segment) {
        return invalid("only letters, digits and _ (with . between levels)");
    }
    Ok(path)
}

fn operator(field: &str, name: &str, operand: &Value) -> Result<Op, Error> {
    let number = || match operand.as_f64() {
        Some(n) if operand.is_number() && n.is_finite() => Ok(n),
        _ => Err(Error::invalid(format!(
            "filter.metadata.{field}.{name} must be a number"
        ))),
    };
    Ok(match name {
        "eq" => Op::Eq(scalar(field, name, operand)?),
        "in" => {
            let Value::Array(values) = operand else {
                return Err(Error::invalid(format!(
                    "filter.metadata.{field}.in must be an array"
                )));
            };
            if values.is_empty() || values.len() > MAX_IN_VALUES {
                return Err(Error::invalid(format!(
                    "filter.metadata.{field}.in needs 1 to {MAX_IN_VALUES} values"
                )));
            }
            let all_strings = values.iter().all(Value::is_string);
            let all_numbers = values.iter().all(Value::is_number);
            if !all_strings && !all_numbers {
                return Err(Error::invalid(format!(
                    "filter.metadata.{field}.in must hold only strings or only numbers"
                )));
            }
            Op::In(
                values
                    .iter()
                    .map(|v| scalar(field, name, v))
                    .collect::<Result<_, _>>()?,
            )
        }
        "gt" => Op::Gt(number()?),
        "gte" => Op::Gte(number()?),
        "lt" => Op::Lt(number()?),
        "lte" => Op::Lte(number()?),
        other => {
            return Err(Error::invalid(format!(
                "filter.metadata.{field}: unknown operator {other:?} (eq, in, gt, gte, lt, lte)"
            )))
        }
    })
}

fn scalar(field: &str, name: &str, value: &Value) -> Result<Scalar, Error> {
    match value {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(Scalar::Num(f)),
            _ => Err(Error::invalid(format!(
                "filter.metadata.{field}.{name}: number out of range"
            ))),
        },
        _ => Err(Error::invalid(format!(
            "filter.metadata.{field}.{name} must be a string, a number or a boolean"
        ))),
    }
}

#[cfg_attr(not(test), allow(dead_code))]
impl Condition {
    /// Whether `meta` satisfies this condition (the reference the SQL of each store must agree
    /// with; the stores' tests compare them).
    pub(crate) fn matches(&self, meta: &Map<String, Value>) -> bool {
        let mut value = None;
        let mut object = Some(meta);
        for segment in &self.path {
            value = object.and_then(|o| o.get(segment));
            object = value.and_then(Value::as_object);
        }
        let Some(value) = value else { return false };
        let number = value.as_f64().filter(|_| value.is_number());
        match &self.op {
            Op::Eq(s) => scalar_eq(s, value),
            Op::In(values) => values.iter().any(|s| scalar_eq(s, value)),
            Op::Gt(n) => number.is_some_and(|v| v > *n),
            Op::Gte(n) => number.is_some_and(|v| v >= *n),
            Op::Lt(n) => number.is_some_and(|v| v < *n),
            Op::Lte(n) => number.is_some_and(|v| v <= *n),
        }
    }
}

#[cfg_attr(not(test), allow(dead_code))]
fn scalar_eq(scalar: &Scalar, value: &Value) -> bool {
    match (scalar, value) {
        (Scalar::Str(s), Value::String(v)) => s == v,
        (Scalar::Bool(b), Value::Bool(v)) => b == v,
        (Scalar::Num(n), Value::Number(v)) => v.as_f64() == Some(*n),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(v: Value) -> Result<Vec<Condition>, Error> {
        parse(&v)
    }

    #[test]
    fn bare_values_and_operators() {
        let c =
            parsed(json!({"a": "x", "b.c": {"gte": 1, "lt": 5}, "d": {"in": ["p", "q"]}})).unwrap();
        assert_eq!(c.len(), 4);
        let meta = json!({"a": "x", "b": {"c": 3}, "d": "q"});
        let meta = meta.as_object().unwrap();
        assert!(c.iter().all(|c| c.matches(meta)));
        let other = json!({"a": "x", "b": {"c": "3"}, "d": "q"});
        assert!(!c.iter().all(|c| c.matches(other.as_object().unwrap())));
    }

    #[test]
    fn strict_types() {
        let c = &parsed(json!({"n": 3})).unwrap()[0];
        assert!(c.matches(json!({"n": 3}).as_object().unwrap()));
        assert!(c.matches(json!({"n": 3.0}).as_object().unwrap()));
        assert!(!c.matches(json!({"n": "3"}).as_object().unwrap()));
        assert!(!c.matches(json!({}).as_object().unwrap()));
        let b = &parsed(json!({"f": false})).unwrap()[0];
        assert!(b.matches(json!({"f": false}).as_object().unwrap()));
        assert!(!b.matches(json!({"f": 0}).as_object().unwrap()));
        let gt = &parsed(json!({"s": {"gt": 1}})).unwrap()[0];
        assert!(!gt.matches(json!({"s": "9"}).as_object().unwrap()));
    }

    #[test]
    fn limits_and_bad_filters_are_errors() {
        for bad in [
            json!({"a": 1, "b": 2, "c": 3, "d": 4, "e": {"gt": 1, "lt": 9}}),
            json!({"a-b": 1}),
            json!({"": 1}),
            json!({"a..b": 1}),
            json!({"a.b.c.d.e.f": 1}),
            json!({"x".repeat(101): 1}),
            json!({"a": {"ne": 1}}),
            json!({"a": {}}),
            json!({"a": {"in": []}}),
            json!({"a": {"in": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}}),
            json!({"a": {"in": [1, "1"]}}),
            json!({"a": {"gt": "1"}}),
            json!({"a": null}),
            json!({"a": [1]}),
            json!("a"),
        ] {
            let err = parsed(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(err.code().as_u16(), 9401, "{bad}");
        }
        assert_eq!(
            parsed(json!({"a": 1, "b": 2, "c": 3, "d": {"gt": 1, "lt": 9}}))
                .unwrap()
                .len(),
            5
        );
    }
}
