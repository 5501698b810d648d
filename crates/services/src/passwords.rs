//! Password hashing with argon2id, run on the blocking pool so it never stalls the async
//! workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::{ServiceError, ServiceResult};

pub async fn hash(password: String) -> ServiceResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt_bytes = crate::tokens::random_bytes::<16>()?;
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

pub async fn verify(password: String, stored: String) -> ServiceResult<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

/// A fixed hash to verify against when the account does not exist, so a login for an unknown
/// email costs the same time as one for a known email.
pub async fn dummy_verify(password: String) {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let stored = DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"agentry-dummy-salt").ok()?;
        Argon2::default()
            .hash_password(b"dummy password", &salt)
            .ok()
            .map(|h| h.to_string())
    });
    if let Some(stored) = stored.clone() {
        let _ = verify(password, stored).await;
    }
}
