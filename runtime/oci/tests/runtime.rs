//! End-to-end tests of the skiff-runtime binary against a busybox-static bundle.
//! Need root, /bin/busybox (Debian busybox-static) and, for nothing else, no network.
//! Every test uses its own --root and container ids and cleans up in a Drop guard.

use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_skiff-runtime");

fn skip() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 || !Path::new("/bin/busybox").exists() {
        println!("SKIP: needs root and /bin/busybox (apt-get install busybox-static)");
        return true;
    }
    false
}

/// Owns a temp dir holding the bundle and the --root; deletes every container it created,
/// its state dir and its cgroups on drop, also when the test panicked.
struct Env {
    dir: tempfile::TempDir,
    ids: Vec<String>,
    /// Runtime commands run inside this view of the host as a pure cgroup v2 machine.
    v2: Option<CgroupV2View>,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("bundle/rootfs");
        for sub in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
            fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        let env = Env {
            dir,
            ids: Vec::new(),
            v2: None,
        };
        let out = Command::new(BIN)
            .args(["spec", "--bundle"])
            .arg(env.bundle())
            .output()
            .unwrap();
        assert!(out.status.success(), "spec failed: {out:?}");
        env.edit_config(|c| {
            c["process"]["terminal"] = json!(false);
            c["process"]["args"] = json!(args);
            c["hostname"] = json!("skiff-test");
            c["root"]["readonly"] = json!(false);
        });
        env
    }

    /// The runtime binary, run inside the cgroup v2 view when there is one.
    fn cmd(&self) -> Command {
        match &self.v2 {
            Some(view) => view.command(),
            None => Command::new(BIN),
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.bundle().join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        edit(&mut config);
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    }

    /// The cgroup directories of container `id` (every controller).
    fn container_cgroups(&self, id: &str) -> Vec<PathBuf> {
        cgroup_dirs(&Path::new(&cgroup_parent(&self.root())).join(id))
    }

    /// A unique id, remembered for cleanup.
    fn id(&mut self, name: &str) -> String {
        let id = format!("skt-{name}-{}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    /// Runs a command with captured output; not for create/run -d (init would hold the pipe).
    fn rt(&self, args: &[&str]) -> Output {
        self.cmd()
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs with stdout/stderr sent to a file, for commands that leave a container behind.
    fn rt_detached(&self, args: &[&str]) -> (i32, String) {
        let log = self
            .dir
            .path()
            .join(format!("out-{}", args.join("-").replace('/', "_")));
        let file = fs::File::create(&log).unwrap();
        let status = self
            .cmd()
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap();
        (
            status.code().unwrap_or(-1),
            fs::read_to_string(&log).unwrap_or_default(),
        )
    }

    /// `exec --detach` of `args` in container `id`; returns the exec'd process's pid.
    fn exec_detached(&self, id: &str, args: &[&str]) -> i32 {
        let pid_file = self.dir.path().join(format!("exec-{id}.pid"));
        let mut cmd = vec![
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ];
        cmd.extend_from_slice(args);
        let (code, out) = self.rt_detached(&cmd);
        assert_eq!(code, 0, "{out}");
        fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn create(&self, id: &str) {
        let bundle = self.bundle();
        let (code, out) = self.rt_detached(&["create", "--bundle", bundle.to_str().unwrap(), id]);
        assert_eq!(code, 0, "create failed: {out}");
    }

    fn status(&self, id: &str) -> String {
        let out = self.rt(&["state", id]);
        assert!(out.status.success(), "state failed: {out:?}");
        let state: Value = serde_json::from_slice(&out.stdout).unwrap();
        state["status"].as_str().unwrap().to_string()
    }

    fn run(&mut self, name: &str) -> Output {
        let id = self.id(name);
        let bundle = self.bundle();
        self.rt(&["run", "--bundle", bundle.to_str().unwrap(), &id])
    }
}

/// The runtime's cgroup parent for a state root (mirrors `containers::cgroup_parent`).
fn cgroup_parent(root: &Path) -> String {
    let flat: String = root
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .collect();
    format!("skiff-runtime-{flat}")
}

/// Every cgroup directory named `name` under the v1 controllers and the v2 hierarchy.
fn cgroup_dirs(name: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for controller in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = controller.path().join(name);
        if dir.exists() {
            dirs.push(dir);
        }
    }
    dirs
}

/// This host seen as a pure cgroup v2 machine (what the Vagrant VMs run): a process holding a
/// mount namespace with the cgroup2 hierarchy mounted over /sys/fs/cgroup, where libcgroups
/// and skiff-runtime detect a unified layout. Runtime commands enter it with nsenter. On this
/// hybrid host the controllers are bound to v1, so v2 limits cannot be checked here; placement,
/// exec, the eBPF device filter and cleanup can. The cgroups it creates are the host's
/// /sys/fs/cgroup/unified ones, which `cgroup_dirs` finds and `Env`'s drop removes.
struct CgroupV2View {
    holder: std::process::Child,
}

impl CgroupV2View {
    /// `None` unless this host is hybrid (a cgroup2 hierarchy at /sys/fs/cgroup/unified).
    fn new() -> Option<CgroupV2View> {
        if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
            return None;
        }
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t cgroup2 none /sys/fs/cgroup && echo ready && exec sleep 600")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "cgroup2 view failed to start");
        Some(CgroupV2View { holder })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.holder.id().to_string(), "-m", "--", BIN]);
        cmd
    }
}

