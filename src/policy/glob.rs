//! Glob patterns on tool names, prompt names and resource URIs: `*` (any run of characters,
//! `/` included), `?` (one character), `[abc]`, `[a-z]`, `[!a-z]`, and `\` to take the next
//! character literally. A pattern matches the whole name. Hand-written (about 100 lines) because
//! `globset` brings a regex engine for a job this small, and `wildmatch` has no classes.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Glob {
    /// Compiles a pattern; the error says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty pattern (it would match nothing)".into());
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if tokens.last() == Some(&Token::Star) => continue,
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => Token::Char(chars.next().ok_or("pattern ends with a lone `\\`")?),
                '[' => class(&mut chars)?,
                c => Token::Char(c),
            });
        }
        Ok(Glob {
            text: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches the whole pattern. Linear backtracking on the last `*` only, so
    /// a hostile name cannot make this exponential. An ASCII name (the usual case) is matched
    /// byte by byte, with no allocation.
    pub fn matches(&self, name: &str) -> bool {
        if name.is_ascii() {
            self.matches_chars(name.as_bytes())
        } else {
            self.matches_chars(&name.chars().collect::<Vec<char>>())
        }
    }

    fn matches_chars<C: Copy + Into<char>>(&self, name: &[C]) -> bool {
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(tok) if single(tok, name[n].into()) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, sn)) => {
                    star = Some((st, sn + 1));
                    t = st + 1;
                    n = sn + 1;
                }
                None => return false,
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::Star)
    }
}

fn single(tok: &Token, c: char) -> bool {
    match tok {
        Token::Char(x) => *x == c,
        Token::Any => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::Star => false,
    }
}

fn class(chars: &mut std::str::Chars<'_>) -> Result<Token, String> {
    let unclosed = || "unclosed `[` (write `\\[` for a literal bracket)".to_owned();
    let mut negated = false;
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or_else(unclosed)?;
        match c {
            '!' | '^' if first && !negated => {
                negated = true;
                continue;
            }
            ']' if !first => break,
            _ => {}
        }
        first = false;
        let lo = if c == '\\' {
            chars.next().ok_or_else(unclosed)?
        } else {
            c
        };
        let mut ahead = chars.clone();
        if ahead.next() == Some('-') && ahead.clone().next().is_some_and(|h| h != ']') {
            chars.next();
            let hi = chars.next().ok_or_else(unclosed)?;
            let hi = if hi == '\\' {
                chars.next().ok_or_else(unclosed)?
            } else {
                hi
            };
            if hi < lo {
                return Err(format!("range `{lo}-{hi}` is backwards"));
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Token::Class { negated, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        Glob::new(p).unwrap().matches(n)
    }

    #[test]
    fn literal_names_match_whole() {
        assert!(m("echo", "echo"));
        assert!(!m("echo", "echo2"));
        assert!(!m("echo", "xecho"));
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("get_*", "get_"));
        assert!(m("get_*", "get_sum"));
        assert!(!m("get_*", "getsum"));
        assert!(m("*delete*", "delete"));
        assert!(m("*delete*", "bulk_delete_all"));
        assert!(!m("*delete*", "delet"));
        assert!(m("file:///docs/*", "file:///docs/a/b.txt"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*", ""));
        assert!(m("**a", "ba"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("v[0-9]", "v7"));
        assert!(!m("v[0-9]", "vx"));
        assert!(m("v[!0-9]", "vx"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "x"));
        assert!(m("é?", "éü"));
        // `?` is one character, not one byte, in a name that is not ASCII.
        assert!(m("a?c", "aéc"));
        assert!(!m("a??c", "aéc"));
        assert!(m("[à-ê]*", "était"));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(Glob::new("").unwrap_err().contains("empty"));
        assert!(Glob::new("[abc").unwrap_err().contains("unclosed"));
        assert!(Glob::new("x\\").unwrap_err().contains("lone"));
        assert!(Glob::new("[z-a]").unwrap_err().contains("backwards"));
    }

    // The obvious recursive matcher, exponential but plainly right, to check the fast one against.
    fn reference(tokens: &[Token], name: &[char]) -> bool {
        match tokens.split_first() {
            None => name.is_empty(),
            Some((Token::Star, rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some((tok, rest)) => name
                .split_first()
                .is_some_and(|(c, tail)| single(tok, *c) && reference(rest, tail)),
        }
    }

    #[test]
    fn agrees_with_the_obvious_matcher_on_random_input() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pattern_chars = ['a', 'b', '*', '?', '[', ']', '!', '-'];
        for _ in 0..20_000 {
            let p: String = (0..next(7))
                .map(|_| pattern_chars[next(8) as usize])
                .collect();
            let n: String = (0..next(8))
                .map(|_| ['a', 'b', '-'][next(3) as usize])
                .collect();
            let Ok(g) = Glob::new(&p) else { continue };
            let chars: Vec<char> = n.chars().collect();
            assert_eq!(
                g.matches(&n),
                reference(&g.tokens, &chars),
                "{p:?} on {n:?}"
            );
        }
    }

    #[test]
    fn hostile_names_stay_linear() {
        let name = "a".repeat(20_000);
        let started = std::time::Instant::now();
        assert!(!m("*a*a*a*a*a*a*a*b", &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
