//! Container log rotation (upstream's `pkg/kubelet/logs/container_log_manager.go`, same
//! files on disk): once a container's CRI log reaches `--container-log-max-size`, it is renamed
//! to `<log>.<YYYYMMDD-hhmmss>` (UTC) and writing goes on in a fresh `<log>`; older rotated
//! files are gzipped (`<log>.<stamp>.gz`) and the oldest removed, so at most
//! `--container-log-max-files` files exist, the one being written included: the newest
//! rotated one stays plain, the rest are compressed.
//!
//! Who rotates: upstream's kubelet checks sizes every 10 s, renames the file and asks the
//! runtime to reopen it (CRI `ReopenContainerLog`). Here the shim that writes the log rotates
//! it itself, right after the write that reached the limit (`shim.rs`), given the limits as
//! flags when the kubelet starts it:
//! - nothing is written into a file after it was renamed, and no line is lost or split
//!   between the rename and a reopen: the writer is the one who renames;
//! - logs stay bounded while the kubelet is down or restarting, and a container that writes
//!   fast cannot run far past the limit between two checks;
//! - no signal or control channel to the shim: a reopen signal sent to a shim started by an
//!   older binary (no handler) would kill it, and a pid file can be stale.
//!
//! The shim compresses in a forked child, so the container's output keeps flowing while a
//! 10 MiB file is gzipped. A limit change applies to containers started after it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The timestamp suffix of a rotated file (upstream's `20060102-150405`).
pub const TIMESTAMP_FORMAT: &str = "%Y%m%d-%H%M%S";
pub const COMPRESS_SUFFIX: &str = ".gz";
pub const TMP_SUFFIX: &str = ".tmp";

/// When to rotate and how many files to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate once the file has this many bytes (never when 0).
    pub max_size: u64,
    /// Files kept, the current one included (at least 2).
    pub max_files: u32,
}

impl Policy {
    pub fn enabled(&self) -> bool {
        self.max_size > 0
    }
}

/// The rotated files of `log` (`<log>.*`), sorted oldest first (the stamps sort as text), and
/// the leftovers to remove: temporary files of an interrupted compression, and plain files
/// whose `.gz` exists (compressed but not yet removed). Upstream's `filterUnusedLogs`.
pub fn rotated_files(log: &Path) -> io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut all: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) {
            all.push(file);
        }
    }
    all.sort();
    let (mut in_use, mut unused) = (Vec::new(), Vec::new());
    for file in &all {
        let leftover = file.ends_with(TMP_SUFFIX)
            || (!file.ends_with(COMPRESS_SUFFIX)
                && all.contains(&format!("{file}{COMPRESS_SUFFIX}")));
        let path = dir.join(file);
        if leftover {
            unused.push(path);
        } else {
            in_use.push(path);
        }
    }
    Ok((in_use, unused))
}

/// The file `log` is renamed to when rotated at `now`.
pub fn rotated_name(log: &Path, now: jiff::Timestamp) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".");
    name.push(now.strftime(TIMESTAMP_FORMAT).to_string());
    PathBuf::from(name)
}

