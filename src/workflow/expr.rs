//! The one expression syntax of workflows: `${{ ... }}` inside strings, and conditions.
//!
//! Grammar (no general scripting on purpose):
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | compare
//! compare := primary (("==" | "!=") primary)?
//! primary := "(" expr ")" | 'text' | "text" | number | true | false | null | reference
//! reference := name ("." name)*        e.g. inputs.instance_id, steps.backup.outputs.job_id, regions.dr
//! ```
//!
//! Parsing gives expressions over `Reference`s (dotted paths, located in the text); validation resolves each into a
//! typed `Ref` (`workflow::refs`), so what runs, and what plans, only ever evaluates `Expr<Ref>`.

use serde_json::Value;

use super::refs::{Ref, Scope};

/// A parse problem, `at` bytes into the parsed text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    pub at: usize,
    pub len: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub path: Vec<String>,
    /// Byte offset of the reference in the text it was parsed from.
    pub at: usize,
    pub len: usize,
}

/// An expression over references of type `R`: `Reference` as parsed, `Ref` once validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr<R = Ref> {
    Literal(Value),
    Ref(R),
    Not(Box<Expr<R>>),
    And(Box<Expr<R>>, Box<Expr<R>>),
    Or(Box<Expr<R>>, Box<Expr<R>>),
    Eq(Box<Expr<R>>, Box<Expr<R>>),
    Ne(Box<Expr<R>>, Box<Expr<R>>),
}

impl<R> Expr<R> {
    /// Every reference in the expression.
    pub fn references(&self) -> Vec<&R> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a R>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Ref(r) => out.push(r),
            Expr::Not(e) => e.collect(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Eq(a, b) | Expr::Ne(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// The same expression with every reference replaced by `f`'s answer; `None` if `f` refuses any (it reports why).
    pub fn resolve<T>(&self, f: &mut dyn FnMut(&R) -> Option<T>) -> Option<Expr<T>> {
        let bin = |a: &Expr<R>, b: &Expr<R>, f: &mut dyn FnMut(&R) -> Option<T>| {
            // Both sides are resolved, so every bad reference is reported, not only the first.
            let (a, b) = (a.resolve(f), b.resolve(f));
            Some((Box::new(a?), Box::new(b?)))
        };
        Some(match self {
            Expr::Literal(v) => Expr::Literal(v.clone()),
            Expr::Ref(r) => Expr::Ref(f(r)?),
            Expr::Not(e) => Expr::Not(Box::new(e.resolve(f)?)),
            Expr::And(a, b) => {
                let (a, b) = bin(a, b, f)?;
                Expr::And(a, b)
            }
            Expr::Or(a, b) => {
                let (a, b) = bin(a, b, f)?;
                Expr::Or(a, b)
            }
            Expr::Eq(a, b) => {
                let (a, b) = bin(a, b, f)?;
                Expr::Eq(a, b)
            }
            Expr::Ne(a, b) => {
                let (a, b) = bin(a, b, f)?;
                Expr::Ne(a, b)
            }
        })
    }
}

impl Expr<Reference> {
    /// Parses a whole expression. `base` is added to every offset (its position in the enclosing text).
    pub fn parse(text: &str, base: usize) -> Result<Expr<Reference>, ExprError> {
        let tokens = lex(text, base)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: base + text.len(),
        };
        let e = p.or()?;
        if let Some(t) = p.tokens.get(p.pos) {
            return Err(ExprError {
                at: t.at,
                len: t.len,
                message: format!("unexpected `{}` after the end of the expression", t.text),
            });
        }
        Ok(e)
    }
}

impl Expr<Ref> {
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Ref(r) => scope.value(r)?,
            Expr::Not(e) => Value::Bool(!truth(&e.eval(scope)?)?),
            Expr::And(a, b) => Value::Bool(truth(&a.eval(scope)?)? && truth(&b.eval(scope)?)?),
            Expr::Or(a, b) => Value::Bool(truth(&a.eval(scope)?)? || truth(&b.eval(scope)?)?),
            Expr::Eq(a, b) => Value::Bool(same(&a.eval(scope)?, &b.eval(scope)?)),
            Expr::Ne(a, b) => Value::Bool(!same(&a.eval(scope)?, &b.eval(scope)?)),
        })
    }

    /// Evaluates a condition: the result must be a boolean.
    pub fn test(&self, scope: &dyn Scope) -> Result<bool, String> {
        truth(&self.eval(scope)?)
    }
}

