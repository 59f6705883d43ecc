//! What a reload changes: servers added, removed, or redefined, and whether the bridge's own
//! settings moved, with the one log line that says so.

use super::File;

/// The difference between the running configuration and a newly loaded one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Names only in the new file: start serving them.
    pub added: Vec<String>,
    /// Names only in the old file (or now disabled): stop taking sessions, drain.
    pub removed: Vec<String>,
    /// Names in both whose definition or `mcpBridge.servers.NAME` options differ: new sessions
    /// get the new definition, open ones keep theirs.
    pub changed: Vec<String>,
    /// Names in both that differ only in `mcpBridge.servers.NAME.policy`: the new rules apply
    /// to the next request, and every session keeps its child.
    pub policy_changed: Vec<String>,
    /// Whether the `mcpBridge` settings other than per-server options differ (listen addresses,
    /// token file, limits, clients, audit, rate limits).
    pub settings_changed: bool,
}

impl Diff {
    /// Compares two loads. Names come out sorted.
    pub fn between(old: &File, new: &File) -> Diff {
        let mut diff = Diff {
            settings_changed: old.bridge != new.bridge,
            ..Diff::default()
        };
        for (name, server) in &new.servers {
            match old.servers.get(name) {
                None => diff.added.push(name.clone()),
                Some(before) if before == server => {}
                Some(before) if same_but_policy(before, server) => {
                    diff.policy_changed.push(name.clone())
                }
                Some(_) => diff.changed.push(name.clone()),
            }
        }
        diff.removed = old
            .servers
            .keys()
            .filter(|n| !new.servers.contains_key(*n))
            .cloned()
            .collect();
        diff
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.policy_changed.is_empty()
            && !self.settings_changed
    }

    /// `reload: +github -old ~db ~mcpBridge`, or `reload: no change`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "reload: no change".to_owned();
        }
        let mut parts = vec!["reload:".to_owned()];
        parts.extend(self.added.iter().map(|n| format!("+{n}")));
        parts.extend(self.removed.iter().map(|n| format!("-{n}")));
        parts.extend(self.changed.iter().map(|n| format!("~{n}")));
        parts.extend(self.policy_changed.iter().map(|n| format!("~{n}(policy)")));
        if self.settings_changed {
            parts.push("~mcpBridge".to_owned());
        }
        parts.join(" ")
    }
}

fn same_but_policy(a: &super::Server, b: &super::Server) -> bool {
    let mut a = a.clone();
    a.options.policy.clone_from(&b.options.policy);
    a == *b
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> File {
        let env = |k: &str| (k == "TOKEN").then(|| "t1".to_owned());
        File::parse_with(text, "f", Path::new("/"), &env).unwrap()
    }

    #[test]
    fn added_removed_changed() {
        let old = load(
            r#"{"mcpServers": {"keep": {"command": "a"}, "old": {"command": "b"},
                "db": {"command": "pg", "args": ["1"]}, "opt": {"command": "o"}}}"#,
        );
        let new = load(
            r#"{"mcpServers": {"keep": {"command": "a", "autoApprove": ["x"]},
                "github": {"url": "https://h.example/mcp"}, "db": {"command": "pg", "args": ["2"]},
                "opt": {"command": "o"}, "old": {"command": "b", "disabled": true}},
                "mcpBridge": {"servers": {"opt": {"scope": "shared"}}}}"#,
        );
        let d = Diff::between(&old, &new);
        assert_eq!(d.added, ["github"]);
        assert_eq!(d.removed, ["old"]);
        assert_eq!(d.changed, ["db", "opt"]);
        assert!(!d.settings_changed);
        assert_eq!(d.summary(), "reload: +github -old ~db ~opt");
        assert_eq!(d.to_string(), d.summary());
    }

    #[test]
    fn same_file_is_no_change_and_settings_are_noticed() {
        let text = r#"{"mcpServers": {"a": {"command": "a", "env": {"T": "${TOKEN}"}}}}"#;
        let d = Diff::between(&load(text), &load(text));
        assert!(d.is_empty());
        assert_eq!(d.summary(), "reload: no change");
        let more = r#"{"mcpServers": {"a": {"command": "a", "env": {"T": "${TOKEN}"}}},
                       "mcpBridge": {"maxSessions": 3}}"#;
        let d = Diff::between(&load(text), &load(more));
        assert!(d.settings_changed);
        assert_eq!(d.summary(), "reload: ~mcpBridge");
    }

    #[test]
    fn a_policy_change_alone_keeps_the_server() {
        let a = load(
            r#"{"mcpServers": {"s": {"command": "a"}},
            "mcpBridge": {"servers": {"s": {"policy": {"readOnly": true}}}}}"#,
        );
        let b = load(
            r#"{"mcpServers": {"s": {"command": "a"}},
            "mcpBridge": {"servers": {"s": {"policy": {"readOnly": false}}}}}"#,
        );
        let d = Diff::between(&a, &b);
        assert!(d.changed.is_empty());
        assert_eq!(d.policy_changed, ["s"]);
        assert_eq!(d.summary(), "reload: ~s(policy)");
    }

    #[test]
    fn a_changed_header_is_a_change() {
        let a = load(r#"{"servers": {"r": {"url": "http://h/", "headers": {"X": "1"}}}}"#);
        let b = load(r#"{"servers": {"r": {"url": "http://h/", "headers": {"X": "2"}}}}"#);
        assert_eq!(Diff::between(&a, &b).changed, ["r"]);
    }
}
