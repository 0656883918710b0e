//! Reading an image named by path, only from under `image-roots`.
//!
//! Each root is opened once, when the config is loaded (at start and on
//! every reload), and kept as a directory descriptor ([`ImageRoots`]). A
//! request's path is resolved the way the kernel would (every symlink
//! followed) only to learn which root it lies under and what it is called
//! there; the file is then opened *beneath that descriptor* by that name
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`. The name has no
//! link in it when it is worked out, so a link met while opening means a
//! component was swapped since: the open fails and the request is refused
//! as outside. Whatever is renamed or linked meanwhile, the kernel never
//! walks above the root's descriptor, so no byte from outside a root is
//! ever read: there is no window between the check and the open.
//!
//! Why `openat2` and not the `cap-std` crate: it is one system call, the
//! kernel enforces the jail (Linux 5.6+), and the daemon only ever reads.
//! Where `openat2` is missing or filtered (an old kernel, a seccomp
//! profile that answers `ENOSYS` or `EPERM`), the same name is opened one
//! component at a time with `openat(O_NOFOLLOW)` from the root's
//! descriptor, which refuses links just as strictly. `RESOLVE_NO_XDEV` is
//! not set: a file system mounted under a root (a share of photos) is the
//! administrator's choice, and an unprivileged user cannot mount in the
//! daemon's namespace.
//!
//! A `..` component is refused outright, a link pointing out of a root is
//! refused because its target is outside, and only regular files are read:
//! a FIFO or a device is refused without blocking on it.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::OwnedFd;
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

/// One opened root: where it was when opened, and its descriptor.
#[derive(Debug)]
struct Root {
    /// The root's resolved path at the time it was opened.
    path: PathBuf,
    dir: OwnedFd,
}

/// The `image-roots` of one config, each opened once as a directory.
#[derive(Debug, Default)]
pub struct ImageRoots {
    /// How many roots the config names (0: path requests are off).
    configured: usize,
    roots: Vec<Root>,
}

impl ImageRoots {
    /// Opens every root. A root that cannot be opened (missing, not a
    /// folder, not readable) is left out with a warning: paths under it
    /// are refused as outside until a reload opens it.
    pub fn open(paths: &[PathBuf]) -> ImageRoots {
        let mut roots = Vec::new();
        for p in paths {
            match open_root(p) {
                Ok(root) => roots.push(root),
                Err(e) => log::warn!(
                    "image root {}: cannot be opened ({e}); paths under it are refused",
                    p.display()
                ),
            }
        }
        ImageRoots {
            configured: paths.len(),
            roots,
        }
    }

    /// Reads the file at `requested` if it is a regular file under one of
    /// the roots, and is at most `limit` bytes.
    pub fn read(&self, requested: &str, limit: u64) -> Result<Vec<u8>, PathError> {
        if self.configured == 0 {
            return Err(PathError::Disabled);
        }
        let path = Path::new(requested);
        if !path.is_absolute() {
            return Err(PathError::Relative(requested.into()));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::Outside(requested.into()));
        }
        // Only to find the root and the name under it: what is opened is
        // decided by the open beneath the root's descriptor below.
        let resolved = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PathError::Missing(requested.into()))
            }
            Err(e) => return Err(PathError::Io(format!("{requested:?}: {e}"))),
        };
        let Some((root, name)) = self
            .roots
            .iter()
            .find_map(|r| resolved.strip_prefix(&r.path).ok().map(|n| (r, n)))
        else {
            return Err(PathError::Outside(requested.into()));
        };
        let file = open_beneath(&root.dir, name).map_err(|e| match e {
            // A link (or a mount escape) met on the way: a component was
            // swapped since the path was resolved.
            Errno::LOOP | Errno::XDEV | Errno::NOTDIR => PathError::Outside(requested.into()),
            Errno::NOENT => PathError::Missing(requested.into()),
            e => PathError::Io(format!("{requested:?}: {e}")),
        })?;
        read_regular(File::from(file), requested, limit)
    }
}

fn open_root(path: &Path) -> std::io::Result<Root> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)?;
    // Resolved after the open, from the descriptor itself: the path the
    // descriptor stands for even if a link in `path` changed meanwhile.
    let resolved = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        dir.as_raw_fd()
    }))
    .or_else(|_| path.canonicalize())?;
    Ok(Root {
        path: resolved,
        dir: OwnedFd::from(dir),
    })
}

/// How the file itself is opened: read only, never following a link as
/// the last component, never waiting on a FIFO, never taking a terminal.
fn file_flags() -> OFlags {
    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// Opens `name` (relative, no link, no `..`) beneath `dir`.
fn open_beneath(dir: &OwnedFd, name: &Path) -> Result<OwnedFd, Errno> {
    let name = if name.as_os_str().is_empty() {
        Path::new(".")
    } else {
        name
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, name, file_flags(), Mode::empty(), resolve) {
        // No openat2 here (kernel before 5.6, or a seccomp filter).
        Err(Errno::NOSYS) | Err(Errno::PERM) => open_by_components(dir, name),
        other => other,
    }
}

/// The same open without `openat2`: one component at a time from `dir`,
/// each with `O_NOFOLLOW`, so a link anywhere on the way is refused
/// (`ELOOP`, or `ENOTDIR` for a link where a folder was).
fn open_by_components(dir: &OwnedFd, name: &Path) -> Result<OwnedFd, Errno> {
    let parts: Vec<_> = name
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    if parts.iter().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Errno::XDEV);
    }
    let Some((last, folders)) = parts.split_last() else {
        return rustix::fs::openat(dir, ".", file_flags(), Mode::empty());
    };
    let mut here: Option<OwnedFd> = None;
    for folder in folders {
        let at = here.as_ref().unwrap_or(dir);
        let next = rustix::fs::openat(
            at,
            folder.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        here = Some(next);
    }
    rustix::fs::openat(
        here.as_ref().unwrap_or(dir),
        last.as_os_str(),
        file_flags(),
        Mode::empty(),
    )
}

/// Reads an opened file if it is regular and at most `limit` bytes.
fn read_regular(file: File, requested: &str, limit: u64) -> Result<Vec<u8>, PathError> {
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn read_under(roots: &[PathBuf], requested: &str, limit: u64) -> Result<Vec<u8>, PathError> {
        ImageRoots::open(roots).read(requested, limit)
    }

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
            read_under(&roots, &s(&root.join("a.jpg")), 10).unwrap(),
            b"abc"
        );
        assert_eq!(
            read_under(&roots, &s(&root.join("inside.jpg")), 10).unwrap(),
            b"abc"
        );
        assert!(matches!(
            read_under(&roots, &s(&root.join("escape.jpg")), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&root.join("../secret.txt")), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&outside), 10),
            Err(PathError::Outside(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&root.join("none.jpg")), 10),
            Err(PathError::Missing(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&root.join("sub")), 10),
            Err(PathError::NotRegular(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&root), 10),
            Err(PathError::NotRegular(_))
        ));
        assert!(matches!(
            read_under(&roots, &s(&root.join("a.jpg")), 2),
            Err(PathError::TooLarge(2))
        ));
        assert!(matches!(
            read_under(&roots, "a.jpg", 10),
            Err(PathError::Relative(_))
        ));
        assert!(matches!(
            read_under(&[], "/x", 10),
            Err(PathError::Disabled)
        ));
        assert!(matches!(
            read_under(&[PathBuf::from("/dev")], "/dev/zero", 10),
            Err(PathError::NotRegular(_))
        ));
        // A root that does not exist refuses everything as outside.
        let gone = vec![dir.path().join("gone")];
        assert!(matches!(
            read_under(&gone, &s(&dir.path().join("gone/a.jpg")), 10),
            Err(PathError::Missing(_))
        ));
        assert!(matches!(
            read_under(&gone, &s(&root.join("a.jpg")), 10),
            Err(PathError::Outside(_))
        ));
    }

    /// The fallback for kernels without `openat2` opens the same files and
    /// refuses a link anywhere on the way.
    #[test]
    fn the_component_walk_refuses_every_link() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/c.jpg"), b"abc").unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/c.jpg"), b"secret").unwrap();
        symlink(dir.path().join("out"), root.join("a/l")).unwrap();
        symlink("b/c.jpg", root.join("a/f.jpg")).unwrap();
        let r = open_root(&root).unwrap();
        let read = |name: &str| {
            open_by_components(&r.dir, Path::new(name)).map(|fd| {
                let mut v = Vec::new();
                File::from(fd).read_to_end(&mut v).unwrap();
                v
            })
        };
        assert_eq!(read("a/b/c.jpg").unwrap(), b"abc");
        assert_eq!(read("./a/b/c.jpg").unwrap(), b"abc");
        assert_eq!(read("a/l/c.jpg"), Err(Errno::NOTDIR));
        assert_eq!(read("a/f.jpg"), Err(Errno::LOOP));
        assert_eq!(read("a/../a/b/c.jpg"), Err(Errno::XDEV));
        assert_eq!(read("a/b/none.jpg"), Err(Errno::NOENT));
        // And openat2 agrees on each.
        let beneath = |name: &str| open_beneath(&r.dir, Path::new(name)).map(|_| ());
        assert_eq!(beneath("a/b/c.jpg"), Ok(()));
        assert!(beneath("a/l/c.jpg").is_err());
        assert!(beneath("a/f.jpg").is_err());
        assert_eq!(beneath("a/b/none.jpg"), Err(Errno::NOENT));
    }

    /// A folder inside the root is swapped, in a loop, with a link to a
    /// folder outside holding a file of the same name; thousands of reads
    /// of that file never return the outside one's bytes. (The check-then-
    /// open that came before returned them a few times in a hundred.)
    #[test]
    fn a_swapped_folder_never_lets_a_read_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("d/photo.jpg"), b"inside").unwrap();
        std::fs::write(outside.join("photo.jpg"), b"outside").unwrap();
        symlink(&outside, root.join("link")).unwrap();
        let roots = ImageRoots::open(&[root.clone()]);
        let requested = root.join("d/photo.jpg").to_str().unwrap().to_string();

        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, root) = (stop.clone(), root.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // d: folder -> link to outside -> folder, each step atomic.
                    std::fs::rename(root.join("d"), root.join("real")).unwrap();
                    std::fs::rename(root.join("link"), root.join("d")).unwrap();
                    std::fs::rename(root.join("d"), root.join("link")).unwrap();
                    std::fs::rename(root.join("real"), root.join("d")).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let (mut inside, mut refused) = (0, 0);
        for _ in 0..20_000 {
            match roots.read(&requested, 100) {
                Ok(bytes) => {
                    assert_eq!(bytes, b"inside", "a read escaped the root");
                    inside += 1;
                }
                Err(PathError::Outside(_) | PathError::Missing(_)) => refused += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 100, "the swap raced only {swaps} times");
        assert!(
            inside > 0 && refused > 0,
            "{inside} read, {refused} refused"
        );
    }
}
