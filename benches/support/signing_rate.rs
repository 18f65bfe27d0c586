//! The machine's own reference for the benchmarks: how many JWTs one core signs per second
//! with the key type the server uses (ring, through `hallpass::token::sign`, on claims shaped
//! like an access token's). Every throughput figure can then be read as a fraction of it.

use std::time::{Duration, Instant};

use hallpass::{config::SigningAlg, keys::SigningKey};

/// Signs access-token-shaped claims for about `for_how_long` on this thread; returns
/// signatures per second.
pub fn signing_rate(alg: SigningAlg, for_how_long: Duration) -> f64 {
    let (key, _) = SigningKey::generate(alg, 0, 0).expect("a signing key");
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:3000",
        "sub": "lf1JM8KSekRwDkzwWlHh6A",
        "aud": "http://127.0.0.1:3000",
        "client_id": "UY2Qt4B1ZKxwuaxSRkCXdA",
        "scope": "beers:read",
        "iat": 1_796_000_000u64,
        "exp": 1_796_000_300u64,
        "jti": "q2Ww4b0i7mS3hYJc3vPK9w",
    });
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_how_long {
        for _ in 0..64 {
            std::hint::black_box(hallpass::token::sign(&key, "at+jwt", &claims).expect("signed"));
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}
