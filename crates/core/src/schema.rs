//! JSON Schema, the part tools and structured output use: `type`, `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items`, `minItems`/`maxItems`,
//! `uniqueItems`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum` (and exclusive),
//! `multipleOf`, `minProperties`/`maxProperties`, `allOf`/`anyOf`/`oneOf`/`not`, and local
//! `$ref`s (`#/$defs/…`, `#/definitions/…`). Other keywords (`format`, `description`, …) are
//! annotations and do not fail a value, as the specification allows.
//!
//! [`check`] vets a schema when it is declared; [`validate`] checks a value against it.

use serde_json::{Map, Value};

/// How deep schemas and `$ref` chains may nest (a reference loop ends here, as an error).
const MAX_DEPTH: usize = 64;
/// The most errors reported for one value.
const MAX_ERRORS: usize = 10;
/// How many (schema, value) pairs one validation may visit: nested `anyOf`s cannot make it
/// exponential.
const MAX_WORK: usize = 100_000;
/// The longest `pattern` accepted.
const MAX_PATTERN: usize = 1000;

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

/// Vets a schema: an object (or `true`/`false`) whose keywords have the right shapes, whose
/// patterns compile and whose `$ref`s resolve. The error names the place that is wrong.
pub fn check(schema: &Value) -> Result<(), String> {
    check_at(schema, schema, "#", 0)
}

fn check_at(root: &Value, s: &Value, at: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{at}: nested too deeply"));
    }
    let obj = match s {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{at}: a schema must be an object or a boolean")),
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for n in names {
            if !n.as_str().is_some_and(|n| TYPES.contains(&n)) {
                return Err(format!("{at}/type: {n} is not a JSON Schema type"));
            }
        }
    }
    if let Some(p) = obj.get("pattern") {
        let p = p
            .as_str()
            .ok_or_else(|| format!("{at}/pattern: must be a string"))?;
        compile(p).map_err(|e| format!("{at}/pattern: {e}"))?;
    }
    if let Some(r) = obj.get("$ref") {
        let r = r
            .as_str()
            .ok_or_else(|| format!("{at}/$ref: must be a string"))?;
        resolve(root, r).ok_or_else(|| format!("{at}/$ref: {r} does not resolve"))?;
    }
    if let Some(e) = obj.get("enum")
        && !e.is_array()
    {
        return Err(format!("{at}/enum: must be a list"));
    }
    if let Some(r) = obj.get("required")
        && !r.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err(format!("{at}/required: must be a list of names"));
    }
    for k in [
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    ] {
        if let Some(v) = obj.get(k)
            && v.as_u64().is_none()
        {
            return Err(format!("{at}/{k}: must be a whole number"));
        }
    }
    for k in [
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    ] {
        if let Some(v) = obj.get(k)
            && !v.is_number()
        {
            return Err(format!("{at}/{k}: must be a number"));
        }
    }
    if obj.get("multipleOf").and_then(Value::as_f64) == Some(0.0) {
        return Err(format!("{at}/multipleOf: must not be zero"));
    }
    for k in ["properties", "$defs", "definitions"] {
        if let Some(v) = obj.get(k) {
            let m = v
                .as_object()
                .ok_or_else(|| format!("{at}/{k}: must be an object"))?;
            for (name, sub) in m {
                check_at(root, sub, &format!("{at}/{k}/{name}"), depth + 1)?;
            }
        }
    }
    for k in ["items", "additionalProperties", "not"] {
        if let Some(v) = obj.get(k) {
            check_at(root, v, &format!("{at}/{k}"), depth + 1)?;
        }
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        if let Some(v) = obj.get(k) {
            let list = v
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| format!("{at}/{k}: must be a non-empty list of schemas"))?;
            for (i, sub) in list.iter().enumerate() {
                check_at(root, sub, &format!("{at}/{k}/{i}"), depth + 1)?;
            }
        }
    }
    Ok(())
}

fn compile(p: &str) -> Result<regex::Regex, String> {
    if p.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} characters"));
    }
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map_err(|_| "not a valid regular expression".to_string())
}

/// Finds a local reference (`#`, `#/$defs/x`, with `~0`/`~1` escapes) in the root schema.
fn resolve<'a>(root: &'a Value, r: &str) -> Option<&'a Value> {
    let pointer = r.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

/// Checks `value` against `schema`. The error lists what is wrong, each with its place in the
/// value (`/items/0/name: …`), at most ten of them.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    let mut errors = vec![];
    let mut budget = MAX_WORK;
    walk(
        schema,
        schema,
        value,
        "",
        0,
        &mut Errs {
            list: &mut errors,
            budget: &mut budget,
        },
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::Number(_) => "number",
        Value::String(_) => "string",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => match v {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        t => type_of(v) == t,
    }
}

fn place(at: &str) -> &str {
    if at.is_empty() { "the value" } else { at }
}

