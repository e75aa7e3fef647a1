//! Files written whole or not at all: every output is first written under a temporary name in
//! its destination folder and renamed over the destination only when complete, so a full disk,
//! a crash or a `kill -9` never leaves a half-written file where a good one was.
//!
//! Temporary names are `.{name}.tmp-{pid}.{extension}`: hidden, owned by one process, and
//! still ending in the destination's extension (image writers choose the format by it). A
//! process that was killed cannot remove its temporary file; the next write of the same
//! destination removes any whose process is gone.

use std::io::Write;
use std::path::{Path, PathBuf};

fn prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp-")
}

/// Whether process `pid` still runs (always "yes" where that cannot be told).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes temporary files of `dest` left by processes that no longer run.
pub fn remove_stale(dest: &Path) {
    let (Some(dir), prefix) = (dest.parent(), prefix(dest)) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| pid != std::process::id() && !alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// This process's temporary name for `dest`, after clearing stale ones.
pub fn temp_path(dest: &Path) -> PathBuf {
    remove_stale(dest);
    let ext = dest
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    dest.with_file_name(format!("{}{}{ext}", prefix(dest), std::process::id()))
}

/// Renames a finished temporary file over `dest`, removing it instead if `result` failed.
pub fn commit<E>(tmp: &Path, dest: &Path, result: Result<(), E>) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    let done = result.and_then(|()| std::fs::rename(tmp, dest).map_err(E::from));
    if done.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    done
}

/// Writes `bytes` to `dest` through a temporary file, synced before the rename.
pub fn write(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(dest);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    commit(&tmp, dest, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_process_leftovers_are_removed_and_a_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.h5");
        // pid 0 is never a user process; our own pid is alive.
        let dead = dir.path().join(".x.h5.tmp-999999999.h5");
        let mine = dir
            .path()
            .join(format!(".x.h5.tmp-{}.h5", std::process::id()));
        let other = dir.path().join(".y.h5.tmp-999999999.h5");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        let tmp = temp_path(&dest);
        assert_eq!(tmp, mine);
        assert!(!dead.exists(), "a dead process's file is removed");
        assert!(other.exists(), "another destination's file is left alone");
        write(&dest, b"whole").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        assert!(!mine.exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.png");
        std::fs::write(&dest, b"old").unwrap();
        let tmp = temp_path(&dest);
        assert!(tmp.to_string_lossy().ends_with(".png"));
        std::fs::write(&tmp, b"half").unwrap();
        let failed: std::io::Result<()> = Err(std::io::Error::other("disk full"));
        assert!(commit(&tmp, &dest, failed).is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert!(!tmp.exists());
    }
}
