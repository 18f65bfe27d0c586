//! The revocation feed: what resource servers that verify tokens offline must refuse
//! (served at `GET /oauth2/revocations`, polled by [`crate::verify`]).
//!
//! Access tokens are never stored, so a revocation can only reach an offline verifier as a
//! published list. The feed holds two kinds of entries:
//! - **revoked `jti`s**: an access token revoked by RFC 7009, and every access token a revoked
//!   refresh family issued recently (a family remembers its last 32 `jti`s, see
//!   [`refresh`](crate::oauth::refresh)), which covers revoking a refresh token, a reused
//!   refresh family and a replayed authorization code. Each stays until its token expires
//!   (plus the leeway);
//! - **"not before" rules**: a `cutoff` time for a user at a client (consent withdrawn), for a
//!   client (client deleted) or for a user (sign out everywhere): a token matching the rule
//!   whose `iat` is at or before `cutoff` is refused. Each stays for the access-token
//!   lifetime plus the leeway, after which every token it could refuse has expired.
//!
//! Every revocation path writes here through [`revoke_jti`] and [`add_rule`]; the store's own
//! records (`deny:`, `tokens_nb*`) stay, for the O(1) checks of Hallpass's own endpoints.
//!
//! Storage: one key ([`schema::REVOCATIONS`]), an expiring set (a Redis sorted set scored with
//! each entry's end): adding is one atomic script that also drops the ended entries, reading
//! is one `ZRANGEBYSCORE`, so building the feed is O(entries) and never crosses hash slots.
//!
//! The feed is public, so [`read`] keeps what it read for up to [`CACHE_FOR`] (one read at a
//! time: concurrent requests wait for it): a flood of feed requests costs the store at most
//! one read per second per instance. A revocation made on this instance clears the copy at
//! once; one made on another instance is seen here within [`CACHE_FOR`].
//!
//! Users and clients appear only as SHA-256 digests (base64url): the feed is public, and it
//! names no user and no client to someone who does not already hold a token of theirs. `jti`s
//! are random and appear as they are.

use crate::{
    crypto::sha256_b64, oauth::error::OAuthError, state::AppState, store::schema, token::LEEWAY,
};

/// Who a "not before" rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule<'a> {
    /// The tokens of user `sub` at client `client_id` (consent withdrawn).
    UserAtClient {
        /// The user id.
        sub: &'a str,
        /// The client id.
        client_id: &'a str,
    },
    /// Every token of a client (client deleted).
    Client(&'a str),
    /// Every token of a user, at any client (sign out everywhere).
    User(&'a str),
}

/// One "not before" rule of the feed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedRule {
    /// SHA-256 (base64url) of the user id the rule covers, if it names a user.
    pub sub_sha256: Option<String>,
    /// SHA-256 (base64url) of the client id the rule covers, if it names a client.
    pub client_id_sha256: Option<String>,
    /// Tokens issued at or before this Unix second are refused.
    pub cutoff: u64,
    /// When the rule leaves the feed.
    pub exp: u64,
}

/// The feed at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    /// Revoked `jti`s with the time each leaves the feed, sorted.
    pub jtis: Vec<(String, u64)>,
    /// "Not before" rules, one per user, client or pair (the latest cutoff), sorted.
    pub rules: Vec<FeedRule>,
    /// A strong `ETag` (quoted): the SHA-256 of the entries, so equal feeds have equal tags.
    pub etag: String,
}

/// How long [`read`] serves its copy of the feed without reading the store again.
pub const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The copy [`read`] keeps (per [`AppState`], so per instance): the feed, when it was read
/// (monotonic), and the store clock's second it was built for (a moved test clock is a miss).
#[derive(Debug, Default)]
pub struct FeedCache(tokio::sync::Mutex<Option<(Feed, std::time::Instant, u64)>>);

impl FeedCache {
    /// Drops the copy: the next [`read`] reads the store.
    async fn clear(&self) {
        *self.0.lock().await = None;
    }
}

/// At most this many `jti`s of one client's tokens enter the feed per access-token lifetime;
/// after that, [`revoke_jti`] adds a rule for the whole client instead (fail closed), so one
/// client cannot grow the feed past what verifiers accept.
pub const MAX_JTIS_PER_CLIENT: i64 = 1000;

/// Adds the access token `jti` of client `client_id`, which expires at `exp`, to the feed
/// until it expires; past [`MAX_JTIS_PER_CLIENT`] for that client, a client rule refusing
/// every token of it issued until now instead.
pub async fn revoke_jti(
    state: &AppState,
    jti: &str,
    exp: u64,
    client_id: &str,
) -> Result<(), OAuthError> {
    let now = state.now();
    let until = exp + LEEWAY;
    if until <= now || jti.is_empty() || jti.contains(' ') {
        return Ok(());
    }
    let window = std::time::Duration::from_secs(state.config.access_token_ttl + LEEWAY);
    let counted = state
        .store
        .incr(&schema::feed_jtis(client_id), 1, window)
        .await?;
    if counted > MAX_JTIS_PER_CLIENT {
        tracing::warn!(
            client_id,
            "revocation feed: too many revoked tokens of one client; refusing all of its tokens issued until now instead"
        );
        return add_rule(state, Rule::Client(client_id), now).await;
    }
    state
        .store
        .expiring_add(schema::REVOCATIONS, &format!("j {jti}"), until, now)
        .await?;
    state.feed_cache.clear().await;
    Ok(())
}

