//! Reading an image named by path, only from under `image-roots`.
//!
//! The path is resolved the way the kernel would (every symlink followed),
//! and the result must lie under a root that is itself resolved. A `..`
//! component is refused outright, a link pointing out of a root is refused
//! because its target is outside, and only regular files are read: a FIFO
//! or a device is refused without blocking on it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// `image-roots` is empty.
    #[error("Path requests are turned off: server.image-roots is empty")]
    Disabled,
    /// The path must be absolute.
    #[error("Path {0:?} is not absolute")]
    Relative(String),
    /// Outside every root (or through `..`).
    #[error("Path {0:?} is outside the image roots")]
    Outside(String),
    /// No such file.
    #[error("No file at {0:?}")]
    Missing(String),
    /// A directory, device, FIFO or socket.
    #[error("Path {0:?} is not a regular file")]
    NotRegular(String),
    /// The file is larger than `max-body-bytes`.
    #[error("File over the limit of {0} bytes")]
    TooLarge(u64),
    /// Opening or reading failed otherwise (permissions, I/O).
    #[error("Cannot read {0}")]
    Io(String),
}

/// Reads the file at `requested` if it resolves to a regular file under one
/// of `roots`, and is at most `limit` bytes.
pub fn read_under_roots(
    roots: &[PathBuf],
    requested: &str,
    limit: u64,
) -> Result<Vec<u8>, PathError> {
    if roots.is_empty() {
        return Err(PathError::Disabled);
    }
    let path = Path::new(requested);
    if !path.is_absolute() {
        return Err(PathError::Relative(requested.into()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::Outside(requested.into()));
    }
    let resolved = match path.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PathError::Missing(requested.into()))
        }
        Err(e) => return Err(PathError::Io(format!("{requested:?}: {e}"))),
    };
    let inside = roots
        .iter()
        .filter_map(|r| r.canonicalize().ok())
        .any(|root| resolved.starts_with(&root));
    if !inside {
        return Err(PathError::Outside(requested.into()));
    }
    // O_NOFOLLOW: the last component cannot have become a link since it was
    // resolved; O_NONBLOCK: opening a FIFO does not wait for a writer.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&resolved)
        .map_err(|e| PathError::Io(format!("{requested:?}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| PathError::Io(format!("{requested:?}: {e}")))?;
    if !meta.is_file() {
        return Err(PathError::NotRegular(requested.into()));
    }
    if meta.len() > limit {
        return Err(PathError::TooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PathError::Io(format!("{requested:?}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(PathError::TooLarge(limit));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_regular_files_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("secret.txt");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.jpg"), b"abc").unwrap();
        std::fs::write(&outside, b"secret").unwrap();
        symlink(&outside, root.join("escape.jpg")).unwrap();
        symlink(root.join("a.jpg"), root.join("inside.jpg")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let roots = vec![root.clone()];
        let s = |p: &Path| p.to_str().unwrap().to_string();

        assert_eq!(
            read_under_roots(&roots, &s(&root.join("a.jpg")), 10).unwrap(),
            b"abc"
        );
        assert_eq!(
            read_under_roots(&roots, &s(&root.join("inside.jpg")), 10).unwrap(),
            b"abc"
        );
        assert!(matches!(
            read_under_roots(&roots, &s(&root.join("escape.jpg")), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under_roots(&roots, &s(&root.join("../secret.txt")), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under_roots(&roots, &s(&outside), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under_roots(&roots, &s(&root.join("none.jpg")), 10),
            Err(PathError::Missing(_))
        ));
        assert!(matches!(
            read_under_roots(&roots, &s(&root.join("sub")), 10),
            Err(PathError::NotRegular(_))
        ));
        assert!(matches!(
            read_under_roots(&roots, &s(&root.join("a.jpg")), 2),
            Err(PathError::TooLarge(2))
        ));
        assert!(matches!(
            read_under_roots(&roots, "a.jpg", 10),
            Err(PathError::Relative(_))
        ));
        assert!(matches!(
            read_under_roots(&[], "/x", 10),
            Err(PathError::Disabled)
        ));
        assert!(matches!(
            read_under_roots(&[PathBuf::from("/dev")], "/dev/zero", 10),
            Err(PathError::NotRegular(_))
        ));
    }
}