/// The errors found so far and the work left.
struct Errs<'a> {
    list: &'a mut Vec<String>,
    budget: &'a mut usize,
}

impl std::ops::Deref for Errs<'_> {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        self.list
    }
}

impl std::ops::DerefMut for Errs<'_> {
    fn deref_mut(&mut self) -> &mut Vec<String> {
        self.list
    }
}

fn walk(root: &Value, s: &Value, v: &Value, at: &str, depth: usize, errors: &mut Errs) {
    if errors.len() >= MAX_ERRORS {
        return;
    }
    if *errors.budget == 0 {
        errors.push("the schema is too complex to check this value".into());
        return;
    }
    *errors.budget -= 1;
    if depth > MAX_DEPTH {
        errors.push(format!("{}: the schema nests too deeply", place(at)));
        return;
    }
    let obj: &Map<String, Value> = match s {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{}: no value is allowed here", place(at)));
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
        match resolve(root, r) {
            Some(target) => walk(root, target, v, at, depth + 1, errors),
            None => errors.push(format!(
                "{}: the schema's $ref {r} does not resolve",
                place(at)
            )),
        }
    }
    if let Some(t) = obj.get("type") {
        let names: Vec<&str> = match t {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            Value::String(s) => vec![s.as_str()],
            _ => vec![],
        };
        if !names.is_empty() && !names.iter().any(|n| is_type(v, n)) {
            errors.push(format!(
                "{}: must be {}, not {}",
                place(at),
                names.join(" or "),
                type_of(v)
            ));
            return;
        }
    }
    if let Some(list) = obj.get("enum").and_then(Value::as_array)
        && !list.iter().any(|x| same(x, v))
    {
        errors.push(format!(
            "{}: must be one of {}",
            place(at),
            Value::from(list.clone())
        ));
    }
    if let Some(c) = obj.get("const")
        && !same(c, v)
    {
        errors.push(format!("{}: must be {c}", place(at)));
    }
    match v {
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(m) = obj.get("minLength").and_then(Value::as_u64)
                && n < m
            {
                errors.push(format!("{}: shorter than {m} characters", place(at)));
            }
            if let Some(m) = obj.get("maxLength").and_then(Value::as_u64)
                && n > m
            {
                errors.push(format!("{}: longer than {m} characters", place(at)));
            }
            if let Some(p) = obj.get("pattern").and_then(Value::as_str) {
                match compile(p) {
                    Ok(re) if !re.is_match(s) => {
                        errors.push(format!("{}: does not match the pattern {p}", place(at)))
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(format!("{}: the schema's pattern is {e}", place(at))),
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let num = |k: &str| obj.get(k).and_then(Value::as_f64);
            if let Some(m) = num("minimum")
                && x < m
            {
                errors.push(format!("{}: less than {m}", place(at)));
            }
            if let Some(m) = num("maximum")
                && x > m
            {
                errors.push(format!("{}: more than {m}", place(at)));
            }
            if let Some(m) = num("exclusiveMinimum")
                && x <= m
            {
                errors.push(format!("{}: must be more than {m}", place(at)));
            }
            if let Some(m) = num("exclusiveMaximum")
                && x >= m
            {
                errors.push(format!("{}: must be less than {m}", place(at)));
            }
            if let Some(m) = num("multipleOf")
                && m != 0.0
            {
                let q = x / m;
                if (q - q.round()).abs() > 1e-9 {
                    errors.push(format!("{}: not a multiple of {m}", place(at)));
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(m) = obj.get("minItems").and_then(Value::as_u64)
                && n < m
            {
                errors.push(format!("{}: fewer than {m} items", place(at)));
            }
            if let Some(m) = obj.get("maxItems").and_then(Value::as_u64)
                && n > m
            {
                errors.push(format!("{}: more than {m} items", place(at)));
            }
            if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
                'outer: for (i, a) in items.iter().enumerate() {
                    for b in &items[i + 1..] {
                        if same(a, b) {
                            errors.push(format!("{}: items must be unique", place(at)));
                            break 'outer;
                        }
                    }
                }
            }
            if let Some(sub) = obj.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(root, sub, item, &format!("{at}/{i}"), depth + 1, errors);
                }
            }
        }
        Value::Object(map) => {
            let n = map.len() as u64;
            if let Some(m) = obj.get("minProperties").and_then(Value::as_u64)
                && n < m
            {
                errors.push(format!("{}: fewer than {m} properties", place(at)));
            }
            if let Some(m) = obj.get("maxProperties").and_then(Value::as_u64)
                && n > m
            {
                errors.push(format!("{}: more than {m} properties", place(at)));
            }
            for r in obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(r) {
                    errors.push(format!("{at}/{r}: is required"));
                }
            }
            let props = obj.get("properties").and_then(Value::as_object);
            for (k, val) in map {
                let here = format!("{at}/{k}");
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => walk(root, sub, val, &here, depth + 1, errors),
                    None => match obj.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{here}: is not an allowed property"))
                        }
                        Some(sub) => walk(root, sub, val, &here, depth + 1, errors),
                        None => {}
                    },
                }
            }
        }
        _ => {}
    }
    if let Some(list) = obj.get("allOf").and_then(Value::as_array) {
        for sub in list {
            walk(root, sub, v, at, depth + 1, errors);
        }
    }
    if let Some(list) = obj.get("anyOf").and_then(Value::as_array)
        && !list
            .iter()
            .any(|sub| passes(root, sub, v, at, depth, errors.budget))
    {
        errors.push(format!("{}: matches none of anyOf", place(at)));
    }
    if let Some(list) = obj.get("oneOf").and_then(Value::as_array) {
        let mut n = 0;
        for sub in list {
            n += usize::from(passes(root, sub, v, at, depth, errors.budget));
        }
        if n != 1 {
            errors.push(format!(
                "{}: must match exactly one of oneOf, matches {n}",
                place(at)
            ));
        }
    }
    if let Some(sub) = obj.get("not")
        && passes(root, sub, v, at, depth, errors.budget)
    {
        errors.push(format!("{}: must not match the schema in not", place(at)));
    }
    errors.truncate(MAX_ERRORS);
}