/// Rotates `log`: removes leftovers and the oldest rotated files so that `max_files - 2`
/// remain, then renames `log` to `<log>.<stamp>`. The caller opens a new `log`. Returns the
/// rotated files still to compress (every plain one but the newest), or None when a file of
/// this second exists already (a second rotation within one second waits for the next).
pub fn rotate(
    log: &Path,
    policy: Policy,
    now: jiff::Timestamp,
) -> io::Result<Option<Vec<PathBuf>>> {
    let target = rotated_name(log, now);
    let mut compressed = target.clone().into_os_string();
    compressed.push(COMPRESS_SUFFIX);
    if target.exists() || Path::new(&compressed).exists() {
        return Ok(None);
    }
    let (in_use, unused) = rotated_files(log)?;
    for file in unused {
        remove(&file)?;
    }
    let keep = policy.max_files.saturating_sub(2) as usize;
    let excess = in_use.len().saturating_sub(keep);
    for file in &in_use[..excess] {
        remove(file)?;
    }
    fs::rename(log, &target)?;
    let to_compress = in_use[excess..]
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with(COMPRESS_SUFFIX))
        .cloned()
        .collect();
    Ok(Some(to_compress))
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Gzips `path` into `<path>.gz` (through `<path>.gz.tmp`, so a reader never sees half a
/// file), then removes `path`. A file removed meanwhile (pruned by a later rotation) is no
/// error.
pub fn compress(path: &Path) -> io::Result<()> {
    use std::io::Write;
    let mut input = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut done = path.as_os_str().to_owned();
    done.push(COMPRESS_SUFFIX);
    let done = PathBuf::from(done);
    let mut tmp = done.clone().into_os_string();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let output = fs::File::create(&tmp)?;
        if let Ok(meta) = input.metadata() {
            let _ = output.set_permissions(meta.permissions());
        }
        let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
        io::copy(&mut input, &mut encoder)?;
        let mut output = encoder.finish()?;
        output.flush()?;
        fs::rename(&tmp, &done)?;
        remove(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotated_name_is_upstreams_stamp() {
        assert_eq!(
            rotated_name(
                Path::new("/var/log/pods/ns_p_u/c/0.log"),
                at("2025-01-02T03:04:05.9Z")
            ),
            PathBuf::from("/var/log/pods/ns_p_u/c/0.log.20250102-030405")
        );
    }

    #[test]
    fn rotations_keep_max_files_newest_plain_older_gzipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        // Another container's files in the same directory are not ours.
        fs::write(dir.path().join("1.log"), "other\n").unwrap();
        fs::write(dir.path().join("0.logx"), "other\n").unwrap();
        let policy = Policy {
            max_size: 10,
            max_files: 4,
        };
        for (i, stamp) in [
            "2025-01-02T03:04:01Z",
            "2025-01-02T03:04:02Z",
            "2025-01-02T03:04:03Z",
            "2025-01-02T03:04:04Z",
            "2025-01-02T03:04:05Z",
        ]
        .iter()
        .enumerate()
        {
            fs::write(&log, format!("line {i}\n")).unwrap();
            let to_compress = rotate(&log, policy, at(stamp)).unwrap().unwrap();
            for f in to_compress {
                compress(&f).unwrap();
            }
            assert!(!log.exists());
        }
        fs::write(&log, "current\n").unwrap();
        // max_files 4: the current file, the newest rotated plain, two older gzipped.
        assert_eq!(
            names(dir.path()),
            [
                "0.log",
                "0.log.20250102-030403.gz",
                "0.log.20250102-030404.gz",
                "0.log.20250102-030405",
                "0.logx",
                "1.log",
            ]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("0.log.20250102-030405")).unwrap(),
            "line 4\n"
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(
            fs::File::open(dir.path().join("0.log.20250102-030403.gz")).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        assert_eq!(text, "line 2\n");
        let (in_use, unused) = rotated_files(&log).unwrap();
        assert!(unused.is_empty());
        let in_use: Vec<String> = in_use
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            in_use,
            [
                "0.log.20250102-030403.gz",
                "0.log.20250102-030404.gz",
                "0.log.20250102-030405"
            ],
            "oldest first"
        );
    }

    #[test]
    fn two_files_keep_only_the_last_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let policy = Policy {
            max_size: 1,
            max_files: 2,
        };
        for stamp in ["2025-01-02T03:04:01Z", "2025-01-02T03:04:02Z"] {
            fs::write(&log, stamp).unwrap();
            let to_compress = rotate(&log, policy, at(stamp)).unwrap().unwrap();
            assert!(to_compress.is_empty());
        }
        assert_eq!(names(dir.path()), ["0.log.20250102-030402"]);
    }

    #[test]
    fn a_second_rotation_in_the_same_second_waits() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let policy = Policy {
            max_size: 1,
            max_files: 5,
        };
        fs::write(&log, "a\n").unwrap();
        assert!(rotate(&log, policy, at("2025-01-02T03:04:05.1Z"))
            .unwrap()
            .is_some());
        fs::write(&log, "b\n").unwrap();
        assert!(rotate(&log, policy, at("2025-01-02T03:04:05.7Z"))
            .unwrap()
            .is_none());
        assert_eq!(fs::read_to_string(&log).unwrap(), "b\n", "left in place");
        assert_eq!(
            fs::read_to_string(dir.path().join("0.log.20250102-030405")).unwrap(),
            "a\n"
        );
    }

    #[test]
    fn leftovers_of_an_interrupted_compression_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        for f in [
            "0.log.20250102-030401",
            "0.log.20250102-030401.gz",
            "0.log.20250102-030402.gz.tmp",
            "0.log.20250102-030402",
        ] {
            fs::write(dir.path().join(f), "x").unwrap();
        }
        fs::write(&log, "now\n").unwrap();
        let policy = Policy {
            max_size: 1,
            max_files: 5,
        };
        let to_compress = rotate(&log, policy, at("2025-01-02T03:04:03Z"))
            .unwrap()
            .unwrap();
        assert_eq!(
            to_compress,
            [dir.path().join("0.log.20250102-030402")],
            "the plain one whose .gz exists is a leftover, not a file to compress"
        );
        assert_eq!(
            names(dir.path()),
            [
                "0.log.20250102-030401.gz",
                "0.log.20250102-030402",
                "0.log.20250102-030403"
            ]
        );
        // A file pruned while its compression was pending is no error.
        compress(&dir.path().join("0.log.20250102-030409")).unwrap();
    }
}
