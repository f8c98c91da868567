//! Secrets handed to clients (API tokens, session cookies): random, shown once, stored only
//! as a SHA-256 hash. They carry 238 bits of randomness, so a fast hash is enough; passwords,
//! which people choose, get argon2 instead (`passwords.rs`).

use rand::Rng;
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new secret: `prefix` then 40 random alphanumeric characters.
pub fn generate(prefix: &str) -> String {
    let mut rng = rand::rng();
    let random: String = (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{random}")
}

/// Lowercase hex SHA-256 of `secret`: what the database keeps.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_and_hashed() {
        let (a, b) = (generate("bsz_"), generate("bsz_"));
        assert_ne!(a, b);
        assert!(a.starts_with("bsz_") && a.len() == 44);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
