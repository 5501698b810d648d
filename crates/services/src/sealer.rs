//! Encryption of secrets at rest (provider API keys and headers): XChaCha20-Poly1305 under the
//! instance's master key, a fresh random nonce per value, stored as `nonce ‖ ciphertext`.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::{ServiceError, ServiceResult};

const NONCE: usize = 24;

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// `key` must be 32 bytes.
    pub fn new(key: &[u8]) -> ServiceResult<Sealer> {
        let cipher = XChaCha20Poly1305::new_from_slice(key)
            .map_err(|_| ServiceError::Internal("the master key must be 32 bytes".into()))?;
        Ok(Sealer { cipher })
    }

    pub fn seal(&self, plain: &[u8]) -> ServiceResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain)
            .map_err(|_| ServiceError::Internal("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> ServiceResult<Vec<u8>> {
        if sealed.len() < NONCE {
            return Err(ServiceError::Internal("sealed value too short".into()));
        }
        let (nonce, ct) = sealed.split_at(NONCE);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| {
                ServiceError::Internal(
                    "a stored secret cannot be decrypted: was the master key changed?".into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering_and_wrong_keys() {
        let s = Sealer::new(&[7u8; 32]).unwrap();
        let a = s.seal(b"sk-secret").unwrap();
        let b = s.seal(b"sk-secret").unwrap();
        assert_ne!(a, b, "nonces differ");
        assert!(!a.windows(9).any(|w| w == b"sk-secret"));
        assert_eq!(s.open(&a).unwrap(), b"sk-secret");
        let mut bad = a.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(s.open(&bad).is_err());
        assert!(Sealer::new(&[8u8; 32]).unwrap().open(&a).is_err());
        assert!(Sealer::new(&[1u8; 16]).is_err());
    }
}
