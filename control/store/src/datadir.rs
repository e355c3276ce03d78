//! The data directory: layout, exclusive lock, identity, recovery and checkpoints.
//!
//! ```text
//! DIR/member/meta                 cluster and member ids (written once)
//! DIR/member/LOCK                 flock: one store per data dir
//! DIR/member/snap/<lsn>.snap      newest checkpoint (state through WAL record <lsn>)
//! DIR/member/wal/<lsn>.wal        WAL records after <lsn>
//! ```
//! A checkpoint starts a new WAL file at the captured record (the WAL goes on there at once),
//! writes the snapshot (temp file, fsync, rename, fsync dir) while writes continue, then removes
//! the files the snapshot covers. A crash at any step leaves a set of files from which recovery
//! rebuilds exactly the acknowledged state: it loads the newest snapshot and replays every WAL
//! record after it, across as many WAL files as there are.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::mvcc::Mvcc;
use crate::record::SnapshotState;
use crate::snapshot::{decode_any, decode_snapshot, encode_snapshot};
use crate::wal::decode_log;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("data dir {0} is in use by another store (lock held on member/LOCK)")]
    Locked(PathBuf),
    #[error("data dir is damaged: {0}. Restore it from a snapshot (skiff store restore) or move it aside")]
    Damaged(String),
    #[error("the snapshot cannot be restored: {0}. Nothing was written")]
    BadSnapshot(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
}

pub struct Recovered {
    pub mvcc: Mvcc,
    pub lsn: u64,
    pub identity: Identity,
    pub disk: Disk,
}

/// Open handle on the data dir: the WAL file being appended to and the lock.
pub struct Disk {
    member: PathBuf,
    wal: File,
    wal_path: PathBuf,
    /// Bytes in the current WAL file.
    wal_size: u64,
    /// Bytes in older WAL files the newest snapshot does not cover yet.
    older_wal_bytes: u64,
    snap_size: u64,
    _lock: File,
}

fn hex_name(lsn: u64, ext: &str) -> String {
    format!("{lsn:016x}.{ext}")
}

/// Files named `<16 hex digits>.<ext>` in `dir`, sorted by number.
fn numbered_files(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>, DataDirError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        match u64::from_str_radix(stem, 16) {
            Ok(n) if stem.len() == 16 => out.push((n, path)),
            _ => {
                return Err(DataDirError::Damaged(format!(
                    "unexpected file {}",
                    path.display()
                )))
            }
        }
    }
    out.sort();
    Ok(out)
}

fn fsync_dir(dir: &Path) -> Result<(), DataDirError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_durably(path: &Path, data: &[u8]) -> Result<(), DataDirError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    fsync_dir(path.parent().expect("file in a dir"))
}

/// Writes a snapshot file durably; returns its size.
pub fn write_snapshot(path: &Path, state: &SnapshotState) -> Result<u64, DataDirError> {
    let data = encode_snapshot(state);
    write_durably(path, &data)?;
    Ok(data.len() as u64)
}

fn lock(member: &Path) -> Result<File, DataDirError> {
    let path = member.join("LOCK");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(DataDirError::Locked(
            member.parent().unwrap_or(member).to_path_buf(),
        ));
    }
    Ok(f)
}

fn read_identity(member: &Path) -> Result<Identity, DataDirError> {
    let path = member.join("meta");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let mut cluster_id = None;
            let mut member_id = None;
            for line in text.lines() {
                let mut parts = line.split_whitespace();
                match (
                    parts.next(),
                    parts.next().map(|v| u64::from_str_radix(v, 16)),
                ) {
                    (Some("cluster_id"), Some(Ok(v))) => cluster_id = Some(v),
                    (Some("member_id"), Some(Ok(v))) => member_id = Some(v),
                    _ => {}
                }
            }
            match (cluster_id, member_id) {
                (Some(cluster_id), Some(member_id)) => Ok(Identity {
                    cluster_id,
                    member_id,
                }),
                _ => Err(DataDirError::Damaged(format!(
                    "{} lacks cluster_id or member_id",
                    path.display()
                ))),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let identity = Identity {
                cluster_id: rand::random::<u64>() >> 1,
                member_id: rand::random::<u64>() >> 1,
            };
            let text = format!(
                "cluster_id {:x}\nmember_id {:x}\n",
                identity.cluster_id, identity.member_id
            );
            write_durably(&path, text.as_bytes())?;
            Ok(identity)
        }
        Err(e) => Err(io_err(&path)(e)),
    }
}

