//! Which child serves a request: the one routing rule for both eras. The auth guard names the
//! caller (its [`Identity`] and the session key it presented); [`route`] turns that, the server's
//! `--scope` and the request's era into a [`Route`]. Keys are scoped to the identity, so a client
//! that guesses another's key still reaches only children of its own.

use crate::cli::Scope;
use crate::jsonrpc;
use crate::serve::http::Refusal;
use crate::wire::{self, SESSION_KEY};
use axum::http::{HeaderMap, StatusCode};

/// Who is asking, as far as the gateway authenticated it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Identity {
    /// No token is configured: every (loopback or Unix socket) client is this one identity.
    #[default]
    Anonymous,
    /// The holder of the gateway's bearer token.
    TokenHolder,
    /// A named client (set by the policy layer once it names clients).
    #[allow(dead_code)] // No caller yet: the named clients of the policy layer.
    Named(String),
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::TokenHolder => f.write_str("token"),
            Identity::Named(n) => write!(f, "client:{n}"),
        }
    }
}

/// The caller of one request, put in its extensions by the guard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Caller {
    /// Who it is.
    pub identity: Identity,
    /// The session key it presented (`Mcp-Bridge-Session-Key`), if any.
    pub key: Option<String>,
}

impl Caller {
    /// The caller of a request that passed the token check (`authenticated`: a token is
    /// configured and was given). A malformed or repeated key header is refused with 400.
    pub fn of(headers: &HeaderMap, authenticated: bool) -> Result<Caller, Refusal> {
        let identity = if authenticated {
            Identity::TokenHolder
        } else {
            Identity::Anonymous
        };
        let mut all = headers.get_all(SESSION_KEY).iter();
        let key = match (all.next(), all.next()) {
            (None, _) => None,
            (Some(v), None) => match v.to_str() {
                Ok(k) if wire::valid_session_key(k) => Some(k.to_owned()),
                _ => return Err(bad_key()),
            },
            (Some(_), Some(_)) => return Err(bad_key()),
        };
        Ok(Caller { identity, key })
    }
}

fn bad_key() -> Refusal {
    Refusal::rpc(
        StatusCode::BAD_REQUEST,
        jsonrpc::INVALID_REQUEST,
        &format!(
            "{SESSION_KEY} must appear once, with 1 to {} letters, digits or -._:@+=/",
            wire::SESSION_KEY_MAX
        ),
    )
}

/// The name of a child that more than one request may reach.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChildKey {
    /// `--scope shared`: the one child.
    Shared,
    /// The child of an identity and (if given) a key.
    Of(Identity, Option<String>),
}

impl std::fmt::Display for ChildKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildKey::Shared => f.write_str("shared"),
            ChildKey::Of(id, None) => write!(f, "{id}"),
            ChildKey::Of(id, Some(k)) => write!(f, "{id}/{k}"),
        }
    }
}

/// The era of a request: a handshake session's message, or a 2026-07-28 request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// A message of a session that opened with `initialize` (Streamable HTTP or HTTP+SSE).
    Handshake,
    /// A request of the stateless 2026-07-28 revision.
    Stateless,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A child of this session alone (handshake sessions of `per-session`, keyless `per-key`).
    OwnChild,
    /// A child that several clients may share, found (or started) by its name.
    Child(ChildKey),
}

/// The rule. `shared`: one child. `per-key` with a key: the key's child, in either era.
/// Otherwise a handshake session gets its own child, and a 2026-07-28 request (which has no
/// session) the child of its identity and key.
pub fn route(scope: Scope, caller: &Caller, era: Era) -> Route {
    match (scope, era, &caller.key) {
        (Scope::Shared, _, _) => Route::Child(ChildKey::Shared),
        (Scope::PerKey, _, Some(_)) | (_, Era::Stateless, _) => {
            Route::Child(ChildKey::Of(caller.identity.clone(), caller.key.clone()))
        }
        (_, Era::Handshake, _) => Route::OwnChild,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(identity: Identity, key: Option<&str>) -> Caller {
        Caller {
            identity,
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn the_rule_for_both_eras() {
        use Era::*;
        use Scope::*;
        let anon_k = caller(Identity::Anonymous, Some("k"));
        let token_k = caller(Identity::TokenHolder, Some("k"));
        let anon = caller(Identity::Anonymous, None);
        let keyed = |c: &Caller| Route::Child(ChildKey::Of(c.identity.clone(), c.key.clone()));
        for era in [Handshake, Stateless] {
            assert_eq!(route(Shared, &anon_k, era), Route::Child(ChildKey::Shared));
            assert_eq!(route(PerKey, &anon_k, era), keyed(&anon_k));
            // The same key of another identity names another child.
            assert_ne!(route(PerKey, &anon_k, era), route(PerKey, &token_k, era));
        }
        assert_eq!(route(PerSession, &anon_k, Handshake), Route::OwnChild);
        assert_eq!(route(PerKey, &anon, Handshake), Route::OwnChild);
        assert_eq!(route(PerSession, &anon, Stateless), keyed(&anon));
        assert_eq!(route(PerSession, &anon_k, Stateless), keyed(&anon_k));
        assert_ne!(
            route(PerSession, &anon, Stateless),
            route(PerSession, &caller(Identity::TokenHolder, None), Stateless)
        );
    }

    #[test]
    fn keys_are_read_once_and_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(Caller::of(&h, false).unwrap(), Caller::default());
        h.insert(SESSION_KEY, "sandbox-1".parse().unwrap());
        let c = Caller::of(&h, true).unwrap();
        assert_eq!(c, caller(Identity::TokenHolder, Some("sandbox-1")));
        h.append(SESSION_KEY, "sandbox-2".parse().unwrap());
        assert!(Caller::of(&h, true).is_err(), "two keys");
        h.insert(SESSION_KEY, "a b".parse().unwrap());
        assert!(Caller::of(&h, false).is_err(), "a space");
    }
}
