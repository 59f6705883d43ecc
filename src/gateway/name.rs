//! Server names: each becomes a path segment of `/servers/NAME/mcp`, so only names that need no
//! escaping and cannot climb out of `/servers/` are accepted.

/// Longest server name: it becomes a path segment of `/servers/NAME/mcp`.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` may be used in a route: 1 to 64 of `A-Z a-z 0-9 - _ .`, not starting with a dot.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "server name must be 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.' (not starting with '.'), as it becomes the route /servers/NAME/mcp"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["github", "db-2", "a.b_c", "X"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "my server",
            "é",
            "a%2f",
            long.as_str(),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
