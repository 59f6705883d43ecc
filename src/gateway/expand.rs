//! `${VAR}` expansion from an injected lookup (the host's environment in production, a map in
//! tests): `${VAR}`, `${VAR:-default}`, VS Code's and Cursor's `${env:VAR}`, and `$$` for a `$`.

/// Why a string could not be expanded. Never carries the string itself: it may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// `${NAME}` with NAME unset and no `:-default`.
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// A `${` without its `}`.
    #[error("`${{` without a closing `}}`")]
    Unclosed,
    /// `${…}` holding something that is not a variable name, e.g. `${}` or `${a b}`.
    #[error("`${{{0}}}` is not a variable name")]
    BadName(String),
    /// An editor variable the bridge cannot resolve, e.g. VS Code's `${input:token}` prompt.
    #[error(
        "`${{{0}}}` is an editor variable the bridge cannot resolve; use `${{NAME}}` or `${{env:NAME}}` with a host environment variable"
    )]
    Editor(String),
}

/// Replaces each `${NAME}` with `lookup(NAME)`. `${NAME:-default}` falls back to `default` when
/// NAME is unset or empty; `${env:NAME}` is `${NAME}`; `$$` is a literal `$`; any other `$` stays.
pub fn expand_vars(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(ExpandError::Unclosed)?;
            out.push_str(&resolve(&body[..end], &lookup)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(body: &str, lookup: &impl Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let (name, default) = match body.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (body, None),
    };
    let name = name.strip_prefix("env:").unwrap_or(name);
    if name.contains(':') {
        return Err(ExpandError::Editor(body.to_owned()));
    }
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ExpandError::BadName(name.to_owned()));
    }
    match (lookup(name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(d.to_owned()),
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => Err(ExpandError::Unset(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_and_escapes() {
        assert_eq!(
            expand_vars("Bearer ${TOKEN}", env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(
            expand_vars("$$5 and $x and $", env).unwrap(),
            "$5 and $x and $"
        );
        assert_eq!(
            expand_vars("${TOKEN}${TOKEN}", env).unwrap(),
            "s3crets3cret"
        );
        assert_eq!(expand_vars("no vars", env).unwrap(), "no vars");
        assert_eq!(expand_vars("$${TOKEN}", env).unwrap(), "${TOKEN}");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(expand_vars("${NOPE:-x}", env).unwrap(), "x");
        assert_eq!(expand_vars("${EMPTY:-x}", env).unwrap(), "x");
        assert_eq!(expand_vars("${TOKEN:-x}", env).unwrap(), "s3cret");
        assert_eq!(expand_vars("${NOPE:-}", env).unwrap(), "");
        assert_eq!(
            expand_vars("http://${NOPE:-localhost:8080}/mcp", env).unwrap(),
            "http://localhost:8080/mcp"
        );
    }

    #[test]
    fn editor_syntax() {
        assert_eq!(expand_vars("${env:TOKEN}", env).unwrap(), "s3cret");
        assert_eq!(
            expand_vars("${input:gh}", env).unwrap_err(),
            ExpandError::Editor("input:gh".into())
        );
    }

    #[test]
    fn errors_name_the_variable_not_the_string() {
        assert_eq!(
            expand_vars("k=${MISSING}", env).unwrap_err(),
            ExpandError::Unset("MISSING".into())
        );
        let unclosed = expand_vars("s3cret ${TOKEN", env).unwrap_err();
        assert_eq!(unclosed, ExpandError::Unclosed);
        assert!(!unclosed.to_string().contains("s3cret"));
        assert_eq!(
            expand_vars("${}", env).unwrap_err(),
            ExpandError::BadName(String::new())
        );
        assert_eq!(
            expand_vars("${1X}", env).unwrap_err(),
            ExpandError::BadName("1X".into())
        );
    }
}
