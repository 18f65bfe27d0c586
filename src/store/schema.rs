//! Every key the store holds, in one place: its shape, what it holds and how long it lives.
//!
//! Callers never spell a key themselves: they call the function here that builds it. Every
//! part of a key that comes from outside (a username, a client id a caller sent, an owner id)
//! goes through [`escape`], which percent-encodes everything but `A-Z a-z 0-9 - . _ ~`. So a
//! part can never contain the `:` that separates parts (no two key shapes can collide, and no
//! part can end early), nor the `{`/`}` that would choose a Redis Cluster hash slot. Ids the
//! server generates (base64url) and SHA-256 digests pass through unchanged.
//!
//! [`KEYS`] lists every shape with its lifetime; a test holds the README's table to it. The
//! deployment prefix (`HALLPASS_REDIS_PREFIX`) is added by the backend, not here.
//!
//! Keys whose user-chosen part contains any other character changed shape when escaping was
//! introduced (for example a username with a non-ASCII letter); data stored under the old
//! shape is not migrated.

use std::borrow::Cow;
use std::time::Duration;

use crate::crypto::sha256_b64;

/// One key shape of the store, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyShape {
    /// The shape, with `<...>` for the variable parts (for example `user:<username>`).
    pub pattern: &'static str,
    /// How long a key of this shape lives, in the README's words.
    pub lifetime: &'static str,
}

/// Every key shape, in the README's order.
pub const KEYS: &[KeyShape] = &[
    KeyShape {
        pattern: "user:<username>",
        lifetime: "until deleted",
    },
    KeyShape {
        pattern: "userid:<user id>",
        lifetime: "until deleted",
    },
    KeyShape {
        pattern: "client:<client_id>",
        lifetime: "until deleted",
    },
    KeyShape {
        pattern: "owner_clients:<user id>",
        lifetime: "until deleted",
    },
    KeyShape {
        pattern: "code:<SHA-256 of the code>",
        lifetime: "60 s (`HALLPASS_CODE_TTL`) while pending; once redeemed, the access-token lifetime",
    },
    KeyShape {
        pattern: "used:code:<SHA-256 of the code>",
        lifetime: "access-token lifetime",
    },
    KeyShape {
        pattern: "consent_used:<consent id>",
        lifetime: "10 min",
    },
    KeyShape {
        pattern: "rtf:<family id>",
        lifetime: "idle / absolute lifetime",
    },
    KeyShape {
        pattern: "rtfams:<user id>:<client_id>",
        lifetime: "until its families are revoked",
    },
    KeyShape {
        pattern: "deny:<jti>",
        lifetime: "the token's remaining life",
    },
    KeyShape {
        pattern: "consent:<user id>:<client_id>",
        lifetime: "until withdrawn",
    },
    KeyShape {
        pattern: "consents:<user id>",
        lifetime: "until withdrawn",
    },
    KeyShape {
        pattern: "keyrotation:<kid>",
        lifetime: "the rotation lead time",
    },
    KeyShape {
        pattern: "locker:<user id>",
        lifetime: "until emptied",
    },
    KeyShape {
        pattern: "sessions:<user id>",
        lifetime: "session lifetime (`HALLPASS_SESSION_TTL`)",
    },
    KeyShape {
        pattern: "tokens_nb:<user id>:<client_id>",
        lifetime: "access-token lifetime + 30 s",
    },
    KeyShape {
        pattern: "tokens_nb:<client_id>",
        lifetime: "access-token lifetime + 30 s",
    },
    KeyShape {
        pattern: "tokens_nb_user:<user id>",
        lifetime: "access-token lifetime + 30 s",
    },
    KeyShape {
        pattern: "revocations",
        lifetime: "each entry: until the tokens it names have expired",
    },
    KeyShape {
        pattern: "feed_jtis:<client_id>",
        lifetime: "access-token lifetime + 30 s",
    },
    KeyShape {
        pattern: "throttle:<limit>:<subject>:<window number>",
        lifetime: "one window (`HALLPASS_RATE_LIMIT_WINDOW`)",
    },
    KeyShape {
        pattern: "throttle_in_flight:<limit>:<subject>",
        lifetime: "60 s",
    },
    KeyShape {
        pattern: "throttle_until:<limit>:<subject>",
        lifetime: "the current delay (at most `HALLPASS_RATE_LIMIT_MAX_DELAY`)",
    },
];