impl Drop for CgroupV2View {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt(&["delete", "--force", id]);
            let _ = fs::remove_dir_all(self.root().join(id));
            for dir in self.container_cgroups(id) {
                let _ = fs::remove_dir(dir);
            }
        }
        // The parent belongs to this test's state root alone.
        for dir in cgroup_dirs(Path::new(&cgroup_parent(&self.root()))) {
            let _ = fs::remove_dir(dir);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn run_prints_output_and_returns_exit_code() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sh", "-c", "echo hello from busybox; exit 7"]);
    let out = env.run("run");
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("hello from busybox"));
    let id = env.ids[0].clone();
    assert!(!env.root().join(&id).exists(), "state dir left behind");
    assert!(env.container_cgroups(&id).is_empty(), "cgroup left behind");
}

#[test]
fn run_with_dev_null_stdout_can_write() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sh", "-c", "echo discarded && echo discarded >&2"]);
    let id = env.id("null");
    let bundle = env.bundle();
    let status = Command::new(BIN)
        .arg("--root")
        .arg(env.root())
        .args(["run", "--bundle", bundle.to_str().unwrap(), &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn create_start_state_delete() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("life");
    env.create(&id);
    assert_eq!(env.status(&id), "created");
    let state: Value = serde_json::from_slice(&env.rt(&["state", &id]).stdout).unwrap();
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert_eq!(
        state["ociVersion"].as_str().unwrap().chars().next(),
        Some('1')
    );
    assert_eq!(
        state["bundle"].as_str().unwrap(),
        fs::canonicalize(env.bundle()).unwrap().to_str().unwrap()
    );
    assert!(env.rt(&["start", &id]).status.success());
    assert_eq!(env.status(&id), "running");
    let list = env.rt(&["list", "--format", "json"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    // Deleting a running container without --force is a state error.
    let out = env.rt(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not stopped"), "{}", text(&out));
    assert!(env.rt(&["delete", "--force", &id]).status.success());
    assert!(!env.root().join(&id).exists());
    assert!(env.container_cgroups(&id).is_empty());
    assert_eq!(env.rt(&["state", &id]).status.code(), Some(1));
}

#[test]
fn kill_default_sigterm_and_sigkill() {
    if skip() {
        return;
    }
    // A shell with a TERM trap shows the default signal is SIGTERM.
    let mut env = Env::new(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; touch /tmp/ready; while true; do sleep 0.1; done",
    ]);
    let id = env.id("kill");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    // The ready file says the trap is installed: a pid-1 shell ignores SIGTERM before that.
    let ready = env.bundle().join("rootfs/tmp/ready");
    for _ in 0..250 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready.exists(), "container never became ready");
    assert!(env.rt(&["kill", &id]).status.success());
    wait_for_status(&env, &id, "stopped");
    assert!(env.rt(&["delete", &id]).status.success());

    let id = env.id("kill9");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    assert!(env.rt(&["kill", "--all", &id, "KILL"]).status.success());
    wait_for_status(&env, &id, "stopped");
    // Killing a stopped container is an error.
    assert_eq!(env.rt(&["kill", &id, "9"]).status.code(), Some(1));
    assert!(env.rt(&["delete", &id]).status.success());
}

fn wait_for_status(env: &Env, id: &str, want: &str) {
    for _ in 0..200 {
        if env.status(id) == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("container {id} never reached {want}, is {}", env.status(id));
}

#[test]
fn exec_into_running_container() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("exec");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    let out = env.rt(&[
        "exec",
        "--env",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(hostname); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("hi /tmp skiff-test"), "{}", text(&out));
    // --process with a JSON process object.
    let process = env.dir.path().join("process.json");
    fs::write(&process, json!({"cwd": "/", "args": ["sh", "-c", "echo from-process-json"], "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}).to_string()).unwrap();
    let out = env.rt(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("from-process-json"));
    // An exec'd process joins the container's cgroups (not a new `:youki:<id>` one).
    let pid = env.exec_detached(&id, &["sleep", "2"]);
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = format!("{}/{id}", cgroup_parent(&env.root()));
    assert!(
        membership
            .lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&expected)),
        "exec'd process is not in {expected}: {membership}"
    );
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/:youki:{id}")).exists());
    // SAFETY: kill(2) on the pid this test's exec just started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while membership_of(pid).is_some() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // runc's table: ps -ef (or the given ps options) filtered to the container's processes.
    let table = text(&env.rt(&["ps", &id]));
    assert!(
        table.lines().next().unwrap_or_default().contains("PID"),
        "{table}"
    );
    assert!(table.contains("sleep 30"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    let custom = text(&env.rt(&["ps", &id, "-o", "pid,comm"]));
    assert!(
        custom.lines().any(|l| l.trim().ends_with("sleep")),
        "{custom}"
    );
    let ps = env.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert_eq!(pids.len(), 1, "exec'd processes should be gone: {pids:?}");
}

/// A live process's /proc/<pid>/cgroup (None once it has exited).
fn membership_of(pid: i32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie has left its cgroups.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    if state == "Z" {
        return None;
    }
    fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()
}

#[test]
fn pause_and_resume() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("pause");
    env.create(&id);
    // Pausing a created (not running) container is a state error.
    assert_eq!(env.rt(&["pause", &id]).status.code(), Some(1));
    assert!(env.rt(&["start", &id]).status.success());
    assert!(env.rt(&["pause", &id]).status.success());
    assert_eq!(env.status(&id), "paused");
    assert!(env.rt(&["resume", &id]).status.success());
    assert_eq!(env.status(&id), "running");
}

#[test]
fn events_stats_prints_one_sample() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("events");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    let out = env.rt(&["events", "--stats", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let event: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    // runc's field names (types.Stats), not libcgroups' own.
    assert!(
        event["data"]["memory"]["usage"]["limit"].is_u64(),
        "{event}"
    );
    assert!(
        event["data"]["memory"]["usage"]["usage"].as_u64() > Some(0),
        "{event}"
    );
    assert_eq!(event["data"]["pids"]["current"], 1, "{event}");
    assert!(
        event["data"]["cpu"]["usage"]["total"].as_u64() > Some(0),
        "{event}"
    );
    assert!(event["data"]["cpuset"]["cpus"].is_array(), "{event}");
    // update changes the pids limit of the running container.
    let out = env.rt(&["update", "--pids-limit", "42", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let parent = cgroup_parent(&env.root());
    let limit = fs::read_to_string(format!("/sys/fs/cgroup/pids/{parent}/{id}/pids.max"))
        .or_else(|_| fs::read_to_string(format!("/sys/fs/cgroup/{parent}/{id}/pids.max")))
        .unwrap();
    assert_eq!(limit.trim(), "42");
}

#[test]
fn isolation() {
    if skip() {
        return;
    }
    let script = "echo pid=$$; echo host=$(hostname); echo ifaces=$(tail -n +3 /proc/net/dev | wc -l); \
                  echo home=$HOME; \
                  echo kcore=$(head -c 16 /proc/kcore | wc -c); \
                  if hostname other 2>/dev/null; then echo sethost=ok; else echo sethost=denied; fi; \
                  if mkdir /tmp/newdir 2>/dev/null; then echo mkdir=ok; else echo mkdir=denied; fi";
    let mut env = Env::new(&["sh", "-c", script]);
    env.edit_config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = env.run("iso");
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    for expected in [
        "pid=1",
        "host=skiff-test",
        // No /etc/passwd in the image: runc's default.
        "home=/\n",
        "ifaces=1",
        "kcore=0",
        "sethost=denied",
        "mkdir=denied",
    ] {
        assert!(output.contains(expected), "missing {expected} in {output}");
    }
}

/// `SCMP_CMP_MASKED_EQ` means `(arg & value) == valueTwo`, as runc reads it and as docker's and
/// containerd's default profiles are written (their `clone` rule: no namespace flag set).
#[test]
fn seccomp_masked_equal_reads_like_runc() {
    if skip() {
        return;
    }
    // unshare(2) is refused when its flags, masked with NEWUSER|NEWNS, are exactly NEWUSER.
    let script = "if unshare -U true 2>/dev/null; then echo user=ok; else echo user=denied; fi; \
                  if unshare -U -m true 2>/dev/null; then echo user+mount=ok; else echo user+mount=denied; fi; \
                  /bin/true && echo fork=ok";
    let mut env = Env::new(&["sh", "-c", script]);
    env.edit_config(|c| {
        // As the kubelet writes it: no_new_privs off, no CAP_SYS_ADMIN in the container's
        // set (the filter must be loaded while the runtime still holds it).
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{
                "names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                "args": [{"index": 0, "value": 0x1002_0000u64, "valueTwo": 0x1000_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]
            }]
        });
    });
    let out = env.run("maskedeq");
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    for expected in ["user=denied", "user+mount=ok", "fork=ok"] {
        assert!(output.contains(expected), "missing {expected} in {output}");
    }
}

#[test]
fn memory_limit_oom_kills() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=64"]);
    env.edit_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=128m"]}));
        // swap = limit: tmpfs pages must not escape to swap.
        c["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    let out = env.run("oom");
    assert_eq!(out.status.code(), Some(137), "{}", text(&out));
}

#[test]
fn pids_limit_blocks_forks() {
    if skip() {
        return;
    }
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done; echo done";
    let mut env = Env::new(&["sh", "-c", script]);
    env.edit_config(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 4});
    });
    let out = env.run("pids");
    assert!(text(&out).contains("can't fork"), "{}", text(&out));
}

#[test]
fn bad_input_fails_cleanly() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let bundle = env.bundle();
    let bundle = bundle.to_str().unwrap().to_string();
    let config = fs::read_to_string(env.bundle().join("config.json")).unwrap();
    let assert_clean_failure = |env: &Env, id: &str, expect: &str| {
        let (code, out) = env.rt_detached(&["create", "--bundle", &bundle, id]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(expect), "expected {expect:?} in {out}");
        assert!(!env.root().join(id).exists(), "state dir left for {id}");
        assert!(!env.root().join(format!("bundle@{id}")).exists());
        assert!(env.container_cgroups(id).is_empty(), "cgroup left for {id}");
    };

    let id = env.id("badjson");
    fs::write(env.bundle().join("config.json"), "{ not json").unwrap();
    assert_clean_failure(&env, &id, "invalid JSON");

    let id = env.id("badns");
    let mut value: Value = serde_json::from_str(&config).unwrap();
    value["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    fs::write(env.bundle().join("config.json"), value.to_string()).unwrap();
    assert_clean_failure(&env, &id, "invalid OCI spec");

    let id = env.id("norootfs");
    let mut value: Value = serde_json::from_str(&config).unwrap();
    value["root"]["path"] = json!("missing-rootfs");
    fs::write(env.bundle().join("config.json"), value.to_string()).unwrap();
    assert_clean_failure(&env, &id, "does not exist");

    // A missing binary fails inside libcontainer after the state dir and cgroup exist.
    let id = env.id("noexe");
    let mut value: Value = serde_json::from_str(&config).unwrap();
    value["process"]["args"] = json!(["/bin/no-such-binary"]);
    fs::write(env.bundle().join("config.json"), value.to_string()).unwrap();
    assert_clean_failure(&env, &id, "");

    assert_clean_failure(&env, "bad/id", "invalid container id");

    fs::write(env.bundle().join("config.json"), &config).unwrap();
    let id = env.id("dup");
    env.create(&id);
    let (code, out) = env.rt_detached(&["create", "--bundle", &bundle, &id]);
    assert_eq!(code, 1);
    assert!(out.contains("already exists"), "{out}");
    // The original container is untouched by the failed duplicate.
    assert_eq!(env.status(&id), "created");
    // Wrong-state operations.
    assert_eq!(env.rt(&["resume", &id]).status.code(), Some(1));
    assert_eq!(env.rt(&["exec", &id, "true"]).status.code(), Some(1));
    assert!(env.rt(&["start", &id]).status.success());
    let out = env.rt(&["start", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot start"), "{}", text(&out));
    // Unknown container.
    assert_eq!(env.rt(&["state", "skt-nonexistent"]).status.code(), Some(1));
    assert_eq!(
        env.rt(&["delete", "skt-nonexistent"]).status.code(),
        Some(1)
    );
    assert!(env
        .rt(&["delete", "--force", "skt-nonexistent"])
        .status
        .success());
}

#[test]
fn pid_reuse_is_not_mistaken_for_running() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("reuse");
    env.create(&id);
    // Simulate reuse: the recorded start time no longer matches the live pid.
    let file = env.root().join(&id).join("skiff-starttime");
    let real = fs::read_to_string(&file).unwrap();
    fs::write(&file, "1").unwrap();
    let seen = env.status(&id);
    // Restore so the guard's delete --force kills the (really alive) init.
    fs::write(&file, real).unwrap();
    assert_eq!(seen, "stopped");
    assert_eq!(env.status(&id), "created");
}

/// CVE-2019-5736: a process that gets hold of the runtime's `/proc/<pid>/exe` (here: the
/// created container's init, which still runs the runtime's code) must not be able to open
/// the runtime binary for writing, also after the runtime has exited.
#[test]
fn runtime_binary_cannot_be_rewritten_through_proc_exe() {
    if skip() {
        return;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("exe");
    env.create(&id);
    let state: Value = serde_json::from_slice(&env.rt(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .unwrap();
    assert!(env.rt(&["delete", "--force", &id]).status.success());
    use std::os::fd::AsRawFd;
    let reopened = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let err = reopened.expect_err("the runtime binary was writable through /proc/<pid>/exe");
    // EROFS from the read-only overlay, EPERM from a sealed memfd (the fallback).
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::EPERM)),
        "unexpected error {err}"
    );
    // And the binary itself is intact and still runs.
    assert!(Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap()
        .status
        .success());
}

/// Receives the pty master a runtime sends to a `--console-socket` (runc's protocol: one
/// message, the fd in SCM_RIGHTS).
fn receive_pty_master(listener: &std::os::unix::net::UnixListener) -> fs::File {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    for cmsg in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the fd was just received and is owned by nobody else.
            return unsafe { fs::File::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

/// Reads from a pty master until `want` shows up (or 20 s pass).
fn read_until(master: &mut fs::File, want: &str) -> String {
    use std::io::Read;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {want:?}; got {seen:?}"
        );
        match master.read(&mut buf) {
            Ok(0) => panic!("pty closed before {want:?}; got {seen:?}"),
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                panic!("pty hung up before {want:?}; got {seen:?}")
            }
            Err(e) => panic!("read pty: {e}"),
        }
    }
    seen
}

/// `terminal: true` with `--console-socket` (create) and `exec --tty -d --console-socket`:
/// the process runs on a pty whose master arrives on the socket; input and output flow
/// through it.
#[test]
fn terminal_through_console_socket() {
    if skip() {
        return;
    }
    use std::io::Write;
    let mut env = Env::new(&["sh", "-c", "tty; read line; echo got:$line; sleep 30"]);
    env.edit_config(|c| c["process"]["terminal"] = json!(true));
    let id = env.id("tty");
    let socket = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let bundle = env.bundle();
    let receiver = std::thread::spawn(move || receive_pty_master(&listener));
    let (code, out) = env.rt_detached(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(code, 0, "create failed: {out}");
    let mut master = receiver.join().unwrap();
    assert!(env.rt(&["start", &id]).status.success());
    read_until(&mut master, "/dev/pts/");
    master.write_all(b"hello-tty\n").unwrap();
    read_until(&mut master, "got:hello-tty");

    // exec with its own pty.
    fs::remove_file(&socket).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let receiver = std::thread::spawn(move || receive_pty_master(&listener));
    let (code, out) = env.rt_detached(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        socket.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo exec-on-a-tty; sleep 1",
    ]);
    assert_eq!(code, 0, "exec failed: {out}");
    let mut master = receiver.join().unwrap();
    read_until(&mut master, "exec-on-a-tty");
}

/// Without `--console-socket`, a foreground `run` of a `terminal: true` container and a
/// foreground `exec --tty` get a pty attached to the runtime's own stdio (runc's behaviour).
#[test]
fn foreground_terminal_is_attached_to_stdio() {
    if skip() {
        return;
    }
    use std::io::Write;
    let run_with_input = |env: &Env, args: &[&str], input: &str| -> Output {
        let mut child = Command::new(BIN)
            .arg("--root")
            .arg(env.root())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let mut env = Env::new(&["sh"]);
    env.edit_config(|c| c["process"]["terminal"] = json!(true));
    let id = env.id("fg-tty");
    let bundle = env.bundle();
    let out = run_with_input(
        &env,
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
        "echo on-$(tty)\nexit 5\n",
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("on-/dev/pts/"), "{}", text(&out));
    assert!(!env.root().join(&id).exists(), "state dir left behind");
    let leftovers: Vec<_> = fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("console@"))
        .collect();
    assert!(leftovers.is_empty(), "console sockets left: {leftovers:?}");

    // exec --tty into a running (non-terminal) container.
    env.edit_config(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    let id = env.id("fg-exec");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    let out = run_with_input(
        &env,
        &["exec", "--tty", &id, "sh"],
        "echo exec-on-$(tty)\nexit 6\n",
    );
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("exec-on-/dev/pts/"), "{}", text(&out));
}

/// Streaming `events` reports an OOM kill as runc does: `{"type":"oom","id":…}`.
#[test]
fn events_stream_reports_oom_kills() {
    if skip() {
        return;
    }
    use std::io::BufRead;
    let mut env = Env::new(&[
        "sh",
        "-c",
        "sleep 1; dd if=/dev/zero of=/tmp/fill bs=1M count=64; sleep 30",
    ]);
    env.edit_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=128m"]}));
        c["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    });
    let id = env.id("oom-events");
    env.create(&id);
    /// Kills the streaming `events` process by pid when the test ends.
    struct Events(std::process::Child);
    impl Drop for Events {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut events = Events(
        Command::new(BIN)
            .arg("--root")
            .arg(env.root())
            .args(["events", "--interval", "1", &id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = std::io::BufReader::new(events.0.stdout.take().unwrap()).lines();
    assert!(env.rt(&["start", &id]).status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("no oom event within 30 s; saw types {seen:?}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = events.0.wait();
                let mut stderr = String::new();
                use std::io::Read;
                let _ = events.0.stderr.take().unwrap().read_to_string(&mut stderr);
                panic!("events exited after types {seen:?}: {stderr}")
            }
        };
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["id"], id.as_str());
        seen.push(event["type"].as_str().unwrap_or_default().to_string());
        if event["type"] == "oom" {
            assert!(event.get("data").is_none(), "{event}");
            break;
        }
    }
    assert!(seen.contains(&"stats".to_string()), "{seen:?}");
    drop(events);
}

/// libcontainer rewrites state.json in place; a reader that meets it half-written (another
/// process's `start` at that moment) waits for the writer instead of failing.
#[test]
fn state_read_during_a_rewrite_waits_for_the_writer() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("rewrite");
    env.create(&id);
    let file = env.root().join(&id).join("state.json");
    let content = fs::read(&file).unwrap();
    fs::write(&file, b"").unwrap();
    let writer = {
        let file = file.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            fs::write(&file, content).unwrap();
        })
    };
    let out = env.rt(&["state", &id]);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.status(&id), "created");
}

/// skiff's launcher writes the devices cgroup itself when a spec limits nothing else: the
/// spec's deny-all and the default allow-list must be in force while the container runs.
#[test]
fn device_cgroup_allows_only_the_default_devices() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let id = env.id("devices");
    env.create(&id);
    let dir = Path::new("/sys/fs/cgroup/devices")
        .join(cgroup_parent(&env.root()))
        .join(&id);
    let list = fs::read_to_string(dir.join("devices.list")).unwrap();
    let rules: Vec<&str> = list.lines().collect();
    assert!(!rules.contains(&"a *:* rwm"), "everything allowed: {list}");
    for want in [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 136:* rwm",
        "c 5:2 rwm",
        "b *:* m",
    ] {
        assert!(rules.contains(&want), "{want} missing from {list}");
    }
    assert!(!rules.iter().any(|r| r.starts_with("b 8:")), "{list}");
    assert!(env.rt(&["delete", "--force", &id]).status.success());
    assert!(!dir.exists(), "devices cgroup left behind");
}

