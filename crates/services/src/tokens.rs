//! Secrets and signed tokens: random opaque tokens, their stored hashes, API keys, and HS256
//! access JWTs.
//!
//! The JWT code accepts exactly one algorithm (HS256) and compares signatures in constant
//! time; a header naming any other algorithm, `none` included, is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{ServiceError, ServiceResult};

pub const API_KEY_PREFIX: &str = "agk_";
/// How many characters of a key are kept to show which key it is.
pub const API_KEY_SHOWN: usize = 12;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> ServiceResult<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    Ok(buf)
}

/// An opaque token of 32 random bytes, hex-encoded.
pub fn opaque_token() -> ServiceResult<String> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// A new API key secret: `agk_` and 32 random bytes in hex.
pub fn new_api_key() -> ServiceResult<String> {
    Ok(format!("{API_KEY_PREFIX}{}", opaque_token()?))
}

/// The part of a key shown in listings.
pub fn api_key_prefix(key: &str) -> String {
    key.chars().take(API_KEY_SHOWN).collect()
}

/// SHA-256 of a high-entropy secret, hex-encoded: what the database stores.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

const ISSUER: &str = "agentry";

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> ServiceResult<HmacSha256> {
    HmacSha256::new_from_slice(secret).map_err(|_| ServiceError::Internal("bad jwt secret".into()))
}

pub fn sign_access_token(
    secret: &[u8],
    sub: Uuid,
    sid: Uuid,
    iat: i64,
    exp: i64,
) -> ServiceResult<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub,
        sid,
        iat,
        exp,
    };
    let payload = serde_json::to_vec(&claims).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mut m = mac(secret)?;
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadAlgorithm,
    BadSignature,
    Expired,
}

/// Checks the signature, algorithm, issuer and expiry of an access token.
pub fn verify_access_token(
    secret: &[u8],
    token: &str,
    now: i64,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::BadAlgorithm);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret).map_err(|_| TokenError::BadSignature)?;
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    let claims: AccessClaims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(TokenError::Malformed);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let (u, s) = (agentry_core::new_id(), agentry_core::new_id());
        let t = sign_access_token(SECRET, u, s, 100, 200).unwrap();
        let c = verify_access_token(SECRET, &t, 150).unwrap();
        assert_eq!((c.sub, c.sid), (u, s));
        assert_eq!(
            verify_access_token(SECRET, &t, 200),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_access_token(b"another secret of 32 bytes......", &t, 150),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn refuses_alg_none_and_tampering() {
        let t = sign_access_token(
            SECRET,
            agentry_core::new_id(),
            agentry_core::new_id(),
            100,
            200,
        )
        .unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            verify_access_token(SECRET, &format!("{none}.{}.", parts[1]), 150),
            Err(TokenError::BadAlgorithm)
        );
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"agentry","sub":"{}","sid":"{}","iat":1,"exp":999999}}"#,
            Uuid::nil(),
            Uuid::nil()
        ));
        assert_eq!(
            verify_access_token(SECRET, &format!("{}.{claims}.{}", parts[0], parts[2]), 150),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(verify_access_token(SECRET, bad, 150).is_err());
        }
    }

    #[test]
    fn keys_and_hashes() {
        let k = new_api_key().unwrap();
        assert!(k.starts_with("agk_") && k.len() == 68);
        assert_eq!(api_key_prefix(&k).len(), API_KEY_SHOWN);
        assert_eq!(hash_secret("x"), hash_secret("x"));
        assert_ne!(hash_secret("x"), hash_secret("y"));
    }
}
