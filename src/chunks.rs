//! A message that arrives in pieces (network chunks, pipe reads), gathered with one copy at the
//! end, or none when it came whole. Growing one buffer instead would double its capacity again and
//! again, and a 10 MiB message would briefly cost three times its size.

use bytes::{Bytes, BytesMut};

/// The pieces of one message so far.
#[derive(Debug, Default)]
pub struct Pieces {
    parts: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    /// Adds the next piece.
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// Bytes gathered so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops everything gathered.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.len = 0;
    }

    /// Everything gathered so far, as one buffer; the gatherer is empty afterwards.
    pub fn take(&mut self) -> Bytes {
        self.len = 0;
        match self.parts.len() {
            0 => Bytes::new(),
            1 => self.parts.pop().expect("one part"),
            _ => {
                let total = self.parts.iter().map(Bytes::len).sum();
                let mut out = BytesMut::with_capacity(total);
                for part in self.parts.drain(..) {
                    out.extend_from_slice(&part);
                }
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_in_order_and_empties() {
        let mut p = Pieces::default();
        assert!(p.take().is_empty());
        p.push(Bytes::from_static(b"ab"));
        p.push(Bytes::new());
        p.push(Bytes::from_static(b"c"));
        assert_eq!(p.len(), 3);
        assert_eq!(&p.take()[..], b"abc");
        assert!(p.is_empty());
        p.push(Bytes::from_static(b"whole"));
        assert_eq!(&p.take()[..], b"whole");
    }
}