/// The hooks that run in the runtime's namespaces (prestart, createRuntime, poststop) and the
/// rlimits that the launcher's intermediate process sets.
#[test]
fn hooks_and_rlimits() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sh", "-c", "ulimit -n"]);
    let marks = env.dir.path().join("marks");
    fs::create_dir_all(&marks).unwrap();
    let hook = |name: &str| {
        // The hook gets the container state on stdin; keep it to check the pid.
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}/{name}", marks.display())]})
    };
    env.edit_config(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "poststop": [hook("poststop")],
        });
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]);
    });
    let out = env.run("hooks");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "123");
    for name in ["prestart", "createRuntime", "poststop"] {
        let state: Value = serde_json::from_slice(&fs::read(marks.join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name} hook did not get the state: {e}"));
        assert_eq!(state["id"].as_str(), Some(env.ids[0].as_str()), "{name}");
    }
    let created: Value =
        serde_json::from_slice(&fs::read(marks.join("createRuntime")).unwrap()).unwrap();
    assert!(created["pid"].as_i64().unwrap_or(0) > 0, "{created}");
}

/// `delete` without --force removes a container that was created but never started (runc
/// does), killing its waiting init.
#[test]
fn delete_of_a_created_container_kills_its_init() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["true"]);
    let id = env.id("created");
    env.create(&id);
    let state: Value = serde_json::from_slice(&env.rt(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let out = env.rt(&["delete", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!env.root().join(&id).exists());
    assert!(env.container_cgroups(&id).is_empty());
    // The init was our child's, reparented to init(1) or a subreaper; it must be gone.
    for _ in 0..100 {
        let gone = fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if gone {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("init {pid} still alive after delete");
}

/// A user namespace goes through libcontainer's own builder (its main process writes the id
/// mappings); the result must behave like any other container and leave nothing behind.
#[test]
fn user_namespace_container() {
    if skip() {
        return;
    }
    let mut env = Env::new(&[
        "sh",
        "-c",
        "echo uid=$(id -u); cat /proc/self/uid_map; cat /proc/self/gid_map",
    ]);
    // The rootfs must be reachable by the mapped root (host uid 100000 here).
    env.edit_config(|c| {
        let namespaces = c["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // Mounts a user namespace cannot make (runc's rootless spec drops them the same way).
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| {
            !matches!(
                m["destination"].as_str(),
                Some("/sys/fs/cgroup" | "/dev/mqueue")
            )
        });
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    });
    let out = env.run("userns");
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(output.contains("uid=0"), "{output}");
    let maps: Vec<Vec<&str>> = output
        .lines()
        .filter(|l| l.trim_start().starts_with('0'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(maps.len(), 2, "{output}");
    for map in maps {
        assert_eq!(map, ["0", "100000", "65536"], "{output}");
    }
    let id = env.ids[0].clone();
    assert!(!env.root().join(&id).exists(), "state dir left behind");
    assert!(env.container_cgroups(&id).is_empty(), "cgroup left behind");
}

/// Unmounts (by its exact path) a read-only bind mount the test made, also on failure.
struct BindMount(PathBuf);

impl Drop for BindMount {
    fn drop(&mut self) {
        // Lazy: a container still running from it (after a failed assertion) keeps it busy
        // until the environment's own cleanup kills that container.
        let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
    }
}

/// A runtime binary on a read-only bind mount is protected without re-executing: the
/// container's init runs it from that mount, and it cannot be opened for writing.
#[test]
fn binary_on_a_read_only_mount_runs_without_reexec() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let bin_dir = env.dir.path().join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    fs::copy(BIN, bin_dir.join("skiff-runtime")).unwrap();
    let mounted = env.dir.path().join("ro-bin");
    fs::create_dir_all(&mounted).unwrap();
    let ok = |args: &[&str]| Command::new("mount").args(args).status().unwrap().success();
    assert!(ok(&[
        "--bind",
        bin_dir.to_str().unwrap(),
        mounted.to_str().unwrap()
    ]));
    let _mount = BindMount(mounted.clone());
    assert!(ok(&["-o", "remount,bind,ro", mounted.to_str().unwrap()]));
    let ro_bin = mounted.join("skiff-runtime");

    let id = env.id("robin");
    let bundle = env.bundle();
    let status = Command::new(&ro_bin)
        .arg("--root")
        .arg(env.root())
        .args(["create", "--bundle", bundle.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let state: Value = serde_json::from_slice(&env.rt(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    // Not re-executed through a detached overlay: the init's binary is the mounted one.
    assert_eq!(fs::read_link(format!("/proc/{pid}/exe")).unwrap(), ro_bin);
    // The attack of CVE-2019-5736: keep a handle on the init's exe, reopen it for writing
    // once the runtime no longer runs it (ETXTBSY would hide the answer before).
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .unwrap();
    assert!(env.rt(&["delete", "--force", &id]).status.success());
    let err = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()))
        .expect_err("the runtime binary was writable through /proc/<pid>/exe");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
}

/// A pod's containers join the namespaces of its first one by path (what a kubelet does with
/// the sandbox): the second container sees the first one's network and processes.
#[test]
fn joining_another_containers_namespaces_by_path() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["sleep", "30"]);
    let sandbox = env.id("sandbox");
    env.create(&sandbox);
    assert!(env.rt(&["start", &sandbox]).status.success());
    let state: Value = serde_json::from_slice(&env.rt(&["state", &sandbox]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let net_ns = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();

    env.edit_config(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "readlink /proc/self/ns/net; echo self=$$; ps -o comm | grep -c sleep"
        ]);
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            let typ = ns["type"].as_str().unwrap().to_string();
            if matches!(typ.as_str(), "network" | "pid" | "ipc") {
                let name = if typ == "network" {
                    "net".to_string()
                } else {
                    typ
                };
                ns["path"] = json!(format!("/proc/{pid}/ns/{name}"));
            }
        }
    });
    let out = env.run("member");
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.first().copied(), net_ns.to_str(), "{output}");
    // In the sandbox's pid namespace the sandbox's init is pid 1, so we are not.
    assert!(!output.contains("self=1\n"), "{output}");
    assert_eq!(
        lines.last().map(|l| l.trim()),
        Some("1"),
        "sandbox's sleep not visible: {output}"
    );
    assert!(env.rt(&["delete", "--force", &sandbox]).status.success());
}

/// A device node the spec does not allow cannot be opened, though the node exists in the
/// container: a character device 1:11 (kmsg, which root could otherwise write without any
/// capability) made in the rootfs. The standard devices still work.
fn unlisted_device_is_denied(env: &mut Env) {
    let node = env.bundle().join("rootfs/unlisted-device");
    let made = Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "11"])
        .status()
        .unwrap();
    assert!(made.success());
    env.edit_config(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "head -c 3 /dev/zero | wc -c; echo skiff-test 2>/tmp/err > /unlisted-device && echo opened; cat /tmp/err"
        ]);
    });
    let out = env.run("devices");
    let output = text(&out);
    assert!(
        output.trim_start().starts_with('3'),
        "/dev/zero unusable: {output}"
    );
    assert!(
        !output.contains("opened"),
        "unlisted device opened: {output}"
    );
    assert!(output.contains("Operation not permitted"), "{output}");
}

