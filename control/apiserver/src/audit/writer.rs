//! The log backend: events go through a bounded queue to one writer thread, which turns their
//! bodies into JSON, formats each as one line and appends it to `--audit-log-path` (or stdout),
//! rotating the file as upstream's lumberjack logger does.
//!
//! Upstream's log backend has three modes. `blocking` (its default for the log) writes each
//! event from the request's own goroutine, so a slow disk slows every audited request;
//! `blocking-strict` also fails a request whose RequestReceived event could not be written;
//! `batch` puts events in a buffer of `--audit-log-batch-buffer-size` (10000) that a
//! background goroutine drains, and drops an event when the buffer is full (counted in
//! `apiserver_audit_error_total{plugin="buffered"}`). skiff always works as `batch`: a request
//! never waits for the disk, and a full queue drops the event and counts it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use super::event::Event;
use super::Counters;

/// `--audit-log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Legacy,
}

const MEGABYTE: u64 = 1024 * 1024;

/// lumberjack's backup time stamp, `2006-01-02T15-04-05.000` in UTC.
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";

/// Where lines go.
pub enum Output {
    Stdout,
    /// `--audit-log-maxsize 0`: one file, never rotated.
    File(File),
    Rotating(RotatingFile),
}

impl Output {
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Output::File(f) => f.write_all(line),
            Output::Rotating(r) => r.write_line(line),
        }
    }
}

/// A log file rotated by size, as lumberjack v2 does: once a write would take the file past
/// `max_bytes` it is renamed to `<name>-<UTC time stamp><ext>` (`audit-2026-03-01T10-20-30.123.log`)
/// and a new one started; backups beyond `max_backups` (0: no limit) or older than `max_age_days`
/// (0: no limit) are removed, and with `compress` the others are gzipped.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    max_age_days: u64,
    compress: bool,
    file: Option<File>,
    size: u64,
    /// The clock backup names are made from (tests set it).
    now: Box<dyn FnMut() -> jiff::Timestamp + Send>,
    /// Removal and compression of old backups run on their own thread, as lumberjack's `mill`
    /// goroutine (None: in line, for tests).
    mill: Option<SyncSender<()>>,
}