/// Adds a rule refusing the tokens `rule` covers that were issued up to `cutoff`, for as long
/// as such a token can live.
pub async fn add_rule(state: &AppState, rule: Rule<'_>, cutoff: u64) -> Result<(), OAuthError> {
    let now = state.now();
    let until = cutoff.max(now) + state.config.access_token_ttl + LEEWAY;
    let d = |s: &str| sha256_b64(s.as_bytes());
    let member = match rule {
        Rule::UserAtClient { sub, client_id } => format!("p {} {} {cutoff}", d(sub), d(client_id)),
        Rule::Client(client_id) => format!("c {} {cutoff}", d(client_id)),
        Rule::User(sub) => format!("u {} {cutoff}", d(sub)),
    };
    state
        .store
        .expiring_add(schema::REVOCATIONS, &member, until, now)
        .await?;
    state.feed_cache.clear().await;
    Ok(())
}

/// The feed now: the copy of the last [`CACHE_FOR`], or one store read.
pub async fn read(state: &AppState) -> Result<Feed, OAuthError> {
    let now = state.now();
    let mut cached = state.feed_cache.0.lock().await;
    if let Some((feed, at, built_for)) = cached.as_ref()
        && *built_for == now
        && at.elapsed() < CACHE_FOR
    {
        return Ok(feed.clone());
    }
    let members = state
        .store
        .expiring_members(schema::REVOCATIONS, now)
        .await?;
    let feed = build(&members);
    *cached = Some((feed.clone(), std::time::Instant::now(), now));
    Ok(feed)
}

/// The feed of the store's members (`(member, until)`): parsed, rules of one subject merged
/// into the latest cutoff, sorted, tagged. Members that do not parse are skipped.
fn build(members: &[(String, u64)]) -> Feed {
    let mut jtis = Vec::new();
    let mut rules: std::collections::BTreeMap<(Option<String>, Option<String>), (u64, u64)> =
        std::collections::BTreeMap::new();
    for (member, until) in members {
        let parts: Vec<&str> = member.split(' ').collect();
        let (sub, client, cutoff) = match parts.as_slice() {
            ["j", jti] => {
                jtis.push(((*jti).to_string(), *until));
                continue;
            }
            ["p", sub, client, cutoff] => (Some(*sub), Some(*client), *cutoff),
            ["c", client, cutoff] => (None, Some(*client), *cutoff),
            ["u", sub, cutoff] => (Some(*sub), None, *cutoff),
            _ => continue,
        };
        let Ok(cutoff) = cutoff.parse::<u64>() else {
            continue;
        };
        let entry = rules
            .entry((sub.map(str::to_string), client.map(str::to_string)))
            .or_insert((cutoff, *until));
        entry.0 = entry.0.max(cutoff);
        entry.1 = entry.1.max(*until);
    }
    jtis.sort();
    let rules: Vec<FeedRule> = rules
        .into_iter()
        .map(|((sub, client), (cutoff, exp))| FeedRule {
            sub_sha256: sub,
            client_id_sha256: client,
            cutoff,
            exp,
        })
        .collect();
    let mut canonical = String::new();
    for (jti, exp) in &jtis {
        canonical.push_str(&format!("j {jti} {exp}\n"));
    }
    for r in &rules {
        canonical.push_str(&format!(
            "r {} {} {} {}\n",
            r.sub_sha256.as_deref().unwrap_or("-"),
            r.client_id_sha256.as_deref().unwrap_or("-"),
            r.cutoff,
            r.exp
        ));
    }
    Feed {
        etag: format!("\"{}\"", sha256_b64(canonical.as_bytes())),
        jtis,
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_of_one_subject_merge_into_the_latest_cutoff_and_the_tag_follows_the_content() {
        let m = |s: &str, t: u64| (s.to_string(), t);
        let feed = build(&[
            m("j b", 20),
            m("j a", 10),
            m("p S C 5", 30),
            m("p S C 7", 31),
            m("c C 3", 40),
            m("u S 4", 50),
            m("x junk", 60),
            m("u S notanumber", 60),
        ]);
        assert_eq!(feed.jtis, vec![("a".into(), 10), ("b".into(), 20)]);
        assert_eq!(feed.rules.len(), 3);
        let pair = feed
            .rules
            .iter()
            .find(|r| r.sub_sha256.is_some() && r.client_id_sha256.is_some());
        assert_eq!(pair.map(|r| (r.cutoff, r.exp)), Some((7, 31)));
        assert_eq!(build(&[m("j a", 10)]).etag, build(&[m("j a", 10)]).etag);
        assert_ne!(build(&[m("j a", 10)]).etag, build(&[]).etag);
    }
}
