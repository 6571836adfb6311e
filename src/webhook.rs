//! Authenticating webhook callers. Pure: headers and body in, a verdict out.
//!
//! GitLab sends the shared token as `X-Gitlab-Token`; GitHub signs the body with HMAC-SHA256 in
//! `X-Hub-Signature-256: sha256=<hex>`. Both comparisons take constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authentic and a push: fetch now.
    Push,
    /// Authentic but not a push (a ping, an issue event): nothing to do.
    Ignored,
    /// Missing or wrong secret.
    Unauthorized,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `token` is the `X-Gitlab-Token` header; `event` the `X-Gitlab-Event` header.
pub fn gitlab(secret: &str, token: Option<&str>, event: Option<&str>) -> Verdict {
    match token {
        Some(token) if constant_time_eq(token.as_bytes(), secret.as_bytes()) => match event {
            Some("Push Hook" | "Tag Push Hook" | "System Hook") => Verdict::Push,
            _ => Verdict::Ignored,
        },
        _ => Verdict::Unauthorized,
    }
}

/// `signature` is the `X-Hub-Signature-256` header; `event` the `X-GitHub-Event` header.
pub fn github(secret: &str, signature: Option<&str>, event: Option<&str>, body: &[u8]) -> Verdict {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else { return Verdict::Unauthorized };
    let Ok(sig) = hex::decode(hex_sig) else { return Verdict::Unauthorized };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    if mac.verify_slice(&sig).is_err() {
        return Verdict::Unauthorized;
    }
    match event {
        Some("push") => Verdict::Push,
        _ => Verdict::Ignored,
    }
}

/// The signature GitHub would send for `body`; for tests and for documentation.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_needs_the_exact_token() {
        assert_eq!(gitlab("s3cret", Some("s3cret"), Some("Push Hook")), Verdict::Push);
        assert_eq!(gitlab("s3cret", Some("s3cret"), Some("Issue Hook")), Verdict::Ignored);
        assert_eq!(gitlab("s3cret", Some("s3cre"), Some("Push Hook")), Verdict::Unauthorized);
        assert_eq!(gitlab("s3cret", None, Some("Push Hook")), Verdict::Unauthorized);
    }

    #[test]
    fn github_needs_a_valid_signature_of_this_body() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = github_signature("s3cret", body);
        assert_eq!(github("s3cret", Some(&sig), Some("push"), body), Verdict::Push);
        assert_eq!(github("s3cret", Some(&sig), Some("ping"), body), Verdict::Ignored);
        assert_eq!(github("s3cret", Some(&sig), Some("push"), b"{}"), Verdict::Unauthorized);
        assert_eq!(github("other", Some(&sig), Some("push"), body), Verdict::Unauthorized);
        assert_eq!(github("s3cret", Some("sha256=zz"), Some("push"), body), Verdict::Unauthorized);
        assert_eq!(github("s3cret", None, Some("push"), body), Verdict::Unauthorized);
    }
}
