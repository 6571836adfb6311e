//! SSH host key verification against an OpenSSH `known_hosts` file.
//!
//! The seed documents turn host key checking off (`StrictHostKeyChecking no`); slipway does not:
//! an unknown or changed host key refuses the connection unless explicitly allowed.
//! Supported: plain and `[host]:port` patterns, comma-separated lists, hashed entries
//! (`|1|salt|hash`), `*`/`?` wildcards and `!` negation, `@revoked` markers. `@cert-authority`
//! lines are skipped (certificates are not checked).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// What `known_hosts` says about a host and the key it presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKeyVerdict {
    /// A line for this host has exactly this key.
    Trusted,
    /// Lines for this host exist, none with this key: the key changed (or someone is in between).
    Mismatch,
    /// The key is marked `@revoked`.
    Revoked,
    /// No line names this host.
    Unknown,
}

/// The name `known_hosts` uses for a host: `host` on port 22, `[host]:port` otherwise.
pub(crate) fn host_pattern_name(host: &str, port: u16) -> String {
    if port == 22 { host.to_string() } else { format!("[{host}]:{port}") }
}

/// Checks `key` (the raw SSH public key blob the server presented) for `host`.
pub(crate) fn verify(known_hosts: &str, host: &str, port: u16, key: &[u8]) -> HostKeyVerdict {
    let name = host_pattern_name(host, port);
    let mut seen_host = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut hosts) = fields.next() else { continue };
        let mut revoked = false;
        if hosts.starts_with('@') {
            match hosts {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority: certificates are not supported
            }
            let Some(h) = fields.next() else { continue };
            hosts = h;
        }
        let (Some(_key_type), Some(blob)) = (fields.next(), fields.next()) else { continue };
        if !hosts_match(hosts, &name) {
            continue;
        }
        let Ok(blob) = STANDARD.decode(blob) else { continue };
        if revoked {
            if blob == key {
                return HostKeyVerdict::Revoked;
            }
            continue;
        }
        seen_host = true;
        if blob == key {
            return HostKeyVerdict::Trusted;
        }
    }
    if seen_host { HostKeyVerdict::Mismatch } else { HostKeyVerdict::Unknown }
}

fn hosts_match(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(negated, name) {
                return false;
            }
        } else if glob(pattern, name) {
            matched = true;
        }
    }
    matched
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`
fn hashed_match(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else { return false };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"\x00\x00\x00\x0bssh-ed25519 key-one";
    const OTHER: &[u8] = b"\x00\x00\x00\x0bssh-ed25519 key-two";

    fn line(hosts: &str, key: &[u8]) -> String {
        format!("{hosts} ssh-ed25519 {}\n", STANDARD.encode(key))
    }

    #[test]
    fn a_listed_key_is_trusted_and_another_key_for_the_host_is_a_mismatch() {
        let file = line("git.example.com,10.0.0.1", KEY);
        assert_eq!(verify(&file, "git.example.com", 22, KEY), HostKeyVerdict::Trusted);
        assert_eq!(verify(&file, "git.example.com", 22, OTHER), HostKeyVerdict::Mismatch);
        assert_eq!(verify(&file, "elsewhere.example.com", 22, KEY), HostKeyVerdict::Unknown);
    }

    #[test]
    fn non_standard_ports_use_the_bracket_form() {
        let file = line("[127.0.0.1]:2222", KEY);
        assert_eq!(verify(&file, "127.0.0.1", 2222, KEY), HostKeyVerdict::Trusted);
        assert_eq!(verify(&file, "127.0.0.1", 22, KEY), HostKeyVerdict::Unknown);
    }

    #[test]
    fn hashed_entries_match_by_hmac() {
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"git.example.com");
        let hosts = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(mac.finalize().into_bytes()));
        let file = line(&hosts, KEY);
        assert_eq!(verify(&file, "git.example.com", 22, KEY), HostKeyVerdict::Trusted);
        assert_eq!(verify(&file, "git.example.org", 22, KEY), HostKeyVerdict::Unknown);
    }

    #[test]
    fn wildcards_negation_and_revocation() {
        let file = format!("{}{}", line("*.example.com,!evil.example.com", KEY), format_args!("@revoked {}", line("*", OTHER)));
        assert_eq!(verify(&file, "git.example.com", 22, KEY), HostKeyVerdict::Trusted);
        assert_eq!(verify(&file, "evil.example.com", 22, KEY), HostKeyVerdict::Unknown);
        assert_eq!(verify(&file, "git.example.com", 22, OTHER), HostKeyVerdict::Revoked);
    }
}
