//! The instance's own secrets, generated on first start in the data dir (mode 0600) and reused
//! after: the JWT signing secret and the master key that will encrypt credentials at rest.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

pub struct InstanceSecrets {
    pub jwt_secret: Vec<u8>,
    pub master_key: Vec<u8>,
}

/// Reads `name` from `dir`, or creates it with `len` random bytes (hex) if it is missing.
fn load_or_create(dir: &Path, name: &str, len: usize) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            check_mode(&path)?;
            let bytes = hex::decode(text.trim())
                .with_context(|| format!("{} is not hex", path.display()))?;
            if bytes.len() < 32 {
                bail!("{} must hold at least 32 bytes", path.display());
            }
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = vec![0u8; len];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(hex::encode(&bytes).as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "generated {name}");
            Ok(bytes)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "secret file is readable by others; chmod 600 it");
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

impl InstanceSecrets {
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<InstanceSecrets> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        Ok(InstanceSecrets {
            jwt_secret: load_or_create(data_dir, "jwt_secret", 64)?,
            master_key: load_or_create(data_dir, "master.key", 32)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_private_mode_then_reused() {
        let dir = std::env::temp_dir().join(format!("agentry-secrets-{}", agentry_core::new_id()));
        let a = InstanceSecrets::load_or_create(&dir).unwrap();
        let b = InstanceSecrets::load_or_create(&dir).unwrap();
        assert_eq!(a.jwt_secret, b.jwt_secret);
        assert_eq!(a.master_key, b.master_key);
        assert_eq!(a.master_key.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("jwt_secret"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
