//! The real etcdctl 3.4 (Debian's etcd-client), unchanged, against `skiff store`. Every command
//! is given the endpoint as users and kube-apiserver write it, `http://127.0.0.1:PORT`: etcdctl
//! then sends the scheme inside the HTTP/2 `:authority` of its Maintenance calls (the store's
//! `authority` layer takes it); the maintenance test also runs them without the scheme.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::StoreProcess;

const ETCDCTL: &str = "/usr/bin/etcdctl";

struct Ctl {
    endpoint: String,
}

impl Ctl {
    fn new(store: &StoreProcess) -> Ctl {
        assert!(
            std::path::Path::new(ETCDCTL).exists(),
            "{ETCDCTL} is missing: install Debian's etcd-client (scripts/test.sh does)"
        );
        assert!(store.endpoint.starts_with("http://"), "{}", store.endpoint);
        Ctl {
            endpoint: store.endpoint.clone(),
        }
    }

    /// The same store named without a scheme (`127.0.0.1:PORT`), the other form etcdctl takes.
    fn without_scheme(&self) -> Ctl {
        Ctl {
            endpoint: self.endpoint.trim_start_matches("http://").to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ETCDCTL);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .args(args);
        cmd
    }

    /// Runs etcdctl; returns stdout, failing the test on a non-zero exit.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(!out.status.success(), "etcdctl {args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn with_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `etcdctl watch ...`, collects `lines` output lines, then kills it (by pid).
    fn watch_lines(&self, args: &[&str], lines: usize, during: impl FnOnce()) -> Vec<String> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        during();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < lines {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => out.push(line),
                Err(_) => break,
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        out
    }
}