#[test]
fn unlisted_device_is_denied_cgroup_v1() {
    if skip() || !Path::new("/sys/fs/cgroup/devices").exists() {
        return;
    }
    unlisted_device_is_denied(&mut Env::new(&["true"]));
}

/// Like runc, a spec without `linux.resources` still gets the device allow-list.
#[test]
fn unlisted_device_is_denied_without_resources_cgroup_v1() {
    if skip() || !Path::new("/sys/fs/cgroup/devices").exists() {
        return;
    }
    let mut env = Env::new(&["true"]);
    env.edit_config(|c| {
        c["linux"].as_object_mut().unwrap().remove("resources");
    });
    unlisted_device_is_denied(&mut env);
}

/// On cgroup v2 the device rules are an eBPF program attached to the container's cgroup.
#[test]
fn unlisted_device_is_denied_cgroup_v2() {
    if skip() {
        return;
    }
    let Some(view) = CgroupV2View::new() else {
        println!("SKIP: no cgroup2 hierarchy at /sys/fs/cgroup/unified");
        return;
    };
    // libcgroups sets RLIMIT_MEMLOCK to 128 MiB before loading the program (kernels before 5.11
    // charged BPF memory to it), which needs CAP_SYS_RESOURCE to raise the hard limit.
    if !has_capability(24) {
        println!("SKIP: no CAP_SYS_RESOURCE here, so libcgroups cannot load the v2 device filter");
        return;
    }
    let mut env = Env::new(&["true"]);
    env.v2 = Some(view);
    unlisted_device_is_denied(&mut env);
}

