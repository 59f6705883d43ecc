//! A bounded look at the start of a message that cannot be parsed whole (over the size limit,
//! not UTF-8): enough to find the `id` of the request it was, so its error can name it.

use super::Id;
use serde_json::value::RawValue;

/// The `id` of a request that cannot be parsed whole (too long, not UTF-8), read by a bounded
/// scan of the start of its text: the top-level members of the object in `head`, as far as they
/// go. `Some` only when both a string or number `id` and a `method` are found whole, so a
/// response or a fragment is never mistaken for a request.
pub fn scan_request_id(head: &[u8]) -> Option<Id> {
    let mut s = Scan { b: head, i: 0 };
    s.ws();
    s.eat(b'{')?;
    let (mut id, mut method) = (None, false);
    loop {
        s.ws();
        if s.peek()? == b'}' {
            break;
        }
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        // The method's value need not be whole: its key shows the message is a request.
        method |= key == b"\"method\"";
        if method && id.is_some() {
            break;
        }
        let value = s.value()?;
        if key == b"\"id\"" {
            id = Some(value);
        }
        if method && id.is_some() {
            break;
        }
        s.ws();
        match s.peek()? {
            b',' => s.i += 1,
            _ => break,
        }
    }
    let id = std::str::from_utf8(id?).ok()?;
    let first = *id.as_bytes().first()?;
    let number = first == b'-' || first.is_ascii_digit();
    let valid = if number {
        id.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
    } else {
        first == b'"' && serde_json::from_str::<&RawValue>(id).is_ok()
    };
    (method && valid).then(|| Id(id.into()))
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
}