impl RotatingFile {
    pub fn new(
        path: &Path,
        max_size_mb: u64,
        max_backups: usize,
        max_age_days: u64,
        compress: bool,
    ) -> RotatingFile {
        let mut r = RotatingFile::with_max_bytes(
            path,
            max_size_mb * MEGABYTE,
            max_backups,
            max_age_days,
            compress,
        );
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let config = r.mill_config();
        let spawned = std::thread::Builder::new()
            .name("audit-log-mill".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = config.run() {
                        tracing::warn!("audit log: removing or compressing old backups: {e}");
                    }
                }
            });
        if spawned.is_ok() {
            r.mill = Some(tx);
        }
        r
    }

    /// A rotating file whose limit is in bytes, milling in line (tests).
    pub fn with_max_bytes(
        path: &Path,
        max_bytes: u64,
        max_backups: usize,
        max_age_days: u64,
        compress: bool,
    ) -> RotatingFile {
        RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            max_backups,
            max_age_days,
            compress,
            file: None,
            size: 0,
            now: Box::new(jiff::Timestamp::now),
            mill: None,
        }
    }

    #[cfg(test)]
    fn set_clock(&mut self, now: impl FnMut() -> jiff::Timestamp + Send + 'static) {
        self.now = Box::new(now);
    }

    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if len > self.max_bytes {
            return Err(io::Error::other(format!(
                "write length {len} exceeds maximum file size {}",
                self.max_bytes
            )));
        }
        if self.file.is_none() {
            self.open_existing_or_new(len)?;
        }
        if self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no log file"))?;
        file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    fn open_existing_or_new(&mut self, len: u64) -> io::Result<()> {
        self.mill();
        let size = match fs::metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.open_new(),
            Err(e) => {
                return Err(io::Error::other(format!(
                    "error getting log file info: {e}"
                )))
            }
            Ok(m) => m.len(),
        };
        if size + len >= self.max_bytes {
            return self.rotate();
        }
        match OpenOptions::new().append(true).open(&self.path) {
            Ok(f) => {
                self.file = Some(f);
                self.size = size;
                Ok(())
            }
            Err(_) => self.open_new(),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.open_new()?;
        self.mill();
        Ok(())
    }

    fn open_new(&mut self) -> io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|e| {
            io::Error::other(format!("can't make directories for new logfile: {e}"))
        })?;
        let mut mode = 0o600;
        if let Ok(meta) = fs::metadata(&self.path) {
            mode = meta.permissions().mode() & 0o7777;
            let now = (self.now)();
            let backup = self.backup_name(now);
            fs::rename(&self.path, &backup)
                .map_err(|e| io::Error::other(format!("can't rename log file: {e}")))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(&self.path)
            .map_err(|e| io::Error::other(format!("can't open new logfile: {e}")))?;
        self.file = Some(file);
        self.size = 0;
        Ok(())
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn prefix_and_ext(&self) -> (String, String) {
        prefix_and_ext(&self.path)
    }

    fn backup_name(&self, t: jiff::Timestamp) -> PathBuf {
        let (prefix, ext) = self.prefix_and_ext();
        let stamp = t.strftime(BACKUP_TIME_FORMAT);
        self.dir().join(format!("{prefix}-{stamp}{ext}"))
    }

    fn mill_config(&self) -> MillConfig {
        let (prefix, ext) = self.prefix_and_ext();
        MillConfig {
            dir: self.dir(),
            prefix,
            ext,
            max_backups: self.max_backups,
            max_age_days: self.max_age_days,
            compress: self.compress,
        }
    }

    fn mill(&mut self) {
        if self.max_backups == 0 && self.max_age_days == 0 && !self.compress {
            return;
        }
        match &self.mill {
            Some(tx) => {
                let _ = tx.try_send(());
            }
            None => {
                if let Err(e) = self.mill_config().run() {
                    tracing::warn!("audit log: removing or compressing old backups: {e}");
                }
            }
        }
    }
}

/// `audit.log` → (`audit`, `.log`).
fn prefix_and_ext(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) if i > 0 => (name[..i].to_string(), name[i..].to_string()),
        _ => (name, String::new()),
    }
}

struct MillConfig {
    dir: PathBuf,
    prefix: String,
    ext: String,
    max_backups: usize,
    max_age_days: u64,
    compress: bool,
}

const COMPRESS_SUFFIX: &str = ".gz";

