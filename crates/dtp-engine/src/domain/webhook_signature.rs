//! Standard Webhooks signatures of HTTP-target requests: `v1,` and the base64 of
//! HMAC-SHA256 over `"<webhook-id>.<webhook-timestamp>.<body>"`. A secret written as
//! `whsec_<base64>` (the form Standard Webhooks libraries generate) signs with its decoded
//! bytes, so those libraries verify our requests; any other secret signs with its own bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix Standard Webhooks gives its base64 secrets.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    #[error("is empty")]
    Empty,
    #[error("starts with {SECRET_PREFIX} but the rest is not base64")]
    NotBase64,
}

/// The HMAC key of a configured secret.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, InvalidSecret> {
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| InvalidSecret::NotBase64)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(InvalidSecret::Empty);
    }
    Ok(key)
}

/// The `webhook-signature` header's value for one request.
pub fn signature(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn plain_secrets_sign_with_their_own_bytes() {
        assert_eq!(signing_key("s3cret").unwrap(), b"s3cret");
        let a = signature(b"s3cret", "dtp-1-1", 1, b"{}");
        assert!(a.starts_with("v1,"));
        assert_ne!(a, signature(b"other", "dtp-1-1", 1, b"{}"));
        assert_ne!(a, signature(b"s3cret", "dtp-1-2", 1, b"{}"));
        assert_ne!(a, signature(b"s3cret", "dtp-1-1", 2, b"{}"));
        assert_ne!(a, signature(b"s3cret", "dtp-1-1", 1, b"{ }"));
    }

    #[test]
    fn refuses_unusable_secrets() {
        assert_eq!(signing_key(""), Err(InvalidSecret::Empty));
        assert_eq!(signing_key("whsec_"), Err(InvalidSecret::Empty));
        assert_eq!(signing_key("whsec_***"), Err(InvalidSecret::NotBase64));
    }
}
