//! VS Code's `envFile`: a dotenv file of `NAME=VALUE` lines (`#` comments, optional `export `,
//! values optionally in matching quotes) read into a stdio server's environment.

use std::collections::BTreeMap;
use std::path::Path;

/// Reads a dotenv file. Errors name the file and line, never a value.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|line| format!("{} line {line}: expected NAME=VALUE", path.display()))
}

/// Parses dotenv text; `Err(line number)` for a line that is not `NAME=VALUE`.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (name, value) = line.split_once('=').ok_or(i + 1)?;
        let name = name.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(i + 1);
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
            .unwrap_or(value);
        out.insert(name.to_owned(), unquoted.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let env = parse("# c\n\nA=1\nexport B = \"two words\"\nC='x=y'\nD=\n").unwrap();
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "two words");
        assert_eq!(env["C"], "x=y");
        assert_eq!(env["D"], "");
        assert_eq!(parse("A=1\nsecret-without-equals\n"), Err(2));
        assert_eq!(parse("1A=x"), Err(1));
    }

    #[test]
    fn errors_name_file_and_line_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env");
        std::fs::write(&f, "TOKEN=ok\nhunter2\n").unwrap();
        let err = read(&f).unwrap_err();
        assert!(err.ends_with(".env line 2: expected NAME=VALUE"), "{err}");
        assert!(
            read(&dir.path().join("missing"))
                .unwrap_err()
                .starts_with("cannot read")
        );
    }
}
