//! Values in ASL (JSONPath) payload templates: a literal, or a path / intrinsic function evaluated at run time, nested
//! in objects and arrays. `place` writes one under its key (`"Key"` or `"Key.$"`).

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Lit(Value),
    /// A reference path (`$.a.b`, `$$.Execution.Name`) or an intrinsic function (`States.Format(...)`).
    Expr(String),
    Obj(Vec<(String, Node)>),
    Arr(Vec<Node>),
    /// Left out (an optional input the step does not give).
    Absent,
}

impl Node {
    /// A plain reference path (what a Choice rule's `Variable` or a Wait's `SecondsPath` takes).
    pub fn path(&self) -> Option<&str> {
        match self {
            Node::Expr(p) if p.starts_with('$') => Some(p),
            _ => None,
        }
    }

    /// As an argument of an intrinsic function: a path, a nested function, or a literal string, number, boolean
    /// or null. `None` for objects and arrays (intrinsics take none).
    pub fn arg(&self) -> Option<String> {
        match self {
            Node::Expr(e) => Some(e.clone()),
            Node::Lit(Value::String(s)) => Some(quote(s)),
            Node::Lit(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Some(v.to_string()),
            _ => None,
        }
    }

    /// Literal objects and arrays folded into one literal; an array holding run-time scalars becomes
    /// `States.Array(...)` (an array in a payload template is not evaluated inside, except in its objects).
    pub fn simplify(self) -> Node {
        match self {
            Node::Obj(entries) => {
                let had = !entries.is_empty();
                let entries: Vec<(String, Node)> = entries
                    .into_iter()
                    .map(|(k, v)| (k, v.simplify()))
                    .filter(|(_, v)| *v != Node::Absent)
                    .collect();
                if had && entries.is_empty() {
                    return Node::Absent;
                }
                if entries.iter().all(|(_, v)| matches!(v, Node::Lit(_))) {
                    let mut m = Map::new();
                    for (k, v) in entries {
                        if let Node::Lit(v) = v {
                            m.insert(k, v);
                        }
                    }
                    return Node::Lit(Value::Object(m));
                }
                Node::Obj(entries)
            }
            Node::Arr(items) => {
                let items: Vec<Node> = items
                    .into_iter()
                    .map(Node::simplify)
                    .filter(|v| *v != Node::Absent)
                    .collect();
                if items.iter().all(|v| matches!(v, Node::Lit(_))) {
                    return Node::Lit(Value::Array(
                        items
                            .into_iter()
                            .filter_map(|v| if let Node::Lit(v) = v { Some(v) } else { None })
                            .collect(),
                    ));
                }
                if items.iter().all(|v| v.arg().is_some()) {
                    let args: Vec<String> = items.iter().filter_map(Node::arg).collect();
                    return Node::Expr(format!("States.Array({})", args.join(", ")));
                }
                Node::Arr(items)
            }
            other => other,
        }
    }

    /// Writes the node under `key` in a payload template.
    pub fn place(self, key: &str, into: &mut Map<String, Value>) {
        match self.simplify() {
            Node::Absent => {}
            Node::Lit(v) => {
                into.insert(key.to_string(), v);
            }
            Node::Expr(e) => {
                into.insert(format!("{key}.$"), Value::String(e));
            }
            n @ (Node::Obj(_) | Node::Arr(_)) => {
                into.insert(key.to_string(), n.template());
            }
        }
    }

    /// The node as a payload template value (objects and arrays; their run-time leaves as `Key.$`).
    pub fn template(self) -> Value {
        match self.simplify() {
            Node::Obj(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    v.place(&k, &mut m);
                }
                Value::Object(m)
            }
            Node::Arr(items) => Value::Array(items.into_iter().map(Node::template).collect()),
            Node::Lit(v) => v,
            // A run-time value cannot stand alone in an array of a template: `simplify` made such arrays
            // `States.Array`; what is left here sits in an object.
            Node::Expr(e) => Value::String(e),
            Node::Absent => Value::Null,
        }
    }
}

/// A string literal as an intrinsic function argument: in single quotes, with `'`, `{`, `}` and `\` escaped, and
/// line breaks and tabs as `\n`, `\r`, `\t` (an intrinsic function is one line: statelint refuses a line break in
/// it; Step Functions reads these escapes, as LocalStack's and moto's engines reproduce it).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\'' | '{' | '}' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `States.Format` of a text with `{}` placeholders and its arguments; a plain literal when every argument is one.
pub(crate) fn format(text: &str, args: Vec<Node>) -> Result<Node, String> {
    if args.iter().all(|a| matches!(a, Node::Lit(_))) {
        let mut out = String::new();
        let mut rest = text;
        for a in &args {
            let Some(i) = rest.find("{}") else { break };
            out.push_str(&rest[..i]);
            if let Node::Lit(v) = a {
                out.push_str(&crate::workflow::expr::to_text(v));
            }
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        return Ok(Node::Lit(Value::String(out)));
    }
    let mut parts = vec![quote(text).replace("\\{\\}", "{}")];
    for a in args {
        parts.push(
            a.arg()
                .ok_or_else(|| "an object or list cannot be formatted into a string".to_string())?,
        );
    }
    Ok(Node::Expr(format!("States.Format({})", parts.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_fold_and_run_time_values_get_dollar_keys() {
        let mut m = Map::new();
        Node::Obj(vec![
            ("A".into(), Node::Lit(json!(1))),
            ("B".into(), Node::Expr("$.x".into())),
            ("C".into(), Node::Absent),
        ])
        .place("P", &mut m);
        Node::Arr(vec![Node::Lit(json!("a")), Node::Expr("$.y".into())]).place("L", &mut m);
        Node::Obj(vec![("X".into(), Node::Absent)]).place("Gone", &mut m);
        assert_eq!(
            Value::Object(m),
            json!({"P": {"A": 1, "B.$": "$.x"}, "L.$": "States.Array('a', $.y)"})
        );
    }

    #[test]
    fn format_escapes_literal_text_and_folds_literals() {
        assert_eq!(
            format("it's {} of {x}", vec![Node::Expr("$.a".into())]).unwrap(),
            Node::Expr("States.Format('it\\'s {} of \\{x\\}', $.a)".into())
        );
        assert_eq!(
            format("a-{}-{}", vec![Node::Lit(json!("b")), Node::Lit(json!(3))]).unwrap(),
            Node::Lit(json!("a-b-3"))
        );
    }
}
