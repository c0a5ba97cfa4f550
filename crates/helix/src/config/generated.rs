//! Development secrets generated for the embedded default, kept under the data directory.
//!
//! An embedded deployment (SQLite, one machine) needs a `JWT_SECRET` like any other; asking a
//! newcomer to invent one before `helix up` works is a needless step. Helix generates 256 random
//! bits once, stores them in `<data_dir>/generated/<NAME>` readable by the owner only, and reuses
//! them on every start, so tokens survive restarts. A deployment on PostgreSQL must set its own.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

fn path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("generated").join(name)
}

/// Read a generated secret if it exists.
pub fn read(data_dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(path(data_dir, name))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Read a generated secret, creating it first if missing.
pub fn read_or_create(data_dir: &Path, name: &str) -> std::io::Result<String> {
    if let Some(existing) = read(data_dir, name) {
        return Ok(existing);
    }
    let file = path(data_dir, name);
    std::fs::create_dir_all(file.parent().expect("generated/ has a parent"))?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&file) {
        Ok(mut f) => f.write_all(value.as_bytes()).map(|_| value),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(data_dir, name).ok_or(e),
        Err(e) => Err(e),
    }
}