/// Whether this process has capability `bit` in its effective set.
fn has_capability(bit: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim)
        .unwrap_or("0");
    u64::from_str_radix(hex, 16).unwrap_or(0) & (1 << bit) != 0
}

/// The lifecycle on a pure cgroup v2 layout: the container's processes (init and exec'd) are
/// in its own v2 cgroup, which delete removes.
#[test]
fn cgroup_v2_lifecycle() {
    if skip() {
        return;
    }
    let Some(view) = CgroupV2View::new() else {
        println!("SKIP: no cgroup2 hierarchy at /sys/fs/cgroup/unified");
        return;
    };
    let mut env = Env::new(&["sleep", "30"]);
    env.v2 = Some(view);
    if !has_capability(24) {
        // No device filter can be loaded here (see unlisted_device_is_denied_cgroup_v2);
        // without resources none is asked for.
        env.edit_config(|c| {
            c["linux"]
                .as_object_mut()
                .unwrap()
                .remove("resources")
                .map(drop)
                .unwrap_or(())
        });
    }
    let id = env.id("v2");
    env.create(&id);
    assert!(env.rt(&["start", &id]).status.success());
    let want = format!("0::/{}/{id}", cgroup_parent(&env.root()));
    let state: Value = serde_json::from_slice(&env.rt(&["state", &id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        membership.lines().any(|l| l == want),
        "init in {membership}"
    );
    // Seen from the host (inside, the cgroup namespace shows "/").
    let exec_pid = env.exec_detached(&id, &["sleep", "30"]);
    let membership = fs::read_to_string(format!("/proc/{exec_pid}/cgroup")).unwrap();
    assert!(
        membership.lines().any(|l| l == want),
        "exec'd process in {membership}"
    );
    let dir = Path::new("/sys/fs/cgroup/unified")
        .join(cgroup_parent(&env.root()))
        .join(&id);
    assert!(dir.exists());
    assert!(env.rt(&["delete", "--force", &id]).status.success());
    assert!(!dir.exists(), "v2 cgroup left behind");
    assert!(!env.root().join(&id).exists());

    env.edit_config(|c| c["process"]["args"] = json!(["sh", "-c", "echo v2; exit 3"]));
    let out = env.run("v2run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("v2"));
}

/// Mount destinations are resolved inside the rootfs even through symlinks that point out of
/// it; a file bind mount honours `ro`; propagation options apply; the cgroup v1 filesystem
/// shows the container's own cgroups, read-only as the spec's mount asks.
#[test]
fn mounts_stay_inside_the_rootfs_and_keep_their_options() {
    if skip() {
        return;
    }
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("data.txt"), "from-the-host\n").unwrap();
    let script = "cat /etc/data.txt; \
                  if echo x > /etc/data.txt 2>/dev/null; then echo write=ok; else echo write=denied; fi; \
                  grep ' /shared ' /proc/self/mountinfo; \
                  echo procs=$(cat /sys/fs/cgroup/pids/cgroup.procs 2>/dev/null | head -n 1); \
                  if mkdir /sys/fs/cgroup/pids/sub 2>/dev/null; then echo cgroup=rw; else echo cgroup=ro; fi";
    let mut env = Env::new(&["sh", "-c", script]);
    let rootfs = env.bundle().join("rootfs");
    // An absolute symlink to the host directory and a relative one climbing past the root.
    std::os::unix::fs::symlink(outside.path(), rootfs.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", rootfs.join("up")).unwrap();
    let outside_rel = outside
        .path()
        .strip_prefix("/")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    env.edit_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/abs/inner", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({"destination": format!("/up/{outside_rel}/climbed"),
                           "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({"destination": "/etc/data.txt", "type": "bind",
                           "source": outside.path().join("data.txt"), "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/shared", "type": "bind",
                           "source": outside.path(), "options": ["rbind", "rshared"]}));
    });
    let out = env.run("mounts");
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(output.contains("from-the-host"), "{output}");
    assert!(output.contains("write=denied"), "{output}");
    let shared_line = output
        .lines()
        .find(|l| l.contains(" /shared "))
        .unwrap_or("");
    assert!(shared_line.contains("shared:"), "not shared: {output}");
    if Path::new("/sys/fs/cgroup/pids/tasks").exists() {
        assert!(
            output.contains("procs=1\n"),
            "own cgroup not shown: {output}"
        );
        assert!(output.contains("cgroup=ro"), "{output}");
    }
    // Both destinations were created inside the rootfs, nothing outside it.
    assert!(!outside.path().join("inner").exists());
    assert!(!outside.path().join("climbed").exists());
    assert!(rootfs.join(&outside_rel).join("inner").is_dir());
    assert!(rootfs.join(&outside_rel).join("climbed").is_dir());
    assert_eq!(
        fs::read_to_string(outside.path().join("data.txt")).unwrap(),
        "from-the-host\n"
    );
}

