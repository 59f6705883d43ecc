//! The cheap way to replace the top-level `id` of a message the bridge already parsed
//! (`crate::jsonrpc::parse`): one forward scan over the top-level members that stops at the
//! first `id`, skipping the other values without looking inside them, and one copy of the
//! bytes. A shared child rewrites the id of every request and answer; walking (and checking)
//! the whole message as [`super::splice`] does costs more than the rest of the relay.
//!
//! The shortcut leans on what the parse already proved: the text is one JSON object whose
//! members are all distinct (serde refuses a repeated `id`, however its name is spelled), so
//! the first `id` is the only one. Bytes that never went through that parse get an answer
//! too, and never a panic, but it says nothing about the `id`s after the first.

use super::{RewriteError, Span, key_text};
use bytes::Bytes;
use memchr::memmem;
use std::sync::LazyLock;

/// `raw` (a message `jsonrpc::parse` accepted as one object) with its top-level `id` value
/// replaced by the JSON text `new`; every other byte stays.
pub fn splice_id(raw: &[u8], new: &str) -> Result<Bytes, RewriteError> {
    let (a, b) = top_id(raw)?.ok_or_else(|| RewriteError::Missing("id".into()))?;
    let mut out = Vec::with_capacity(raw.len() - (b - a) + new.len());
    out.extend_from_slice(&raw[..a]);
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&raw[b..]);
    Ok(Bytes::from(out))
}

/// The raw text of the first top-level `id` of `raw`, if it has one (see [`splice_id`]).
pub fn get_id(raw: &[u8]) -> Result<Option<&str>, RewriteError> {
    Ok(top_id(raw)?
        .and_then(|(a, b)| raw.get(a..b))
        .and_then(|v| std::str::from_utf8(v).ok()))
}

/// Whether `raw` may hold a member named `progressToken`: false only when it surely does not,
/// because the word appears nowhere and no `\u` escape could spell it. Spares the walk that
/// finds the token for the many requests that have none.
pub fn may_name_progress_token(raw: &[u8]) -> bool {
    static WORD: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new("progressToken"));
    WORD.find(raw).is_some()
        || memchr::memchr_iter(b'\\', raw).any(|i| raw.get(i + 1) == Some(&b'u'))
}

/// The span of the first top-level `id` value. `Err` when the text stops being an object
/// before one is found.
fn top_id(b: &[u8]) -> Result<Option<Span>, RewriteError> {
    const BAD: RewriteError = RewriteError::NotObject;
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(BAD);
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(BAD);
        }
        let key_end = string_end(b, i).ok_or(BAD)?;
        let key = &b[i..key_end];
        i = ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(BAD);
        }
        let start = ws(b, i + 1);
        let end = skip_value(b, start).ok_or(BAD)?;
        let is_id =
            key == b"\"id\"" || (key.contains(&b'\\') && key_text(key).as_deref() == Some("id"));
        if is_id {
            return Ok(Some((start, end)));
        }
        i = ws(b, end);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return Ok(None),
            _ => return Err(BAD),
        }
    }
}

/// The first index at or after `i` that is not JSON whitespace.
fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index just past the string whose opening quote is at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// The index just past the value starting at `i`. Objects and arrays are skipped by counting
/// brackets outside strings, without recursion, so depth costs nothing.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = b[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                .count();
            (len > 0).then_some(i + len)
        }
    }
}