impl Disk {
    /// Opens (creating if needed) the data dir and recovers the state.
    pub fn open(dir: &Path) -> Result<Recovered, DataDirError> {
        let member = dir.join("member");
        let snap_dir = member.join("snap");
        let wal_dir = member.join("wal");
        for d in [dir, &member, &snap_dir, &wal_dir] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let lock = lock(&member)?;
        let identity = read_identity(&member)?;

        // Leftover temp files are from a crash mid-checkpoint: never valid, safe to drop.
        for d in [&snap_dir, &member] {
            for entry in fs::read_dir(d).map_err(io_err(d))?.flatten() {
                if entry.path().extension().and_then(|e| e.to_str()) == Some("tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }

        let snaps = numbered_files(&snap_dir, "snap")?;
        let (mut mvcc, snap_lsn, snap_size) = match snaps.last() {
            Some((lsn, path)) => {
                let data = fs::read(path).map_err(io_err(path))?;
                let state = decode_snapshot(&data)
                    .map_err(|e| DataDirError::Damaged(format!("{}: {e}", path.display())))?;
                if state.lsn != *lsn {
                    return Err(DataDirError::Damaged(format!(
                        "{} holds record {} but is named for {lsn}",
                        path.display(),
                        state.lsn
                    )));
                }
                let mvcc = Mvcc::from_snapshot(state)
                    .map_err(|e| DataDirError::Damaged(format!("{}: {e}", path.display())))?;
                (mvcc, *lsn, data.len() as u64)
            }
            None => (Mvcc::new(), 0, 0),
        };

        let wals = numbered_files(&wal_dir, "wal")?;
        let mut lsn = snap_lsn;
        let mut last_valid = None;
        let mut older_wal_bytes = 0;
        for (i, (start, path)) in wals.iter().enumerate() {
            let data = fs::read(path).map_err(io_err(path))?;
            let is_last = i + 1 == wals.len();
            let log = decode_log(&data)
                .map_err(|e| DataDirError::Damaged(format!("{}: {e}", path.display())))?;
            if !is_last && log.valid_len != data.len() {
                return Err(DataDirError::Damaged(format!(
                    "{} is cut short but is not the newest WAL file",
                    path.display()
                )));
            }
            if *start > lsn {
                return Err(DataDirError::Damaged(format!(
                    "{} starts after record {start} but the state only reaches record {lsn}",
                    path.display()
                )));
            }
            for rec in &log.records {
                if rec.lsn <= lsn {
                    continue; // already in the snapshot
                }
                if rec.lsn != lsn + 1 {
                    return Err(DataDirError::Damaged(format!(
                        "{}: record {} follows record {lsn}",
                        path.display(),
                        rec.lsn
                    )));
                }
                mvcc.apply_record(rec)
                    .map_err(|e| DataDirError::Damaged(format!("{}: {e}", path.display())))?;
                lsn = rec.lsn;
            }
            if is_last {
                last_valid = Some((path.clone(), log.valid_len as u64, data.len() as u64));
            } else {
                older_wal_bytes += data.len() as u64;
            }
        }

        let (wal, wal_path, wal_size) = match last_valid {
            Some((path, valid, len)) => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                if valid != len {
                    tracing::warn!(
                        file = %path.display(),
                        cut = len - valid,
                        "cutting a torn write from the end of the WAL (a write that was never acknowledged)"
                    );
                    f.set_len(valid).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                }
                (f, path, valid)
            }
            None => {
                let path = wal_dir.join(hex_name(lsn, "wal"));
                let f = File::create(&path).map_err(io_err(&path))?;
                fsync_dir(&wal_dir)?;
                (f, path, 0)
            }
        };
        let mut disk = Disk {
            member,
            wal,
            wal_path,
            wal_size,
            older_wal_bytes,
            snap_size,
            _lock: lock,
        };
        disk.seek_end()?;
        Ok(Recovered {
            mvcc,
            lsn,
            identity,
            disk,
        })
    }

    fn seek_end(&mut self) -> Result<(), DataDirError> {
        use std::io::Seek;
        self.wal
            .seek(io::SeekFrom::Start(self.wal_size))
            .map(|_| ())
            .map_err(io_err(&self.wal_path))
    }

    /// Appends encoded records and makes them durable (`fdatasync`).
    pub fn append(&mut self, data: &[u8]) -> Result<(), DataDirError> {
        self.wal.write_all(data).map_err(io_err(&self.wal_path))?;
        self.wal.sync_data().map_err(io_err(&self.wal_path))?;
        self.wal_size += data.len() as u64;
        Ok(())
    }

    /// WAL bytes not yet covered by a snapshot (all WAL files).
    pub fn wal_size(&self) -> u64 {
        self.older_wal_bytes + self.wal_size
    }

    pub fn snap_size(&self) -> u64 {
        self.snap_size
    }

    /// Bytes on disk: newest snapshot plus the WAL.
    pub fn size(&self) -> u64 {
        self.wal_size() + self.snap_size
    }

    /// Starts a new WAL file for the records after `lsn` (every record up to `lsn` must already
    /// be appended). The old files stay until a snapshot at `lsn` covers them ([`Disk::retire`]).
    pub fn rotate(&mut self, lsn: u64) -> Result<(), DataDirError> {
        let wal_dir = self.member.join("wal");
        let wal_path = wal_dir.join(hex_name(lsn, "wal"));
        if wal_path == self.wal_path {
            return Ok(());
        }
        let wal = File::create(&wal_path).map_err(io_err(&wal_path))?;
        fsync_dir(&wal_dir)?;
        self.wal = wal;
        self.wal_path = wal_path;
        self.older_wal_bytes += self.wal_size;
        self.wal_size = 0;
        Ok(())
    }

    /// Where the snapshot of record `lsn` is written ([`write_snapshot`] needs no lock on the
    /// disk, so the WAL goes on meanwhile).
    pub fn snapshot_path(&self, lsn: u64) -> PathBuf {
        self.member.join("snap").join(hex_name(lsn, "snap"))
    }

    /// Removes the snapshots and WAL files that the durable snapshot of record `lsn` covers.
    pub fn retire(&mut self, lsn: u64, snap_size: u64) -> Result<(), DataDirError> {
        let snap_dir = self.member.join("snap");
        let wal_dir = self.member.join("wal");
        for (older, path) in numbered_files(&snap_dir, "snap")? {
            if older < lsn {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        let mut left = 0;
        for (start, path) in numbered_files(&wal_dir, "wal")? {
            if start < lsn {
                fs::remove_file(&path).map_err(io_err(&path))?;
            } else if path != self.wal_path {
                left += fs::metadata(&path).map_err(io_err(&path))?.len();
            }
        }
        self.older_wal_bytes = left;
        self.snap_size = snap_size;
        Ok(())
    }

    /// Writes `state` as the new checkpoint and starts an empty WAL after it, all at once (the
    /// caller holds off writes). Every record up to `state.lsn` must already be appended.
    pub fn checkpoint(&mut self, state: &SnapshotState) -> Result<(), DataDirError> {
        self.rotate(state.lsn)?;
        let size = write_snapshot(&self.snapshot_path(state.lsn), state)?;
        self.retire(state.lsn, size)
    }

    /// Writes a data dir from a snapshot file (`skiff store restore`). The target must not
    /// hold a store already.
    pub fn restore(snapshot: &[u8], dir: &Path) -> Result<SnapshotState, DataDirError> {
        let state = decode_any(snapshot).map_err(DataDirError::BadSnapshot)?;
        // Validate fully before writing anything.
        Mvcc::from_snapshot(state.clone()).map_err(DataDirError::BadSnapshot)?;
        let member = dir.join("member");
        if member.exists() {
            return Err(DataDirError::Io {
                path: member,
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a store already exists here; restore into a new --data-dir",
                ),
            });
        }
        let snap_dir = member.join("snap");
        let wal_dir = member.join("wal");
        for d in [&snap_dir, &wal_dir] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        write_snapshot(&snap_dir.join(hex_name(state.lsn, "snap")), &state)?;
        let wal_path = wal_dir.join(hex_name(state.lsn, "wal"));
        File::create(&wal_path).map_err(io_err(&wal_path))?;
        fsync_dir(&wal_dir)?;
        fsync_dir(&member)?;
        Ok(state)
    }
}