/// proc must be mounted on a real directory: a symlink there is refused, and the failed
/// create leaves no container, state or cgroup behind.
#[test]
fn proc_on_a_symlink_is_refused() {
    if skip() {
        return;
    }
    let mut env = Env::new(&["true"]);
    let rootfs = env.bundle().join("rootfs");
    fs::create_dir_all(rootfs.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("/elsewhere", rootfs.join("plink")).unwrap();
    env.edit_config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/plink", "type": "proc", "source": "proc"}));
    });
    let id = env.id("plink");
    let out = env.rt(&["run", "--bundle", env.bundle().to_str().unwrap(), &id]);
    let output = text(&out);
    assert!(!out.status.success(), "{output}");
    assert!(output.contains("ordinary directory"), "{output}");
    assert!(!env.root().join(&id).exists(), "state dir left behind");
    for dir in env.container_cgroups(&id) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(fs::read_dir(rootfs.join("elsewhere"))
        .unwrap()
        .next()
        .is_none());
}

/// On cgroup v2 the container's /sys/fs/cgroup shows its own cgroup as the root — through a
/// cgroup namespace, and without one through a bind of its own directory — never the host's
/// whole hierarchy.
#[test]
fn cgroup_v2_filesystem_shows_only_the_containers_cgroup() {
    if skip() {
        return;
    }
    let script = "echo procs=$(cat /sys/fs/cgroup/cgroup.procs | head -n 1); \
                  echo subdirs=$(find /sys/fs/cgroup -mindepth 1 -type d | wc -l)";
    for with_namespace in [true, false] {
        let Some(view) = CgroupV2View::new() else {
            println!("SKIP: no cgroup2 hierarchy at /sys/fs/cgroup/unified");
            return;
        };
        let mut env = Env::new(&["sh", "-c", script]);
        env.v2 = Some(view);
        env.edit_config(|c| {
            let linux = c["linux"].as_object_mut().unwrap();
            linux.remove("resources");
            let namespaces = linux["namespaces"].as_array_mut().unwrap();
            namespaces.retain(|ns| ns["type"] != "cgroup");
            if with_namespace {
                namespaces.push(json!({"type": "cgroup"}));
            }
        });
        let out = env.run(if with_namespace { "v2ns" } else { "v2bind" });
        let output = text(&out);
        assert!(out.status.success(), "{output}");
        // Its own processes only: the shell is pid 1 in its pid namespace.
        assert!(
            output.contains("procs=1\n"),
            "cgroupns={with_namespace}: {output}"
        );
        assert!(
            output.contains("subdirs=0"),
            "cgroupns={with_namespace}: {output}"
        );
    }
}