/// Whether `v` satisfies `sub` (a branch of `anyOf`, `oneOf` or `not`).
fn passes(
    root: &Value,
    sub: &Value,
    v: &Value,
    at: &str,
    depth: usize,
    budget: &mut usize,
) -> bool {
    let mut list = vec![];
    walk(
        root,
        sub,
        v,
        at,
        depth + 1,
        &mut Errs {
            list: &mut list,
            budget,
        },
    );
    list.is_empty()
}

/// JSON equality where `1` and `1.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_check_types_required_and_extras() {
        let s = json!({"type": "object", "properties": {
            "city": {"type": "string", "minLength": 1},
            "days": {"type": "integer", "minimum": 1, "maximum": 14}},
            "required": ["city"], "additionalProperties": false});
        assert!(check(&s).is_ok());
        assert!(validate(&s, &json!({"city": "Oslo", "days": 3})).is_ok());
        assert!(validate(&s, &json!({"city": "Oslo", "days": 3.0})).is_ok());
        let e = validate(&s, &json!({"days": 30, "x": 1})).unwrap_err();
        assert!(e.contains("/city: is required"), "{e}");
        assert!(e.contains("/days: more than 14"), "{e}");
        assert!(e.contains("/x: is not an allowed property"), "{e}");
        let e = validate(&s, &json!("Oslo")).unwrap_err();
        assert_eq!(e, "the value: must be object, not string");
        let e = validate(&s, &json!({"city": 3})).unwrap_err();
        assert_eq!(e, "/city: must be string, not number");
        assert!(validate(&s, &json!({"city": "Oslo", "days": 2.5})).is_err());
    }

    #[test]
    fn arrays_enums_combinators_and_refs() {
        let s = json!({"$defs": {"tag": {"enum": ["a", "b"]}},
            "type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1, "uniqueItems": true});
        assert!(check(&s).is_ok());
        assert!(validate(&s, &json!(["a", "b"])).is_ok());
        assert!(validate(&s, &json!([])).is_err());
        assert!(validate(&s, &json!(["a", "a"])).is_err());
        assert!(
            validate(&s, &json!(["c"]))
                .unwrap_err()
                .contains("/0: must be one of")
        );
        let s = json!({"anyOf": [{"type": "string", "pattern": "^x"}, {"type": "null"}]});
        assert!(validate(&s, &json!("xy")).is_ok());
        assert!(validate(&s, &Value::Null).is_ok());
        assert!(validate(&s, &json!("yx")).is_err());
        let s = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
        assert!(validate(&s, &json!(1.5)).is_ok());
        assert!(validate(&s, &json!(1)).is_err());
        assert!(validate(&json!({"not": {"type": "string"}}), &json!(1)).is_ok());
        assert!(validate(&json!(false), &json!(1)).is_err());
    }

    #[test]
    fn bad_schemas_and_reference_loops_are_caught() {
        assert!(check(&json!("string")).is_err());
        assert!(check(&json!({"type": "text"})).is_err());
        assert!(check(&json!({"pattern": "("})).is_err());
        assert!(check(&json!({"$ref": "#/$defs/missing"})).is_err());
        assert!(check(&json!({"required": "a"})).is_err());
        assert!(check(&json!({"anyOf": []})).is_err());
        assert!(check(&json!({"minLength": -1})).is_err());
        // A reference to itself passes the check (it resolves) but a value ends at the depth cap.
        let looped = json!({"$ref": "#"});
        assert!(check(&looped).is_ok());
        assert!(validate(&looped, &json!(1)).is_err());
    }
}
