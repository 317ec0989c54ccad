//! A workflow file's text, and where a value sits in it.
//!
//! serde_yaml gives no spans for values that parsed fine, but it does put the position of the current YAML
//! event on any error raised while deserializing. `Source::locate` uses that: it walks the document with a
//! seed that fails on purpose at the wanted path, and reads the failure's location.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

/// One step of a path into the YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// A path into the document, e.g. `steps[2].with.vault`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YamlPath(pub Vec<Seg>);

impl YamlPath {
    pub fn root() -> YamlPath {
        YamlPath(Vec::new())
    }

    pub fn join(&self, seg: impl Into<Seg>) -> YamlPath {
        let mut v = self.0.clone();
        v.push(seg.into());
        YamlPath(v)
    }
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Which part of a mapping entry to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

#[derive(Debug)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Source {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Hex SHA-256 of the text: a resumed run compares it to refuse a changed workflow.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.text.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// The span of the key or value at `path`; falls back to the nearest ancestor that exists.
    pub fn locate(&self, path: &YamlPath, part: Part) -> Span {
        let mut segs = path.0.as_slice();
        let mut part = part;
        loop {
            if let Some(offset) = self.offset_of(segs, part) {
                return Span {
                    offset,
                    len: token_len(&self.text[offset..]),
                };
            }
            match segs.split_last() {
                Some((_, rest)) if !rest.is_empty() => {
                    segs = rest;
                    part = Part::Key;
                }
                _ => return Span { offset: 0, len: 0 },
            }
        }
    }

    /// The span of `inner` bytes into the scalar at `path` (for a problem inside a `${{ }}` expression).
    pub fn locate_within(&self, path: &YamlPath, inner: usize, len: usize) -> Span {
        let whole = self.locate(path, Part::Value);
        let rest = &self.text[whole.offset..];
        let skip = match rest.chars().next() {
            Some('"') | Some('\'') => 1,
            Some('|') | Some('>') => return whole,
            _ => 0,
        };
        Span {
            offset: whole.offset + skip + inner,
            len: len.max(1),
        }
    }

    fn offset_of(&self, segs: &[Seg], part: Part) -> Option<usize> {
        let de = serde_yaml::Deserializer::from_str(&self.text);
        let err = match (Finder { segs, part }).deserialize(de) {
            Ok(()) => return None,
            Err(e) => e,
        };
        if !err.to_string().contains(HERE) {
            return None;
        }
        err.location().map(|l| l.index())
    }
}

const HERE: &str = "__drflow_locate_here__";

/// Walks to `segs` and fails there, so that serde_yaml stamps the failure with the position.
struct Finder<'a> {
    segs: &'a [Seg],
    part: Part,
}

impl<'de> DeserializeSeed<'de> for Finder<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.segs.is_empty() {
            return d.deserialize_any(Here);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or sequence")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.segs.split_first() else {
            return Err(de::Error::custom("not here"));
        };
        let fail_on_key = rest.is_empty() && self.part == Part::Key;
        while let Some(found) = map.next_key_seed(KeyMatch { want, fail_on_key })? {
            if found {
                return map.next_value_seed(Finder {
                    segs: rest,
                    part: self.part,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("not here"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.segs.split_first() else {
            return Err(de::Error::custom("not here"));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("not here"));
            }
        }
        match seq.next_element_seed(Finder {
            segs: rest,
            part: self.part,
        })? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom("not here")),
        }
    }
}

struct KeyMatch<'a> {
    want: &'a str,
    fail_on_key: bool,
}

impl<'de> DeserializeSeed<'de> for KeyMatch<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyMatch<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if v == self.want && self.fail_on_key {
            return Err(E::custom(HERE));
        }
        Ok(v == self.want)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(if v { "true" } else { "false" })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// Fails on whatever node it meets.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
}

/// Length of the YAML token starting at the beginning of `rest`: a quoted string, or a plain scalar up to `: `,
/// a comment or the end of the line.
fn token_len(rest: &str) -> usize {
    let line = rest.split('\n').next().unwrap_or("");
    let mut chars = line.char_indices();
    match chars.next() {
        Some((_, q @ ('"' | '\''))) => {
            let mut escaped = false;
            for (i, c) in chars {
                if q == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == q && !escaped {
                    return i + 1;
                }
                escaped = false;
            }
            line.len()
        }
        Some((_, '-')) if line.starts_with("- ") => 1,
        Some(_) => {
            let end = [
                line.find(": "),
                line.find(" #"),
                line.find(", "),
                line.find('}'),
                line.find(']'),
                line.ends_with(':').then(|| line.len() - 1),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(line.len());
            line[..end].trim_end().len().max(1)
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nsteps:\n  - id: a\n    with:\n      x: \"${{ inputs.y }}\"\n  - id: b # second\n";

    fn at(src: &Source, span: Span) -> (usize, usize, &str) {
        let (l, c) = src.line_col(span.offset);
        (l, c, &src.text[span.offset..span.offset + span.len])
    }

    #[test]
    fn locates_keys_and_values() {
        let src = Source::new("w.yaml", DOC);
        let p = YamlPath::root().join("steps").join(1).join("id");
        assert_eq!(at(&src, src.locate(&p, Part::Value)), (6, 9, "b"));
        assert_eq!(at(&src, src.locate(&p, Part::Key)), (6, 5, "id"));
        let x = YamlPath::root().join("steps").join(0).join("with").join("x");
        assert_eq!(at(&src, src.locate(&x, Part::Value)), (5, 10, "\"${{ inputs.y }}\""));
        assert_eq!(at(&src, src.locate_within(&x, 4, 6)), (5, 15, "inputs"));
    }

    #[test]
    fn falls_back_to_the_nearest_existing_ancestor() {
        let src = Source::new("w.yaml", DOC);
        let p = YamlPath::root().join("steps").join(0).join("nope");
        assert_eq!(at(&src, src.locate(&p, Part::Value)), (3, 5, "id"));
        let p = YamlPath::root().join("steps").join(0).join("with").join("zz");
        assert_eq!(at(&src, src.locate(&p, Part::Value)), (4, 5, "with"));
    }

    #[test]
    fn path_display() {
        let p = YamlPath::root().join("steps").join(2).join("with");
        assert_eq!(p.to_string(), "steps[2].with");
    }
}
