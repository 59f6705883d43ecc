//! The one error a gateway file can be refused with, and the JSON paths (`mcpServers.db.args[2]`)
//! that say where in the file the problem is.

use std::fmt;
use std::path::PathBuf;

/// Why a gateway configuration file was refused. Messages name the file and, for content errors,
/// the JSON path; they never echo a value that could be a secret (env values, headers, URLs).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not JSON (comments and trailing commas are allowed, as VS Code allows them).
    #[error("{file}:{line}:{column}: not valid JSON: {problem}")]
    Syntax {
        /// The file name as given.
        file: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What the JSON parser found (without the text around it).
        problem: String,
    },
    /// The JSON is well formed but something in it is wrong; `path` says where.
    #[error("{file}: {}{problem}", path_prefix(.path))]
    Invalid {
        /// The file name as given.
        file: String,
        /// Where, e.g. `mcpBridge.servers.db.scope`; empty for the whole document.
        path: String,
        /// What is wrong there.
        problem: String,
    },
}

impl ConfigError {
    /// The JSON path of an [`ConfigError::Invalid`] error (empty for the others).
    pub fn path(&self) -> &str {
        match self {
            ConfigError::Invalid { path, .. } => path,
            _ => "",
        }
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// A JSON path being built while walking a document: `mcpServers.github.args[2]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    /// The document itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// The member `key` of this object: `.key`, or `["key with spaces"]` when the key is not a
    /// plain identifier, so every path reads back unambiguously.
    pub fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let mut s = self.0.clone();
        if plain {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(key);
        } else {
            s.push('[');
            s.push_str(&serde_json::Value::from(key).to_string());
            s.push(']');
        }
        JsonPath(s)
    }

    /// Element `i` of this array: `[i]`.
    pub fn index(&self, i: usize) -> Self {
        JsonPath(format!("{}[{i}]", self.0))
    }

    /// The path as text, e.g. `mcpServers.db.args[2]`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_javascript() {
        let p = JsonPath::root().key("mcpServers").key("github").key("args");
        assert_eq!(p.index(2).as_str(), "mcpServers.github.args[2]");
        let odd = JsonPath::root().key("mcpServers").key("my server");
        assert_eq!(odd.as_str(), r#"mcpServers["my server"]"#);
        assert_eq!(JsonPath::root().key("a\"b").as_str(), r#"["a\"b"]"#);
    }

    #[test]
    fn messages_name_file_and_path() {
        let e = ConfigError::Invalid {
            file: "mcp.json".into(),
            path: "mcpServers.x".into(),
            problem: "needs \"command\" or \"url\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "mcp.json: mcpServers.x: needs \"command\" or \"url\""
        );
        assert_eq!(e.path(), "mcpServers.x");
        let whole = ConfigError::Invalid {
            file: "f".into(),
            path: String::new(),
            problem: "not an object".into(),
        };
        assert_eq!(whole.to_string(), "f: not an object");
    }
}
