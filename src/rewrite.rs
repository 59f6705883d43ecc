//! Rewriting ids and progress tokens of JSON-RPC messages without re-serialising them: the new
//! value is spliced into the raw bytes in place of the old one, so members keep their order,
//! numbers keep their digits (`1e400`, 2^70, `1.0`) and strings their escapes. Ids are compared
//! by JSON value, not text ([`value_key`]: `1.0` is `1`, `"\u0041"` is `"A"`). Every child with
//! more than one client (`serve` shared and keyed children, the stateless children) uses this.
//! The top-level `id` of a message the bridge already parsed has a cheaper way in
//! ([`splice_id`]: one scan that stops at the id), taken on every request and answer of a
//! shared or keyed child.

use bytes::Bytes;

/// Deepest nesting the scanner follows (deeper than any message `jsonrpc::parse` accepts).
const MAX_DEPTH: usize = 256;

/// Why a message cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The bytes are not one JSON object.
    #[error("the message is not a JSON object")]
    NotObject,
    /// A member on the path appears twice: which one the child would read is not known.
    #[error("the message names `{0}` twice")]
    Duplicate(String),
    /// The member to replace is not there.
    #[error("the message has no `{0}`")]
    Missing(String),
}

/// The byte range of a value.
type Span = (usize, usize);

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), RewriteError> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(RewriteError::NotObject)
        }
    }

    fn string(&mut self) -> Result<Span, RewriteError> {
        self.ws();
        let start = self.i;
        if self.b.get(self.i) != Some(&b'"') {
            return Err(RewriteError::NotObject);
        }
        self.i += 1;
        loop {
            match self.b.get(self.i) {
                None => return Err(RewriteError::NotObject),
                Some(b'\\') => self.i += 2,
                Some(b'"') => {
                    self.i += 1;
                    return Ok((start, self.i));
                }
                Some(_) => self.i += 1,
            }
        }
    }

    /// Skips one value of any kind.
    fn value(&mut self, depth: usize) -> Result<Span, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(RewriteError::NotObject);
        }
        self.ws();
        let start = self.i;
        match self.b.get(self.i) {
            Some(b'"') => return self.string(),
            Some(b'{') => {
                self.members(depth, |_, _, _| Ok(()))?;
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.value(depth + 1)?;
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err(RewriteError::NotObject),
                        }
                    }
                }
            }
            Some(_) => {
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                {
                    self.i += 1;
                }
            }
            None => {}
        }
        if self.i == start {
            return Err(RewriteError::NotObject);
        }
        Ok((start, self.i))
    }

    /// Walks an object, calling `each(scan, key span, depth)` with the scanner at each member's
    /// value; `each` must consume the value (or leave it to be skipped by returning with the
    /// scanner unmoved).
    fn members(
        &mut self,
        depth: usize,
        mut each: impl FnMut(&mut Self, Span, usize) -> Result<(), RewriteError>,
    ) -> Result<(), RewriteError> {
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            let before = self.i;
            each(self, key, depth + 1)?;
            if self.i == before {
                self.value(depth + 1)?;
            }
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(RewriteError::NotObject),
            }
        }
    }
}

/// The text of a member name, escapes decoded.
fn key_text(raw: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    if raw.contains(&b'\\') {
        serde_json::from_slice::<String>(raw).ok().map(Into::into)
    } else {
        std::str::from_utf8(raw.get(1..raw.len().checked_sub(1)?)?)
            .ok()
            .map(Into::into)
    }
}

/// The span of the value at `path` (member names from the top object down), if present.
fn find(raw: &[u8], path: &[&str]) -> Result<Option<Span>, RewriteError> {
    fn walk(s: &mut Scan<'_>, path: &[&str], depth: usize) -> Result<Option<Span>, RewriteError> {
        let mut found: Option<Span> = None;
        let mut seen = false;
        s.members(depth, |s, key, depth| {
            let name = s.b.get(key.0..key.1).and_then(key_text);
            if name.as_deref() != Some(path[0]) {
                return Ok(());
            }
            if std::mem::replace(&mut seen, true) {
                return Err(RewriteError::Duplicate(path[0].to_owned()));
            }
            if path.len() == 1 {
                found = Some(s.value(depth)?);
            } else if s.b.get(s.i) == Some(&b'{') {
                found = walk(s, &path[1..], depth)?;
            }
            Ok(())
        })?;
        Ok(found)
    }
    let mut s = Scan { b: raw, i: 0 };
    let found = walk(&mut s, path, 0)?;
    s.ws();
    if s.i != raw.len() {
        return Err(RewriteError::NotObject);
    }
    Ok(found)
}

/// The raw text of the value at `path`, if the message has one there.
pub fn get<'a>(raw: &'a [u8], path: &[&str]) -> Result<Option<&'a str>, RewriteError> {
    Ok(find(raw, path)?
        .and_then(|(a, b)| raw.get(a..b))
        .and_then(|v| std::str::from_utf8(v).ok()))
}

/// `raw` with the value at `path` replaced by the JSON text `new`; every other byte stays.
pub fn splice(raw: &[u8], path: &[&str], new: &str) -> Result<Bytes, RewriteError> {
    let Some((a, b)) = find(raw, path)? else {
        return Err(RewriteError::Missing(path.join(".")));
    };
    let mut out = Vec::with_capacity(raw.len() + new.len());
    out.extend_from_slice(&raw[..a]);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&raw[b..]);
    Ok(Bytes::from(out))
}

/// A key under which equal JSON values (ids, progress tokens) compare equal whatever their
/// spelling: strings by their decoded text, numbers by value (`1`, `1.0` and `10e-1` alike).
pub fn value_key(text: &str) -> Box<str> {
    let t = text.trim();
    if t.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(t) {
            return format!("s{s}").into();
        }
    } else if let Ok(n) = serde_json::from_str::<serde_json::Number>(t) {
        if let Some(i) = n.as_i64() {
            return format!("n{i}").into();
        }
        if let Some(u) = n.as_u64() {
            return format!("n{u}").into();
        }
        if let Some(f) = n.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                return format!("n{}", f as i64).into();
            }
            return format!("f{f:e}").into();
        }
    }
    // Out of range (`1e400`) or not a scalar: the text itself.
    format!("r{t}").into()
}

/// The number `n` if `text` is that JSON number (by value).
pub fn as_number(text: &str) -> Option<u64> {
    // The bridge's own ids (plain digits, no leading zero) need no detour through `value_key`.
    let t = text.as_bytes();
    if !t.is_empty() && t.iter().all(u8::is_ascii_digit) && (t[0] != b'0' || t.len() == 1) {
        return text.parse().ok();
    }
    value_key(text).strip_prefix('n')?.parse().ok()
}

#[doc(hidden)]
pub mod check;
mod id;
pub use id::{get_id, may_name_progress_token, splice_id};
#[cfg(test)]
mod tests;
