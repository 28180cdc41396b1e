//! Secrets gemgate makes for itself on first start (a client key, an admin
//! key) when config names none: so it is never open by accident, and the
//! operator finds the key in the data folder.

use rand::Rng;
use std::io::Write;
use std::path::Path;

/// A new random secret: `gg-` and 40 hex digits.
pub fn generate_secret() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    format!("gg-{}", hex::encode(bytes))
}

/// Reads the secret kept in `dir/name`, or makes, saves (mode 0600) and
/// returns a new one. The flag says whether it was just made.
pub fn load_or_generate(dir: &Path, name: &str) -> std::io::Result<(String, bool)> {
    let path = dir.join(name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let secret = text.trim().to_string();
        if secret.len() >= 16 {
            return Ok((secret, false));
        }
    }
    std::fs::create_dir_all(dir)?;
    let secret = generate_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path)?;
    writeln!(file, "{secret}")?;
    Ok((secret, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = load_or_generate(dir.path(), "client-key").unwrap();
        assert!(created && first.starts_with("gg-") && first.len() == 43);
        let (again, created) = load_or_generate(dir.path(), "client-key").unwrap();
        assert_eq!((again, created), (first, false));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("client-key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
