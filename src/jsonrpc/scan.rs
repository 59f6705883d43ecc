//! A bounded look at the start of a message that cannot be parsed whole (over the size limit,
//! not UTF-8): enough to find the `id` of the request it was, so its error can name it.

use super::Id;
use serde_json::value::RawValue;

/// The `id` of a request that cannot be parsed whole (too long, not UTF-8), read by a bounded
/// scan of the start of its text: the top-level members of the object in `head`, as far as they
/// go. `Some` only when both a string or number `id` and a `method` are found whole, so a
/// response or a fragment is never mistaken for a request.
pub fn scan_request_id(head: &[u8]) -> Option<Id> {
    let seen = scan_members(head, |s| s.method && s.id.is_some())?;
    if !seen.method {
        return None;
    }
    valid_id(seen.id?)
}

/// The `id` of a response that cannot be parsed whole (a server's answer over the size limit,
/// or not JSON), by the same bounded scan: `Some` only when a string or number `id` and a
/// `result` or `error` member are found before the text ends, and no `method` before them.
pub fn scan_response_id(head: &[u8]) -> Option<Id> {
    let seen = scan_members(head, |s| s.method || (s.answer && s.id.is_some()))?;
    if seen.method || !seen.answer {
        return None;
    }
    valid_id(seen.id?)
}

/// What a scan saw among the top-level members of an object.
#[derive(Default)]
struct Seen<'a> {
    id: Option<&'a [u8]>,
    method: bool,
    /// A `result` or `error` member.
    answer: bool,
}

/// Walks the top-level members of the object at the start of `head` until `enough` holds or
/// the object ends; `None` when the text runs out first or is not an object.
fn scan_members<'a>(head: &'a [u8], enough: impl Fn(&Seen<'a>) -> bool) -> Option<Seen<'a>> {
    let mut s = Scan { b: head, i: 0 };
    let mut seen = Seen::default();
    s.ws();
    s.eat(b'{')?;
    loop {
        s.ws();
        if s.peek()? == b'}' {
            break;
        }
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        // The value of `method`, `result` or `error` need not be whole: its key shows the kind.
        seen.method |= key == b"\"method\"";
        seen.answer |= key == b"\"result\"" || key == b"\"error\"";
        if enough(&seen) {
            break;
        }
        let value = s.value()?;
        if key == b"\"id\"" {
            seen.id = Some(value);
        }
        if enough(&seen) {
            break;
        }
        s.ws();
        match s.peek()? {
            b',' => s.i += 1,
            _ => break,
        }
    }
    Some(seen)
}

/// `id` as an [`Id`] if it is a JSON string or number.
fn valid_id(id: &[u8]) -> Option<Id> {
    let id = std::str::from_utf8(id).ok()?;
    let first = *id.as_bytes().first()?;
    let number = first == b'-' || first.is_ascii_digit();
    let valid = if number {
        id.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    } else {
        first == b'"' && serde_json::from_str::<&RawValue>(id).is_ok()
    };
    valid.then(|| Id(id.into()))
}

/// A cursor over possibly cut-off JSON text; every step returns `None` at the end of the text.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string, with its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return self.b.get(start..self.i);
                }
                _ => self.i += 1,
            }
        }
    }

    /// Any value, skipped; its text.
    fn value(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek()?,
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                ) {
                    self.i += 1;
                }
            }
        }
        self.b.get(start..self.i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_found_at_the_start_of_cut_text() {
        let id = |t: &[u8]| scan_request_id(t).map(|i| i.0.to_string());
        assert_eq!(
            id(br#" {"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"a":"#),
            Some("7".into())
        );
        assert_eq!(
            id(b"{\"params\":{\"x\":[1,{\"id\":2}],\"s\":\"}\\\"\"},\"id\":\"a\\u0041\",\"method\":\"m\xff"),
            Some(r#""a\u0041""#.into())
        );
        // A response, a cut-off id, an id of the wrong type, a nested id: no id.
        assert_eq!(id(br#"{"jsonrpc":"2.0","id":7,"result":{"#), None);
        assert_eq!(id(br#"{"method":"m","id":12"#), None);
        assert_eq!(id(br#"{"method":"m","id":true,"#), None);
        assert_eq!(id(br#"{"method":"m","p":{"id":1},"x"#), None);
        assert_eq!(id(b"\xff\xfe"), None);
        assert_eq!(id(b""), None);
    }

    #[test]
    fn response_ids_are_found_at_the_start_of_cut_text() {
        let id = |t: &[u8]| scan_response_id(t).map(|i| i.0.to_string());
        assert_eq!(
            id(br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"text":"xxxx"#),
            Some("7".into())
        );
        assert_eq!(
            id(br#"{"error":{"code":1,"message":"m"},"id":"a\"b"}"#),
            Some(r#""a\"b""#.into())
        );
        assert_eq!(id(br#"{"id":3,"result":NaN}"#), Some("3".into()));
        // A request, a notification, a cut-off id, no result yet, a nested id: no id.
        assert_eq!(
            id(br#"{"jsonrpc":"2.0","id":7,"method":"m","params":{"#),
            None
        );
        assert_eq!(id(br#"{"method":"m","result":1,"id":2}"#), None);
        assert_eq!(id(br#"{"result":{"x":1},"id":12"#), None);
        assert_eq!(id(br#"{"id":4,"jsonrpc":"2.0""#), None);
        assert_eq!(id(br#"{"result":{"id":1},"x"#), None);
        assert_eq!(id(br#"{"id":null,"error":{}}"#), None);
        assert_eq!(id(b"not json"), None);
    }
}
