//! First-party clients and the management scope.
//!
//! `hallpass:manage` lets a token rotate the secrets of the user's clients and register new
//! ones, so only a client the operator trusts may ever be granted it. That trust is an
//! operator decision: the client ids in `HALLPASS_FIRST_PARTY_CLIENTS`, plus the ids Hallpass
//! builds in ([`BUILT_IN`], first-party by construction). A client that registered itself
//! (RFC 7591) is never first-party.
//!
//! A first-party client may request `hallpass:manage` whether or not its registration lists
//! it (no user can register it: [`check_registration`]). For anyone else the scope is refused
//! where it is asked for ([`check_requested`]: `invalid_scope`), silently dropped where it
//! would only come in by default ([`without_manage`]: an omitted `scope`, a refresh, a code
//! issued before the client lost its status), and a token carrying it anyway is not honoured
//! by the management API ([`token_grants`]).

use std::collections::BTreeSet;

use crate::{
    config::Config,
    oauth::{
        error::{ErrorCode, OAuthError},
        scope::Scope,
        users::MANAGE_SCOPE,
    },
    token::AccessClaims,
};

/// Client ids that are first-party whatever the configuration says (Hallpass's own clients).
pub const BUILT_IN: &[&str] = &[crate::oauth::docs_client::CLIENT_ID];

/// Parses `HALLPASS_FIRST_PARTY_CLIENTS`: comma-separated client ids, blanks ignored.
pub fn parse_setting(raw: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for id in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "HALLPASS_FIRST_PARTY_CLIENTS / --first-party-clients: {id:?} is not a client id; give comma-separated client ids"
            ));
        }
        if crate::oauth::cimd::is_url_id(id) {
            return Err(format!(
                "HALLPASS_FIRST_PARTY_CLIENTS / --first-party-clients: {id:?} is a client ID metadata document URL, which is never first-party"
            ));
        }
        if crate::oauth::dynamic_client::is_dynamic_id(id) {
            return Err(format!(
                "HALLPASS_FIRST_PARTY_CLIENTS / --first-party-clients: {id:?} is a dynamically registered client, which is never first-party; register your own application with the management API"
            ));
        }
        out.insert(id.to_string());
    }
    Ok(out)
}

/// Whether `client_id` is first-party: built in, or named by the operator. A dynamically
/// registered client never is (its id has [`ID_PREFIX`], which the setting refuses).
///
/// [`ID_PREFIX`]: crate::oauth::dynamic_client::ID_PREFIX
pub fn is_first_party(config: &Config, client_id: &str) -> bool {
    if crate::oauth::dynamic_client::is_dynamic_id(client_id)
        || crate::oauth::cimd::is_url_id(client_id)
    {
        return false;
    }
    BUILT_IN.contains(&client_id) || config.first_party_clients.contains(client_id)
}

/// The scopes a client may request: its registered ones, minus `hallpass:manage` for a
/// third-party client, plus it for a first-party one (when the server offers it).
pub fn allowed_scope(config: &Config, client_id: &str, registered: &Scope) -> Scope {
    if is_first_party(config, client_id) {
        if config.scopes.iter().any(|s| s.name == MANAGE_SCOPE) {
            return registered.union(&Scope::from_tokens([MANAGE_SCOPE]));
        }
        return registered.clone();
    }
    without_manage(config, client_id, registered)
}

/// `scope` without `hallpass:manage` unless the client is first-party: for scopes that come
/// in without being asked for (defaults, an earlier grant).
pub fn without_manage(config: &Config, client_id: &str, scope: &Scope) -> Scope {
    if is_first_party(config, client_id) || !scope.contains(MANAGE_SCOPE) {
        return scope.clone();
    }
    Scope::from_tokens(scope.iter().filter(|s| *s != MANAGE_SCOPE))
}

/// `invalid_scope` when a third-party client explicitly asks for `hallpass:manage`.
pub fn check_requested(
    config: &Config,
    client_id: &str,
    requested: &Scope,
) -> Result<(), OAuthError> {
    if requested.contains(MANAGE_SCOPE) && !is_first_party(config, client_id) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "hallpass:manage is granted only to first-party clients",
        ));
    }
    Ok(())
}

/// Refuses a registration that lists `hallpass:manage` (RFC 7591 §3.2.2
/// `invalid_client_metadata`: the `scope` field's value is rejected). A registering user's
/// client is never first-party: its id does not exist yet, and the operator names
/// first-party clients afterwards.
pub fn check_registration(scope: &Scope) -> Result<(), OAuthError> {
    if scope.contains(MANAGE_SCOPE) {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "scope must not contain hallpass:manage: only first-party clients, named by the operator, may be granted it",
        ));
    }
    Ok(())
}

/// Whether a token grants `scope`: it lists it and, for `hallpass:manage`, it was issued to a
/// client that is first-party now.
pub fn token_grants(config: &Config, claims: &AccessClaims, scope: &str) -> bool {
    claims.has_scope(scope) && (scope != MANAGE_SCOPE || is_first_party(config, &claims.client_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(first_party: &[&str]) -> Config {
        Config {
            first_party_clients: first_party.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn only_first_party_clients_may_be_allowed_the_manage_scope() {
        let cfg = config(&["console"]);
        let registered = Scope::from_tokens(["beers:read", MANAGE_SCOPE]);
        assert_eq!(
            allowed_scope(&cfg, "third", &registered).to_string(),
            "beers:read"
        );
        let plain = Scope::from_tokens(["beers:read"]);
        assert!(allowed_scope(&cfg, "console", &plain).contains(MANAGE_SCOPE));
        let manage = Scope::from_tokens([MANAGE_SCOPE]);
        assert_eq!(
            check_requested(&cfg, "third", &manage).map_err(|e| e.code),
            Err(ErrorCode::InvalidScope)
        );
        assert!(check_requested(&cfg, "console", &manage).is_ok());
        assert_eq!(
            check_registration(&manage).map_err(|e| e.code),
            Err(ErrorCode::InvalidClientMetadata)
        );
    }

    #[test]
    fn the_setting_is_a_comma_separated_list_of_client_ids() {
        let ids = parse_setting(" a, b ,,").unwrap_or_default();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(parse_setting("a b").is_err());
        assert!(parse_setting("dyn.abc").is_err());
        let cfg = Config {
            first_party_clients: ["dyn.abc".to_string()].into_iter().collect(),
            ..Config::default()
        };
        assert!(!is_first_party(&cfg, "dyn.abc"));
    }
}