impl MillConfig {
    /// The backups in the directory, newest first.
    fn backups(&self) -> io::Result<Vec<(jiff::Timestamp, String)>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(true) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&format!("{}-", self.prefix)) else {
                continue;
            };
            let stamp = rest
                .strip_suffix(&format!("{}{COMPRESS_SUFFIX}", self.ext))
                .or_else(|| rest.strip_suffix(self.ext.as_str()));
            let Some(stamp) = stamp else { continue };
            let Ok(t) = jiff::civil::DateTime::strptime(BACKUP_TIME_FORMAT, stamp) else {
                continue;
            };
            let Ok(t) = t.to_zoned(jiff::tz::TimeZone::UTC) else {
                continue;
            };
            found.push((t.timestamp(), name));
        }
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        Ok(found)
    }

    fn run(&self) -> io::Result<()> {
        if self.max_backups == 0 && self.max_age_days == 0 && !self.compress {
            return Ok(());
        }
        let mut files = self.backups()?;
        let mut remove = Vec::new();
        if self.max_backups > 0 && self.max_backups < files.len() {
            // A backup and its compressed copy count once.
            let mut preserved: Vec<String> = Vec::new();
            let mut remaining = Vec::new();
            for f in files {
                let base =
                    f.1.strip_suffix(COMPRESS_SUFFIX)
                        .unwrap_or(&f.1)
                        .to_string();
                if !preserved.contains(&base) {
                    preserved.push(base);
                }
                if preserved.len() > self.max_backups {
                    remove.push(f);
                } else {
                    remaining.push(f);
                }
            }
            files = remaining;
        }
        if self.max_age_days > 0 {
            let cutoff = jiff::Timestamp::now()
                - jiff::SignedDuration::from_hours(24 * self.max_age_days as i64);
            let (old, kept): (Vec<_>, Vec<_>) = files.into_iter().partition(|f| f.0 < cutoff);
            remove.extend(old);
            files = kept;
        }
        let mut result = Ok(());
        for (_, name) in &remove {
            if let Err(e) = fs::remove_file(self.dir.join(name)) {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if self.compress {
            for (_, name) in files.iter().filter(|f| !f.1.ends_with(COMPRESS_SUFFIX)) {
                let src = self.dir.join(name);
                let dst = self.dir.join(format!("{name}{COMPRESS_SUFFIX}"));
                if let Err(e) = compress_file(&src, &dst) {
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }
}

fn compress_file(src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut input = File::open(src)?;
    let mode = input.metadata()?.permissions().mode() & 0o7777;
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(dst)?;
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let copied = io::copy(&mut input, &mut gz).and_then(|_| gz.finish().map(|_| ()));
    if let Err(e) = copied {
        let _ = fs::remove_file(dst);
        return Err(e);
    }
    fs::remove_file(src)
}

/// What the writer thread is sent.
pub(crate) enum Msg {
    Event(Box<Event>),
    /// Answer once everything queued before is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The queue to the writer thread.
#[derive(Clone)]
pub struct Sink {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
}

impl Sink {
    /// Starts the writer thread with a queue of `buffer` events.
    pub fn start(
        output: Output,
        format: Format,
        buffer: usize,
        counters: Arc<Counters>,
    ) -> io::Result<Sink> {
        let (tx, rx) = mpsc::sync_channel(buffer.max(1));
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_events(rx, output, format, &thread_counters))?;
        Ok(Sink { tx, counters })
    }

    /// A sink whose queue the caller reads (tests).
    #[cfg(test)]
    pub(crate) fn for_tests(buffer: usize, counters: Arc<Counters>) -> (Sink, Receiver<Msg>) {
        let (tx, rx) = mpsc::sync_channel(buffer);
        (Sink { tx, counters }, rx)
    }

    /// Waits (up to `timeout`) until every event queued so far is written: on shutdown, as
    /// upstream's buffered backend drains its buffer. False if that took too long.
    pub async fn flush(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let (done, written) = tokio::sync::oneshot::channel();
        let mut msg = Msg::Flush(done);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
        tokio::time::timeout_at(deadline, written)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Queues an event; a full queue drops it (counted), never waits.
    pub fn process(&self, event: Event) {
        self.counters.events.fetch_add(1, Ordering::Relaxed);
        let audit_id = event.audit_id.clone();
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let before = self
                    .counters
                    .buffered_errors
                    .fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() || before == 0 {
                    tracing::warn!(
                        audit_id = %audit_id,
                        dropped = before + 1,
                        "audit buffer queue blocked: event dropped"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.log_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_events(rx: Receiver<Msg>, mut output: Output, format: Format, counters: &Counters) {
    let mut line = Vec::with_capacity(4096);
    let mut failing = false;
    while let Ok(msg) = rx.recv() {
        let mut event = match msg {
            Msg::Event(event) => event,
            Msg::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        line.clear();
        event.resolve_bodies();
        let encoded = match format {
            Format::Json => event.to_json_line(&mut line).map_err(io::Error::other),
            Format::Legacy => {
                event.to_legacy_line(&mut line);
                Ok(())
            }
        };
        match encoded.and_then(|()| output.write_line(&line)) {
            Ok(()) => failing = false,
            Err(e) => {
                counters.log_errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    tracing::warn!(audit_id = %event.audit_id, "writing the audit log: {e}");
                }
                failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A clock one second further on at each reading.
    fn ticking_clock() -> impl FnMut() -> jiff::Timestamp + Send {
        let mut t: jiff::Timestamp = "2026-03-01T10:00:00.250Z".parse().unwrap();
        move || {
            t += jiff::SignedDuration::from_secs(1);
            t
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let mut r = RotatingFile::with_max_bytes(&path, 25, 2, 0, false);
        r.set_clock(ticking_clock());
        for i in 0..4 {
            // Two 10-byte lines fit in 25 bytes, a third does not.
            r.write_line(format!("line-{i}-aa\n").as_bytes()).unwrap();
            r.write_line(format!("line-{i}-bb\n").as_bytes()).unwrap();
        }
        let logs = dir.path().join("logs");
        assert_eq!(
            files(&logs),
            vec![
                "audit-2026-03-01T10-00-02.250.log",
                "audit-2026-03-01T10-00-03.250.log",
                "audit.log"
            ]
        );
        assert_eq!(
            fs::read_to_string(logs.join("audit.log")).unwrap(),
            "line-3-aa\nline-3-bb\n"
        );
        assert_eq!(
            fs::read_to_string(logs.join("audit-2026-03-01T10-00-03.250.log")).unwrap(),
            "line-2-aa\nline-2-bb\n"
        );
        // Too long a line for any file.
        let err = r.write_line(&[b'x'; 26]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "write length 26 exceeds maximum file size 25"
        );
    }

    #[test]
    fn appends_to_an_existing_file_until_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.json");
        fs::write(&path, "0123456789\n").unwrap();
        let mut r = RotatingFile::with_max_bytes(&path, 30, 0, 0, false);
        r.set_clock(ticking_clock());
        r.write_line(b"abcdefghi\n").unwrap();
        assert_eq!(files(dir.path()), vec!["audit.json"]);
        // A reopened file that the write would fill is rotated first.
        let mut r = RotatingFile::with_max_bytes(&path, 30, 0, 0, false);
        r.set_clock(ticking_clock());
        r.write_line(b"0123456789\n").unwrap();
        assert_eq!(
            files(dir.path()),
            vec!["audit-2026-03-01T10-00-01.250.json", "audit.json"]
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "0123456789\n");
    }

    #[test]
    fn compresses_and_ages_out_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        // A backup from long ago goes with max age.
        fs::write(dir.path().join("audit-2001-01-01T00-00-00.000"), "old\n").unwrap();
        let mut r = RotatingFile::with_max_bytes(&path, 8, 0, 30, true);
        r.write_line(b"first\n").unwrap();
        r.write_line(b"second\n").unwrap();
        let names = files(dir.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(names[0], "audit");
        assert!(
            names[1].starts_with("audit-") && names[1].ends_with(".gz"),
            "{names:?}"
        );
        let mut text = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(dir.path().join(&names[1])).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "first\n");
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let counters = Arc::new(Counters::default());
        let (sink, rx) = Sink::for_tests(2, counters.clone());
        for _ in 0..5 {
            sink.process(Event::default());
        }
        let flushed = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(sink.flush(std::time::Duration::from_millis(50)));
        assert!(!flushed, "nobody drains the queue");
        assert_eq!(counters.events.load(Ordering::Relaxed), 5);
        assert_eq!(counters.buffered_errors.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[tokio::test]
    async fn the_writer_thread_writes_one_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let file = File::create(&path).unwrap();
        let counters = Arc::new(Counters::default());
        let sink = Sink::start(Output::File(file), Format::Json, 10, counters).unwrap();
        for i in 0..3 {
            sink.process(Event {
                audit_id: format!("id-{i}"),
                ..Default::default()
            });
        }
        assert!(sink.flush(std::time::Duration::from_secs(10)).await);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["auditID"], format!("id-{i}"));
            assert_eq!(v["kind"], "Event");
        }
    }
}