#[test]
fn etcdctl_kv_txn_watch_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let ctl = Ctl::new(&store);
    assert_eq!(ctl.ok(&["put", "foo", "bar"]).trim(), "OK");
    assert_eq!(ctl.ok(&["get", "foo"]), "foo\nbar\n");
    ctl.ok(&["put", "foo", "baz"]);
    ctl.ok(&["put", "fox", "1"]);
    assert_eq!(
        ctl.ok(&["get", "--prefix", "fo", "--keys-only"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["foo", "fox"]
    );
    assert_eq!(ctl.ok(&["get", "foo", "--rev=2"]), "foo\nbar\n");
    let json = ctl.ok(&["get", "foo", "-w", "json"]);
    for field in [
        "\"cluster_id\"",
        "\"member_id\"",
        "\"revision\":4",
        "\"create_revision\":2",
        "\"mod_revision\":3",
        "\"version\":2",
        "\"count\":1",
    ] {
        assert!(json.contains(field), "{field} missing in {json}");
    }
    assert_eq!(ctl.ok(&["del", "fox"]).trim(), "1");
    assert_eq!(ctl.ok(&["get", "fox"]), "");

    let txn = ctl.with_stdin(
        &["txn"],
        "value(\"foo\") = \"baz\"\n\nput result yes\n\nput result no\n\n",
    );
    assert!(txn.starts_with("SUCCESS"), "{txn}");
    assert_eq!(
        ctl.ok(&["get", "result", "--print-value-only"]).trim(),
        "yes"
    );
    let txn = ctl.with_stdin(
        &["txn"],
        "mod(\"foo\") = \"1\"\n\nput result yes\n\nput result no\n\n",
    );
    assert!(txn.starts_with("FAILURE"), "{txn}");
    assert_eq!(
        ctl.ok(&["get", "result", "--print-value-only"]).trim(),
        "no"
    );

    // Live watch with prev-kv, and a watch replaying history from --rev.
    let lines = ctl.watch_lines(&["watch", "--prefix", "w", "--prev-kv"], 7, || {
        ctl.ok(&["put", "w1", "a"]);
        ctl.ok(&["put", "w1", "b"]);
    });
    assert_eq!(lines, ["PUT", "w1", "a", "PUT", "w1", "a", "w1"]);
    let rev: i64 = {
        let json = ctl.ok(&["get", "w1", "-w", "json"]);
        let at = json.find("\"mod_revision\":").unwrap() + 15;
        json[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let history = ctl.watch_lines(&["watch", "w1", &format!("--rev={}", rev - 1)], 6, || {});
    assert_eq!(history, ["PUT", "w1", "a", "PUT", "w1", "b"]);

    let out = ctl.ok(&["compaction", &rev.to_string()]);
    assert!(out.contains(&format!("compacted revision {rev}")), "{out}");
    let err = ctl.fails(&["get", "foo", "--rev=2"]);
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
}

#[test]
fn etcdctl_leases() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let ctl = Ctl::new(&store);
    let granted = ctl.ok(&["lease", "grant", "60"]);
    // "lease 694d77aa9e38260f granted with TTL(60s)"
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    assert!(granted.contains("TTL(60s)"), "{granted}");
    ctl.ok(&["put", "--lease", &id, "leased", "v"]);
    let ttl = ctl.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );
    let list = ctl.ok(&["lease", "list"]);
    assert!(
        list.contains("found 1 leases") && list.contains(&id),
        "{list}"
    );
    let kept = ctl.ok(&["lease", "keep-alive", "--once", &id]);
    assert!(kept.contains("keepalived with TTL(60)"), "{kept}");
    let revoked = ctl.ok(&["lease", "revoke", &id]);
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(ctl.ok(&["get", "leased"]), "");
    let gone = ctl.ok(&["lease", "timetolive", &id]);
    assert!(gone.contains("already expired"), "{gone}");
}

#[test]
fn etcdctl_maintenance_snapshot_and_members() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let ctl = Ctl::new(&store);
    for i in 0..50 {
        ctl.ok(&["put", &format!("snap/{i}"), &format!("value-{i}")]);
    }
    let status = ctl.ok(&["endpoint", "status", "-w", "json"]);
    assert!(
        status.contains("\"version\":\"3.4.0\"") && status.contains("\"dbSize\""),
        "{status}"
    );
    let health = ctl.command(&["endpoint", "health"]).output().unwrap();
    assert!(health.status.success());
    assert!(String::from_utf8_lossy(&health.stderr).contains("is healthy"));
    // The Maintenance calls etcdctl makes on a connection of its own per endpoint: with and
    // without the scheme, the same answers (with it, h2 used to reset them: PROTOCOL_ERROR).
    let bare = ctl.without_scheme();
    let hash = |c: &Ctl| {
        let out = c.ok(&["endpoint", "hashkv", "-w", "json"]);
        let at = out.find("\"hash\":").unwrap_or_else(|| panic!("{out}"));
        out[at..].split([',', '}']).next().unwrap().to_string()
    };
    assert_eq!(hash(&ctl), hash(&bare));
    for c in [&ctl, &bare] {
        let table = c.ok(&["endpoint", "status"]);
        assert!(table.contains(&format!("{}, ", c.endpoint)), "{table}");
        assert!(table.contains(", 3.4.0, "), "{table}");
        assert_eq!(c.ok(&["alarm", "list"]), "");
        let defrag = c.ok(&["defrag"]);
        assert!(
            defrag.contains("Finished defragmenting etcd member"),
            "{defrag}"
        );
    }
    let members = ctl.ok(&["member", "list"]);
    assert!(
        members.contains("started, default") && members.contains(&store.endpoint),
        "{members}"
    );

    // etcdctl snapshot save (checks size % 512 == 32), then skiff store restore.
    let file = dir.path().join("backup.db");
    let saved = ctl
        .command(&["snapshot", "save", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let target = dir.path().join("restored");
    let out = common::restore(&file, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = StoreProcess::start(&target);
    let rctl = Ctl::new(&restored);
    assert_eq!(
        rctl.ok(&["get", "--prefix", "snap/"]),
        ctl.ok(&["get", "--prefix", "snap/"])
    );
    assert_eq!(
        rctl.ok(&["get", "snap/7", "-w", "json"])
            .split("\"kvs\"")
            .nth(1),
        ctl.ok(&["get", "snap/7", "-w", "json"])
            .split("\"kvs\"")
            .nth(1)
    );
}

/// etcdctl over the store's Unix socket (`unix://PATH`, as with etcd), which `skiff server`'s
/// API server uses to reach its embedded store; grpc-go sends the socket's path as the HTTP/2
/// authority there, which the store's authority layer takes too.
#[test]
fn etcdctl_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("store.sock");
    let store = StoreProcess::start_with_socket(&dir.path().join("data"), &socket);
    let tcp = Ctl::new(&store);
    let unix = Ctl {
        endpoint: format!("unix://{}", socket.display()),
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only root may use the socket");
    unix.ok(&["put", "over", "the-socket"]);
    assert_eq!(
        tcp.ok(&["get", "over", "--print-value-only"]),
        "the-socket\n"
    );
    tcp.ok(&["put", "over", "tcp"]);
    assert_eq!(unix.ok(&["get", "over", "--print-value-only"]), "tcp\n");
    let status = unix.ok(&["endpoint", "status"]);
    assert!(status.contains(", 3.4.0, "), "{status}");
    let members = unix.ok(&["member", "list"]);
    assert!(
        members.contains(&format!("unix://{}", socket.display())),
        "{members}"
    );
    // A clean stop removes the socket.
    let pid = store.child.id() as i32;
    // SAFETY: signalling the child this test started, by its pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!socket.exists(), "the socket outlived the store");
}

/// The `kvs` part of `etcdctl get -w json` (the header names the member, which differs).
fn kvs(ctl: &Ctl, args: &[&str]) -> String {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-w", "json"]);
    let out = ctl.ok(&full);
    out.split("\"kvs\"")
        .nth(1)
        .unwrap_or("(no kvs)")
        .to_string()
}

fn revision(ctl: &Ctl) -> i64 {
    let out = ctl.ok(&["get", "nothing-here", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

/// Backups cross between skiff and etcd in both directions. `etcdctl snapshot save` from skiff
/// gives etcd's format (a bbolt database and its sha256): `etcdctl snapshot status` reads it and
/// `etcdctl snapshot restore` makes a real etcd member of it with the same keys, revisions,
/// history, compaction and leases; a snapshot of real etcd restores a skiff store the same way.
#[test]
fn snapshots_cross_between_skiff_and_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(&dir.path().join("skiff"));
    let ctl = Ctl::new(&store);
    for i in 0..40 {
        ctl.ok(&["put", &format!("x/{}", i % 10), &format!("v{i}")]);
    }
    let compact_at = revision(&ctl) - 15;
    ctl.with_stdin(&["txn"], "\n\nput x/a one\nput x/b two\n\n");
    let before_delete = revision(&ctl);
    ctl.ok(&["del", "x/3"]);
    let lease = ctl.ok(&["lease", "grant", "600"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    ctl.ok(&["put", "x/leased", "l", &format!("--lease={lease}")]);
    ctl.ok(&["compact", &compact_at.to_string()]);
    let head = revision(&ctl);

    let file = dir.path().join("skiff.db");
    ctl.ok(&["snapshot", "save", file.to_str().unwrap()]);
    let status: serde_json::Value = serde_json::from_str(&ctl.ok(&[
        "snapshot",
        "status",
        file.to_str().unwrap(),
        "-w",
        "json",
    ]))
    .unwrap();
    assert_eq!(status["revision"].as_i64(), Some(head), "{status}");

    // skiff's backup → a real etcd member.
    let peer = common::free_port();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let etcd_dir = tempfile::tempdir().unwrap();
    let data = etcd_dir.path().join("etcd");
    ctl.ok(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--name",
        "default",
        "--initial-cluster",
        &format!("default={peer_url}"),
        "--initial-advertise-peer-urls",
        &peer_url,
    ]);
    let etcd = common::EtcdProcess::start_on(etcd_dir, &data, peer);
    let ectl = Ctl {
        endpoint: etcd.endpoint.clone(),
    };
    assert_eq!(revision(&ectl), head);
    assert_eq!(
        kvs(&ectl, &["--prefix", "x/"]),
        kvs(&ctl, &["--prefix", "x/"])
    );
    let old = before_delete.to_string();
    assert_eq!(
        kvs(&ectl, &["x/3", "--rev", &old]),
        kvs(&ctl, &["x/3", "--rev", &old])
    );
    assert!(kvs(&ectl, &["x/3", "--rev", &old]).contains("\"mod_revision\""));
    let compacted = (compact_at - 1).to_string();
    assert!(ectl
        .fails(&["get", "x/1", "--rev", &compacted])
        .contains("required revision has been compacted"));
    assert!(ectl.ok(&["lease", "list"]).contains(&lease));

    // etcd goes on, then its backup → a skiff store.
    for i in 0..10 {
        ectl.ok(&["put", &format!("y/{i}"), &format!("w{i}")]);
    }
    ectl.ok(&["del", "x/a"]);
    let etcd_file = dir.path().join("etcd.db");
    ectl.ok(&["snapshot", "save", etcd_file.to_str().unwrap()]);
    let target = dir.path().join("from-etcd");
    let out = common::restore(&etcd_file, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = StoreProcess::start(&target);
    let rctl = Ctl::new(&restored);
    assert_eq!(revision(&rctl), revision(&ectl));
    assert_eq!(kvs(&rctl, &["--prefix", ""]), kvs(&ectl, &["--prefix", ""]));
    assert_eq!(
        kvs(&rctl, &["x/a", "--rev", &head.to_string()]),
        kvs(&ectl, &["x/a", "--rev", &head.to_string()])
    );
    assert!(rctl.ok(&["lease", "list"]).contains(&lease));

    // A damaged backup is refused before anything is written.
    let mut bytes = std::fs::read(&etcd_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, &bytes).unwrap();
    let bad_target = dir.path().join("from-bad");
    let out = common::restore(&bad, &bad_target);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sha256 mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bad_target.join("member").exists());
}