fn truth(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(format!("expected true or false, got {other}")),
    }
}

/// Equality that treats `"3"` and `3` alike, since YAML and the command line disagree on quoting.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(s), Value::Number(_) | Value::Bool(_))
        | (Value::Number(_) | Value::Bool(_), Value::String(s)) => {
            *s == to_text(if matches!(a, Value::String(_)) { b } else { a })
        }
        _ => a == b,
    }
}

/// How a value reads when interpolated into a string.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(Value),
    Word(String),
    Op(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    text: String,
    at: usize,
    len: usize,
}

fn lex(text: &str, base: usize) -> Result<Vec<Token>, ExprError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c == '\'' || c == '"' {
            let close = text[i + 1..].find(c).ok_or(ExprError {
                at: base + i,
                len: text.len() - i,
                message: "unterminated string".into(),
            })?;
            i += close + 2;
            Tok::Str(text[start + 1..i - 1].to_string())
        } else if c.is_ascii_digit() || (c == '-' && bytes.get(i + 1).is_some_and(|b| b.is_ascii_digit())) {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let v: Value = serde_json::from_str(&text[start..i]).map_err(|_| ExprError {
                at: base + start,
                len: i - start,
                message: format!("`{}` is not a number", &text[start..i]),
            })?;
            Tok::Num(v)
        } else if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'-' | b'.')) {
                i += 1;
            }
            Tok::Word(text[start..i].to_string())
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let op = match two {
                "==" => "==",
                "!=" => "!=",
                "&&" => "&&",
                "||" => "||",
                _ => match c {
                    '!' => "!",
                    '(' => "(",
                    ')' => ")",
                    _ => {
                        let hint = if c == '=' { " (compare with `==`)" } else { "" };
                        return Err(ExprError {
                            at: base + i,
                            len: 1,
                            message: format!("unexpected `{c}` in expression{hint}"),
                        });
                    }
                },
            };
            i += op.len();
            Tok::Op(op)
        };
        out.push(Token {
            tok,
            text: text[start..i].to_string(),
            at: base + start,
            len: i - start,
        });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token { tok: Tok::Op(o), .. }) if *o == op)
    }

    fn or(&mut self) -> Result<Expr<Reference>, ExprError> {
        let mut left = self.and()?;
        while self.peek_op("||") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr<Reference>, ExprError> {
        let mut left = self.unary()?;
        while self.peek_op("&&") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr<Reference>, ExprError> {
        if self.peek_op("!") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let left = self.primary()?;
        for (op, make) in [("==", Expr::Eq as fn(_, _) -> _), ("!=", Expr::Ne)] {
            if self.peek_op(op) {
                self.pos += 1;
                let right = self.primary()?;
                return Ok(make(Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr<Reference>, ExprError> {
        let Some(t) = self.tokens.get(self.pos).cloned() else {
            return Err(ExprError {
                at: self.end,
                len: 1,
                message: "expression ends too early: a value or reference was expected".into(),
            });
        };
        self.pos += 1;
        Ok(match t.tok {
            Tok::Str(s) => Expr::Literal(Value::String(s)),
            Tok::Num(n) => Expr::Literal(n),
            Tok::Word(w) if w == "true" => Expr::Literal(Value::Bool(true)),
            Tok::Word(w) if w == "false" => Expr::Literal(Value::Bool(false)),
            Tok::Word(w) if w == "null" => Expr::Literal(Value::Null),
            Tok::Word(w) => {
                let path: Vec<String> = w.split('.').map(str::to_string).collect();
                if path.iter().any(String::is_empty) {
                    return Err(ExprError {
                        at: t.at,
                        len: t.len,
                        message: format!("`{w}` is not a valid reference"),
                    });
                }
                Expr::Ref(Reference {
                    path,
                    at: t.at,
                    len: t.len,
                })
            }
            Tok::Op("(") => {
                let e = self.or()?;
                if !self.peek_op(")") {
                    return Err(ExprError {
                        at: self.tokens.get(self.pos).map_or(self.end, |t| t.at),
                        len: 1,
                        message: "missing `)`".into(),
                    });
                }
                self.pos += 1;
                e
            }
            Tok::Op(op) => {
                return Err(ExprError {
                    at: t.at,
                    len: t.len,
                    message: format!("unexpected `{op}`: a value or reference was expected"),
                });
            }
        })
    }
}

/// A string with `${{ expr }}` holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Template<R = Ref> {
    pub pieces: Vec<Piece<R>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Piece<R = Ref> {
    Text(String),
    Expr(Expr<R>),
}

impl<R> Template<R> {
    /// True when the text has no `${{ }}` at all.
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    pub fn references(&self) -> Vec<&R> {
        self.pieces
            .iter()
            .flat_map(|p| match p {
                Piece::Expr(e) => e.references(),
                Piece::Text(_) => Vec::new(),
            })
            .collect()
    }

    /// The same template with every reference resolved by `f` (see `Expr::resolve`).
    pub fn resolve<T>(&self, f: &mut dyn FnMut(&R) -> Option<T>) -> Option<Template<T>> {
        let pieces: Vec<Option<Piece<T>>> = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => Some(Piece::Text(t.clone())),
                Piece::Expr(e) => e.resolve(f).map(Piece::Expr),
            })
            .collect();
        Some(Template {
            pieces: pieces.into_iter().collect::<Option<_>>()?,
        })
    }
}

impl Template<Reference> {
    pub fn parse(text: &str) -> Result<Template<Reference>, ExprError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("${{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let inner_start = open + 3;
            let close = rest[inner_start..].find("}}").ok_or(ExprError {
                at: offset + open,
                len: rest.len() - open,
                message: "`${{` is not closed with `}}`".into(),
            })?;
            let inner = &rest[inner_start..inner_start + close];
            if inner.trim().is_empty() {
                return Err(ExprError {
                    at: offset + open,
                    len: close + 5,
                    message: "empty `${{ }}`".into(),
                });
            }
            pieces.push(Piece::Expr(Expr::parse(inner, offset + inner_start)?));
            let consumed = inner_start + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }
}

impl Template<Ref> {
    /// A template that is exactly one `${{ }}` keeps the value's type; anything else becomes a string.
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, String> {
        if let [Piece::Expr(e)] = self.pieces.as_slice() {
            return e.eval(scope);
        }
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Expr(e) => out.push_str(&to_text(&e.eval(scope)?)),
            }
        }
        Ok(Value::String(out))
    }
}

/// A reference as written (`inputs.x`): parsed and resolved references print the same.
pub trait Dotted {
    fn dotted(&self) -> String;
}

impl Dotted for Reference {
    fn dotted(&self) -> String {
        self.path.join(".")
    }
}

impl Dotted for Ref {
    fn dotted(&self) -> String {
        Ref::dotted(self)
    }
}

/// A template as text, `${{ }}` and all.
pub fn template_text<R: Dotted>(t: &Template<R>) -> String {
    t.pieces
        .iter()
        .map(|p| match p {
            Piece::Text(s) => s.clone(),
            Piece::Expr(e) => format!("${{{{ {} }}}}", expr_text(e)),
        })
        .collect()
}

/// An expression as text, in the workflow syntax, with the parentheses its grammar needs.
pub fn expr_text<R: Dotted>(e: &Expr<R>) -> String {
    // Binding strength: `||` < `&&` < `!` < `==` `!=` < values. `==` compares values only.
    fn strength<R>(e: &Expr<R>) -> u8 {
        match e {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(..) => 3,
            Expr::Eq(..) | Expr::Ne(..) => 4,
            Expr::Literal(_) | Expr::Ref(_) => 5,
        }
    }
    fn at_least<R: Dotted>(e: &Expr<R>, min: u8) -> String {
        if strength(e) < min {
            format!("({})", expr_text(e))
        } else {
            expr_text(e)
        }
    }
    match e {
        Expr::Literal(Value::String(s)) if s.contains('\'') => format!("\"{s}\""),
        Expr::Literal(Value::String(s)) => format!("'{s}'"),
        Expr::Literal(v) => v.to_string(),
        Expr::Ref(r) => r.dotted(),
        // `!a == b` would read as `(!a) == b`; it means `!(a == b)`: always show the parentheses.
        Expr::Not(inner) => format!("!{}", at_least(inner, if strength(inner) == 4 { 5 } else { 3 })),
        Expr::And(a, b) => format!("{} && {}", at_least(a, 2), at_least(b, 3)),
        Expr::Or(a, b) => format!("{} || {}", at_least(a, 1), at_least(b, 2)),
        Expr::Eq(a, b) => format!("{} == {}", at_least(a, 5), at_least(b, 5)),
        Expr::Ne(a, b) => format!("{} != {}", at_least(a, 5), at_least(b, 5)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S;
    impl Scope for S {
        fn value(&self, r: &Ref) -> Result<Value, String> {
            match r.dotted().as_str() {
                "inputs.flag" => Ok(json!(true)),
                "inputs.env" => Ok(json!("prod")),
                "inputs.n" => Ok(json!(3)),
                "steps.a.outputs.id" => Ok(json!("ami-1")),
                other => Err(format!("no {other}")),
            }
        }
    }

    /// Resolves references the way validation does, without a workflow to check them against.
    fn typed(r: &Reference) -> Option<Ref> {
        Ref::from_path(&r.path)
    }

    fn expr(s: &str) -> Expr {
        Expr::parse(s, 0).unwrap().resolve(&mut typed).unwrap()
    }

    fn template(s: &str) -> Template {
        Template::parse(s).unwrap().resolve(&mut typed).unwrap()
    }

    #[test]
    fn evaluates_conditions() {
        let t = |s: &str| expr(s).test(&S).unwrap();
        assert!(t("inputs.flag"));
        assert!(t("inputs.env == 'prod' && !(inputs.n != 3)"));
        assert!(!t("!inputs.flag || inputs.env == \"dev\""));
        assert!(t("inputs.n == '3'"));
        assert!(t("false || true && true"));
    }

    #[test]
    fn templates_keep_types_when_whole() {
        let t = template("${{ inputs.n }}");
        assert_eq!(t.eval(&S).unwrap(), json!(3));
        let t = template("/drflow/${{ inputs.env }}/${{steps.a.outputs.id}}");
        assert_eq!(t.eval(&S).unwrap(), json!("/drflow/prod/ami-1"));
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn references_carry_offsets() {
        let t = Template::parse("x-${{ steps.a.outputs.id }}").unwrap();
        let r = t.references()[0];
        assert_eq!((r.at, r.len), (6, 18));
        assert_eq!(r.dotted(), "steps.a.outputs.id");
    }

    #[test]
    fn reports_parse_errors_with_positions() {
        let e = Template::parse("a ${{ inputs.x = 1 }}").unwrap_err();
        assert_eq!(e.at, 15);
        assert!(e.message.contains("=="));
        assert!(
            Template::parse("${{ inputs.x ")
                .unwrap_err()
                .message
                .contains("not closed")
        );
        assert!(
            Expr::parse("inputs.x &&", 0)
                .unwrap_err()
                .message
                .contains("ends too early")
        );
        assert!(Expr::parse("(inputs.x", 0).unwrap_err().message.contains(")"));
    }
}