/// How long a consent form stays usable, and so how long its `consent_used:` marker lives.
pub const CONSENT_TTL: Duration = Duration::from_secs(600);

/// Percent-encodes every byte outside `A-Z a-z 0-9 - . _ ~`, so the result contains no `:`,
/// `{`, `}` or `%` of its own. Borrowed when nothing needs escaping (the common case).
pub fn escape(part: &str) -> Cow<'_, str> {
    let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if part.bytes().all(safe) {
        return Cow::Borrowed(part);
    }
    let mut out = String::with_capacity(part.len() * 3);
    for b in part.bytes() {
        if safe(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// Key shapes whose writes are security-critical (client records, whose rotation or deletion
/// must not come undone, code use markers, revocations, refresh families, consents): with `HALLPASS_REDIS_WAIT_REPLICAS` set, a write to one of them waits
/// for that many replicas, so an asynchronous failover cannot lose it silently.
pub const SECURITY_CRITICAL: &[&str] = &[
    "client:",
    "code:",
    "used:",
    "consent_used:",
    "rtf:",
    "rtfams:",
    "deny:",
    "consent:",
    "consents:",
    "session:",
    "tokens_nb",
    "revocations",
];

/// Whether a write to `key` (without the deployment prefix) must be durable, see
/// [`SECURITY_CRITICAL`].
pub fn is_security_critical(key: &str) -> bool {
    SECURITY_CRITICAL.iter().any(|p| key.starts_with(p))
}

/// `user:<username>`: the user record (argon2id hash, never the password).
pub fn user(username: &str) -> String {
    format!("user:{}", escape(username))
}

/// `userid:<user id>`: user id → username.
pub fn user_id(id: &str) -> String {
    format!("userid:{}", escape(id))
}

/// `client:<client_id>`: the client record (SHA-256 of its secret, never the secret).
pub fn client(client_id: &str) -> String {
    format!("client:{}", escape(client_id))
}

/// `owner_clients:<user id>`: the set of a user's client ids.
pub fn owner_clients(owner: &str) -> String {
    format!("owner_clients:{}", escape(owner))
}

/// `code:<SHA-256 of the code>`: a pending authorization code grant, and once redeemed what
/// it bought (see `oauth::grant`).
pub fn code(code: &str) -> String {
    format!("code:{}", sha256_b64(code.as_bytes()))
}

/// `used:code:<SHA-256 of the code>`: what a redeemed code bought, as earlier releases kept
/// it; a code redeemed now keeps it under its own key (see `oauth::grant`). Read on a
/// replay only, for as long as such records live.
pub fn used_code(code: &str) -> String {
    format!("used:{}", self::code(code))
}

/// `consent_used:<consent id>`: marks a consent form as submitted (see [`CONSENT_TTL`]).
pub fn consent_used(consent_id: &str) -> String {
    format!("consent_used:{}", escape(consent_id))
}

/// `rtf:<family id>`: one refresh-token family.
pub fn refresh_family(family_id: &str) -> String {
    format!("rtf:{}", escape(family_id))
}

/// `rtfams:<user id>:<client_id>`: the set of a user's refresh families at one client.
pub fn refresh_families(sub: &str, client_id: &str) -> String {
    format!("rtfams:{}:{}", escape(sub), escape(client_id))
}

/// `deny:<jti>`: a revoked access token.
pub fn denied(jti: &str) -> String {
    format!("deny:{}", escape(jti))
}

/// `consent:<user id>:<client_id>`: the scopes a user granted a client.
pub fn consent(sub: &str, client_id: &str) -> String {
    format!("consent:{}:{}", escape(sub), escape(client_id))
}

/// `consents:<user id>`: the set of client ids a user granted consent to.
pub fn consents(sub: &str) -> String {
    format!("consents:{}", escape(sub))
}

/// `keyrotation:<kid>`: claims a scheduled rotation away from key `kid` for one instance.
pub fn key_rotation(kid: &str) -> String {
    format!("keyrotation:{}", escape(kid))
}

/// `locker:<user id>`: the beer locker's document for one owner (the `beer-locker` binary).
pub fn locker(owner: &str) -> String {
    format!("locker:{}", escape(owner))
}

/// `sessions:<user id>`: the user's ended browser sessions and "sessions not before" time
/// (see `oauth::sign_out`).
pub fn sessions(user_id: &str) -> String {
    format!("sessions:{}", escape(user_id))
}

/// `tokens_nb:<user id>:<client_id>`: access tokens of this user at this client issued at or
/// before the stored time are refused (consent withdrawn; see `oauth::token_cutoff`).
pub fn tokens_not_before_pair(sub: &str, client_id: &str) -> String {
    format!("tokens_nb:{}:{}", escape(sub), escape(client_id))
}

/// `tokens_nb:<client_id>`: every access token of this client issued at or before the stored
/// time is refused (client deleted). One part, so it never collides with the pair shape.
pub fn tokens_not_before_client(client_id: &str) -> String {
    format!("tokens_nb:{}", escape(client_id))
}

/// `tokens_nb_user:<user id>`: every access token of this user issued at or before the
/// stored time is refused (sign out everywhere). Its own prefix, so it never collides with
/// the client shape `tokens_nb:<client_id>`.
pub fn tokens_not_before_user(sub: &str) -> String {
    format!("tokens_nb_user:{}", escape(sub))
}

/// `revocations`: the revocation feed, one Redis sorted set (see `oauth::revocation_feed`):
/// each member is one revoked `jti` or one "not before" rule, scored with the Unix second
/// after which it can be dropped. One key, so the feed is read in one command on a Redis
/// Cluster too.
pub const REVOCATIONS: &str = "revocations";

/// `feed_jtis:<client_id>`: how many `jti`s of this client's tokens entered the revocation
/// feed lately (a counter that lives an access-token lifetime), which bounds one client's
/// share of the feed.
pub fn feed_jtis(client_id: &str) -> String {
    format!("feed_jtis:{}", escape(client_id))
}

/// The parts of a rate-limit subject (an account, an IP, a client id), each escaped and
/// joined with `:`.
fn subject(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| escape(p))
        .collect::<Vec<_>>()
        .join(":")
}

/// `throttle:<limit>:<subject>:<window number>`: how many failures (or registrations) one
/// subject had in one fixed window (`now / window length`). Counted with [`Store::incr`],
/// so it expires with its window.
///
/// [`Store::incr`]: crate::store::Store::incr
pub fn throttle_count(limit: &str, parts: &[&str], window: u64) -> String {
    format!("throttle:{}:{}:{window}", escape(limit), subject(parts))
}

/// `throttle_in_flight:<limit>:<subject>`: how many attempts of one subject are being
/// checked right now (incremented on admission, decremented when settled).
pub fn throttle_in_flight(limit: &str, parts: &[&str]) -> String {
    format!("throttle_in_flight:{}:{}", escape(limit), subject(parts))
}

/// `throttle_until:<limit>:<subject>`: the Unix second (of the state's clock) before which
/// the subject's next attempt is refused. Lives as long as that delay.
pub fn throttle_until(limit: &str, parts: &[&str]) -> String {
    format!("throttle_until:{}:{}", escape(limit), subject(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_chosen_text_cannot_forge_a_separator_or_a_hash_slot() {
        assert_eq!(user("alice"), "user:alice");
        assert_eq!(user("a:b{c}%"), "user:a%3Ab%7Bc%7D%25");
        assert_ne!(consent("a:b", "c"), consent("a", "b:c"));
        assert_eq!(escape("Zx-_.~09"), "Zx-_.~09");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(
            throttle_count("sign_in_account_ip", &["a:b", "::1"], 7),
            "throttle:sign_in_account_ip:a%3Ab:%3A%3A1:7"
        );
        assert_ne!(
            throttle_until("l", &["a:b", "c"]),
            throttle_until("l", &["a", "b:c"])
        );
    }

    /// The README's table of what the store holds is the same list as [`KEYS`].
    #[test]
    fn readme_table_lists_exactly_the_schema_keys() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("| key | what | lifetime |")
            .unwrap_or(readme.len());
        let rows: Vec<(String, String)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split(" | ").collect();
                let key = cells.first().copied().unwrap_or_default().trim();
                let lifetime = cells.last().copied().unwrap_or_default().trim();
                (key.trim_matches('`').to_string(), lifetime.to_string())
            })
            .collect();
        let expected: Vec<(String, String)> = KEYS
            .iter()
            .map(|k| (k.pattern.to_string(), k.lifetime.to_string()))
            .collect();
        assert_eq!(rows, expected);
    }
}
