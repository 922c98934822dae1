//! The node's persistent identity: an ed25519 keypair (its PeerId) and the
//! webrtc-direct certificate (its certhash), both kept in the data dir so
//! that addresses handed to browsers stay valid across restarts.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use libp2p::identity::Keypair;
use libp2p_webrtc::tokio::Certificate;

const KEY_FILE: &str = "identity.ed25519";
const CERT_FILE: &str = "webrtc-cert.pem";

/// Writes `bytes` readable by the owner only, atomically (temp + rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The keypair in `dir`, created on first use.
pub fn load_or_create_keypair(dir: &Path) -> Result<Keypair> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        return Keypair::from_protobuf_encoding(&bytes)
            .with_context(|| format!("{} is not a libp2p private key", path.display()));
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .context("encoding the new identity")?;
    write_private(&path, &bytes)?;
    tracing::info!(path = %path.display(), peer = %key.public().to_peer_id(), "created a node identity");
    Ok(key)
}

/// The webrtc-direct certificate in `dir`, created on first use.
pub fn load_or_create_certificate(dir: &Path) -> Result<Certificate> {
    let path = dir.join(CERT_FILE);
    if path.exists() {
        let pem =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a webrtc certificate", path.display()));
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert =
        Certificate::generate(&mut rand::rng()).context("generating a webrtc certificate")?;
    write_private(&path, cert.serialize_pem().as_bytes())?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_certificate_survive_a_restart() {
        let dir = tempfile_dir();
        let a = load_or_create_keypair(&dir).unwrap();
        let b = load_or_create_keypair(&dir).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        let c1 = load_or_create_certificate(&dir).unwrap();
        let c2 = load_or_create_certificate(&dir).unwrap();
        assert_eq!(c1.fingerprint(), c2.fingerprint());
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "shard-identity-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }
}
