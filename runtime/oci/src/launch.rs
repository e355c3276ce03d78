//! skiff's own `create` (cgroupfs driver, v1 and v2): the main process and the container's
//! init, in place of libcontainer's builder.
//!
//! libcontainer's builder runs main → intermediate → init. Its intermediate joins the cgroup
//! through libcgroups' manager, which writes `cgroup.procs` (the kernel's global migration lock
//! and, after a quiet period, an RCU grace period of 11–15 ms) and builds per-controller state
//! from mountinfo (~3 ms); its init resolves every mount through libpathrs (~0.25 ms a mount).
//! Here the main process creates the cgroup directories (v1: with the device allow-list
//! already in place) and clones the init straight into its new pid namespace — on v2 into its
//! cgroup too (`clone3(CLONE_INTO_CGROUP)`, cgroups.rs); on v1 the single-threaded init joins
//! by writing `0` to each hierarchy's `tasks` file. While the init prepares the container
//! (init.rs, rootfs.rs) the main process sets the limits, answers its requests (prestart and
//! createRuntime hooks) over libcontainer's channels and saves the same state files
//! libcontainer does, so every later command (start, state, kill, exec, events, …) works on
//! the result unchanged.
//!
//! Specs that need what only libcontainer does — a new user namespace (id mappings), time
//! namespace offsets, network devices, a seccomp notify listener, Intel RDT, idmapped mounts,
//! AppArmor, SELinux labels, personality, scheduler, I/O priority, memory policy, CPU
//! affinity, no mount namespace or `--no-pivot` — and the systemd cgroup driver go through
//! libcontainer's builder instead (`unsupported` lists them).

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::config::YoukiConfig;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::namespaces::Namespaces;
use libcontainer::notify_socket::{NotifyListener, NOTIFY_FILE};
use libcontainer::oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceType,
    LinuxResources, Spec,
};
use libcontainer::process::args::{ContainerArgs, ContainerType};
use libcontainer::process::channel;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::{Cgroups, Layout};

/// File in the state dir listing the container's cgroup directories (one per line); its
/// presence means the container was created here and `delete` may remove it without
/// libcgroups (`delete_fast`).
pub const CGROUPS_FILE: &str = "skiff-cgroups";

/// What `create` was asked for, beyond the bundle.
pub struct Options<'a> {
    pub id: &'a str,
    pub root: &'a Path,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: i32,
    pub detach: bool,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The caller's own records (patched bundle copy, …), written while the init prepares the
    /// rootfs; gets the state dir.
    pub side_work: &'a dyn Fn(&Path) -> Result<()>,
}

/// The loaded, validated spec and the host's cgroups for it, when this launcher can create
/// the container; `Ok(None)` when libcontainer's builder must (the reason is logged).
pub struct Plan {
    spec: Spec,
    cgroup_path: PathBuf,
    cgroups: Cgroups,
}

pub fn plan(mut spec: Spec, bundle: &Path, id: &str, systemd: bool) -> Result<Option<Plan>> {
    if unsupported(&spec, systemd).is_some() {
        return Ok(None);
    }
    if !spec.version().starts_with("1.") {
        bail!(
            "runtime spec has incompatible version '{}'. Only 1.X.Y is supported",
            spec.version()
        );
    }
    libcontainer::validator::Validator::validate_spec(&spec).context("invalid spec")?;
    if let Some(mounts) = spec.mounts() {
        libcontainer::utils::validate_mount_options(mounts).context("invalid mount options")?;
    }
    spec.canonicalize_rootfs(bundle)
        .with_context(|| format!("rootfs of {} does not exist", bundle.display()))?;
    let linux = spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;
    let cgroup_path = libcontainer::utils::get_cgroup_path(linux.cgroups_path(), id);
    let Some(cgroups) = Cgroups::for_path(&cgroup_path).context("cannot read mountinfo")? else {
        return Ok(None); // a v1 host without any controller mounted
    };
    Ok(Some(Plan {
        spec,
        cgroup_path,
        cgroups,
    }))
}

fn unsupported(spec: &Spec, systemd: bool) -> Option<&'static str> {
    if systemd {
        return Some("systemd cgroup driver");
    }
    let linux = spec.linux().as_ref()?;
    let has_ns = |t| {
        linux
            .namespaces()
            .as_ref()
            .is_some_and(|nss| nss.iter().any(|ns| ns.typ() == t))
    };
    if has_ns(LinuxNamespaceType::User) {
        return Some("user namespace (id mappings are written by libcontainer's main process)");
    }
    if has_ns(LinuxNamespaceType::Time) {
        return Some("time namespace");
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Some("network devices");
    }
    if linux.intel_rdt().is_some() {
        return Some("Intel RDT");
    }
    if linux
        .seccomp()
        .as_ref()
        .is_some_and(|s| s.listener_path().is_some())
    {
        return Some("seccomp notify listener");
    }
    let idmapped = spec.mounts().as_ref().is_some_and(|mounts| {
        mounts
            .iter()
            .any(|m| m.uid_mappings().is_some() || m.gid_mappings().is_some())
    });
    if idmapped {
        return Some("idmapped mounts");
    }
    if let Some(process) = spec.process().as_ref() {
        if process.apparmor_profile().is_some() {
            return Some("AppArmor profile");
        }
        if process.selinux_label().is_some() {
            return Some("SELinux process label");
        }
        if process.scheduler().is_some() {
            return Some("process scheduler");
        }
        if process.io_priority().is_some() {
            return Some("I/O priority");
        }
        if process.exec_cpu_affinity().is_some() {
            return Some("exec CPU affinity");
        }
    }
    if linux.mount_label().is_some() {
        return Some("SELinux mount label");
    }
    if linux.memory_policy().is_some() {
        return Some("memory policy");
    }
    if linux.personality().is_some() {
        return Some("personality");
    }
    if !has_ns(LinuxNamespaceType::Mount) {
        return Some("no mount namespace (chroot)");
    }
    None
}

/// Creates the container (state `created`, init waiting for `start`), as libcontainer's
/// `InitContainerBuilder::build` would. On error the caller removes what was created.
pub fn create(plan: Plan, bundle: &Path, opts: Options) -> Result<Container> {
    let Plan {
        spec,
        cgroup_path,
        cgroups,
    } = plan;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if opts.detach && terminal && opts.console_socket.is_none() {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !(opts.detach && terminal) && opts.console_socket.is_some() {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }

    let dir = opts.root.join(opts.id);
    if dir.exists() {
        bail!("container with id {} already exists", opts.id);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut container = Container::new(opts.id, ContainerStatus::Creating, None, bundle, &dir)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot resolve bundle {} or state dir {}: {e:?}",
                bundle.display(),
                dir.display()
            )
        })?;
    container
        .set_systemd(false)
        .set_annotations(spec.annotations().clone());
    // Before any cgroup exists, so a failed create can always find and remove them; the
    // state itself is saved while the init prepares the container (`record`).
    fs::write(dir.join(CGROUPS_FILE), cgroups.to_text())?;

    let rootfs = fs::canonicalize(
        spec.root()
            .as_ref()
            .context("config.json has no root")?
            .path(),
    )
    .context("rootfs does not exist")?;
    let console_socket = match opts.console_socket {
        Some(path) => Some(libcontainer::tty::setup_console_socket(
            &dir,
            path,
            "console-socket",
        )?),
        None => None,
    };
    // Read by later commands (start, delete), not by the init: saved off its critical path.
    let youki_config = YoukiConfig::from_spec(&spec, opts.id)?;
    let notify_listener = NotifyListener::new(&dir.join(NOTIFY_FILE))?;

    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    if let Some(adj) = process.oom_score_adj() {
        // Before turning non-dumpable (which makes oom_score_adj unwritable); inherited.
        fs::File::create("/proc/self/oom_score_adj")
            .and_then(|mut f| f.write_all(adj.to_string().as_bytes()))
            .context("cannot set oom_score_adj")?;
    }
    if spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.namespaces().is_some())
    {
        // Like runc: nothing joining our namespaces may ptrace or read us.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot clear dumpable");
        }
    }

    let args = ContainerArgs {
        container_type: ContainerType::InitContainer,
        syscall: SyscallType::default(),
        spec: Rc::new(spec),
        rootfs,
        console_socket: console_socket.as_ref().map(|c| c.as_raw_fd()),
        notify_listener,
        preserve_fds: opts.preserve_fds,
        container: Some(container.clone()),
        user_ns_config: None,
        cgroup_config: libcgroups::common::CgroupConfig {
            cgroup_path: cgroup_path.clone(),
            systemd_cgroup: false,
            container_name: opts.id.to_string(),
        },
        detached: opts.detach,
        executor: libcontainer::workload::default::get_executor(),
        no_pivot: false,
        stdin: None,
        stdout: opts.stdout.as_ref().map(|f| f.as_raw_fd()),
        stderr: opts.stderr.as_ref().map(|f| f.as_raw_fd()),
        as_sibling: false,
        pid_file: opts.pid_file.map(Path::to_path_buf),
    };
    // skiff's own records, written while the init prepares the rootfs (off its critical path).
    let creating = container.clone();
    let record = |init_pid: Pid| -> Result<()> {
        creating.save()?;
        youki_config.save(&dir)?;
        crate::containers::record_start_time_of(&dir, init_pid.as_raw())?;
        (opts.side_work)(&dir)
    };
    let init_pid = main_process(&args, &cgroups, &cgroup_path, record)?;
    container
        .set_status(ContainerStatus::Created)
        .set_creator(nix::unistd::geteuid().as_raw())
        .set_pid(init_pid.as_raw())
        .save()?;
    Ok(container)
}

/// libcontainer's `container_main_process` without its intermediate process: clones the
/// init straight into the container's pid namespace (and, on v2, its cgroup), sets the cgroup
/// limits, writes the pid file, runs prestart/createRuntime hooks when the init asks, and
/// returns the init's pid once it is ready (waiting for `start`).
///
/// libcontainer needs an intermediate process for user namespaces (the parent writes the id
/// mappings) and to join cgroups before the init exists; without a user namespace a
/// `clone3(CLONE_NEWPID)` makes the init pid 1 at once, and the init joins its v1 cgroups
/// itself (`init_process`), so one fork and one exit fewer per container.
fn main_process(
    args: &ContainerArgs,
    cgroups: &Cgroups,
    cgroup_path: &Path,
    on_init_pid: impl FnOnce(Pid) -> Result<()>,
) -> Result<Pid> {
    // Each channel is one-way; every process closes the senders it does not use, so a
    // receiver sees EOF (not a hang) when the other side dies.
    let (mut init_main_tx, mut init_main_rx) = channel::main_channel()?;
    let (mut init_tx, mut init_rx) = channel::init_channel()?;

    let resources = args
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref());
    // v1: the init creates and joins its cgroups (`init_process`) while we go on, and says
    // so through this pipe before we set limits in them.
    let (cgroups_ready_rx, cgroups_ready_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot create a pipe")?;
    // v2: the init is born in the container's cgroup.
    let cgroup_fd = match cgroups.layout() {
        Layout::V2 => Some(
            cgroups
                .create_v2()
                .context("cannot create the container's cgroup")?,
        ),
        Layout::V1 => None,
    };
    let linux = args
        .spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;
    let namespaces = Namespaces::try_from(linux.namespaces().as_ref())?;
    let pid_ns = namespaces.get(LinuxNamespaceType::Pid)?;
    let new_pid_ns = pid_ns.is_some_and(|ns| ns.path().is_none());
    // Joining an existing pid namespace applies to our children only: entered for the clone
    // and left right after (hooks we run later must not start inside it).
    let own_pid_ns = match pid_ns.and_then(|ns| ns.path().as_ref()) {
        Some(path) => Some(enter_pid_namespace(path)?),
        None => None,
    };
    let flags = if new_pid_ns {
        libc::CLONE_NEWPID as u64
    } else {
        0
    };
    let forked = fork(flags, libc::SIGCHLD as u64, cgroup_fd.as_ref(), || {
        set_name(c"skiff:[INIT]");
        let _ = init_tx.close();
        let _ = init_main_rx.close();
        match init_process(
            args,
            cgroups,
            resources,
            cgroups_ready_tx,
            &mut init_main_tx,
            &mut init_rx,
        ) {
            Ok(()) => 0,
            Err(err) => {
                let _ = init_main_tx.exec_failed(format!("{err:#}"));
                1
            }
        }
    });
    if let Some(own) = own_pid_ns {
        nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID)
            .context("cannot return to our own pid namespace")?;
    }
    let init_pid = forked.context("cannot clone the container's init process")?;
    init_main_tx.close()?;
    let _ = init_rx.close();
    let mut cgroups_ready = fs::File::from(cgroups_ready_rx);

    let result = (|| -> Result<Pid> {
        // Setting the limits here, on our CPU, overlaps with the init preparing the rootfs on
        // the other (building libcgroups' manager alone takes ~3 ms); it is done before the
        // init may run createContainer hooks (it waits for hook_done) and before `create`
        // returns, so no container process runs without them. (On v1 the init may not have
        // joined yet: the limits apply to the directories, whoever joins.)
        on_init_pid(init_pid)?;
        // v1: once the init has made its cgroups (end of file instead: it failed, and says
        // why below).
        let mut byte = [0u8; 1];
        let ready = cgroups.layout() == Layout::V2
            || std::io::Read::read(&mut cgroups_ready, &mut byte).is_ok_and(|n| n == 1);
        if let Some(resources) = resources.filter(|_| ready) {
            apply_resources(resources, cgroups, cgroup_path)?;
        }
        if let Some(pid_file) = &args.pid_file {
            fs::write(pid_file, init_pid.to_string())
                .with_context(|| format!("cannot write pid file {}", pid_file.display()))?;
        }
        if let Some(hooks) = args.spec.hooks() {
            init_main_rx.wait_for_hook_request()?;
            let state = args.container.as_ref().map(|c| &c.state);
            libcontainer::hooks::run_hooks(
                hooks.prestart().as_ref(),
                state,
                None,
                Some(init_pid),
                None,
            )
            .context("prestart hook failed")?;
            libcontainer::hooks::run_hooks(
                hooks.create_runtime().as_ref(),
                state,
                None,
                Some(init_pid),
                None,
            )
            .context("createRuntime hook failed")?;
            init_tx.hook_done()?;
        }
        init_tx.close()?;
        init_main_rx
            .wait_for_init_ready()
            .context("container init failed")?;
        Ok(init_pid)
    })();
    let _ = init_main_rx.close();
    if result.is_err() {
        // Not left waiting for a `start` that never comes; the caller removes the rest.
        let _ = nix::sys::signal::kill(init_pid, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(init_pid, None);
    }
    result
}

/// Enters the pid namespace at `path` for our future children; returns our own to go back to.
fn enter_pid_namespace(path: &Path) -> Result<OwnedFd> {
    let own = fs::File::open("/proc/self/ns/pid").context("cannot open our pid namespace")?;
    let target = fs::File::open(path)
        .with_context(|| format!("cannot open pid namespace {}", path.display()))?;
    nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWPID)
        .with_context(|| format!("cannot join pid namespace {}", path.display()))?;
    Ok(OwnedFd::from(own))
}

/// The init's own preparation before the container's. v1: it creates its cgroups, writes the
/// device allow-list before anything is inside, and joins them (writing `0` to each `tasks`
/// file moves only this single-threaded process and skips the kernel's global migration
/// lock) — before it creates a cgroup namespace, whose root is the cgroup it is in — then
/// tells the main process, which sets the other limits. It also sets the rlimits, which it
/// passes on to the container's process.
fn init_process(
    args: &ContainerArgs,
    cgroups: &Cgroups,
    resources: Option<&LinuxResources>,
    cgroups_ready: OwnedFd,
    main_tx: &mut channel::MainSender,
    init_rx: &mut channel::InitReceiver,
) -> Result<()> {
    if cgroups.layout() == Layout::V1 {
        cgroups
            .create_v1()
            .context("cannot create the container's cgroups")?;
        write_v1_device_rules(resources, cgroups)?;
        cgroups
            .enter_self()
            .context("cannot join the container's cgroups")?;
    }
    let mut ready = fs::File::from(cgroups_ready);
    ready
        .write_all(&[1])
        .context("cannot tell the main process the cgroups are ready")?;
    drop(ready);
    let process = args
        .spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let syscall = args.syscall.create_syscall();
    for rlimit in process.rlimits().iter().flatten() {
        syscall
            .set_rlimit(rlimit)
            .with_context(|| format!("cannot set rlimit {:?}", rlimit.typ()))?;
    }
    crate::init::container_init(args, cgroups, main_tx, init_rx)
}

/// v1's device allow-list, written before any process of the container is in the cgroup:
/// the list is rewritten as deny-all followed by the allowed devices, and a process inside in
/// between (the init creating or opening /dev/null) would be refused. Like runc, a spec
/// without resources still gets the allow-list (deny everything else).
fn write_v1_device_rules(resources: Option<&LinuxResources>, cgroups: &Cgroups) -> Result<()> {
    let Some(dir) = cgroups.devices_dir() else {
        return Ok(());
    };
    let rules = match resources {
        Some(resources) => resources.devices().clone().unwrap_or_default(),
        None => vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?],
    };
    for rule in rules.into_iter().chain(default_device_rules()) {
        let file = dir.join(if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        });
        fs::write(&file, rule.to_string())
            .with_context(|| format!("cannot write {rule} to {}", file.display()))?;
    }
    Ok(())
}

/// The limits besides v1's devices (`write_v1_device_rules`), through libcgroups' manager,
/// which knows every controller's files; on v2 all of them (its device rules are an eBPF
/// program, attached at once).
fn apply_resources(
    resources: &LinuxResources,
    cgroups: &Cgroups,
    cgroup_path: &Path,
) -> Result<()> {
    if cgroups.layout() == Layout::V2 {
        let opt = ControllerOpt {
            resources,
            freezer_state: None,
            oom_score_adj: None,
            disable_oom_killer: false,
        };
        let root = PathBuf::from("/sys/fs/cgroup");
        libcgroups::v2::manager::Manager::new(root, cgroup_path.to_path_buf())?.apply(&opt)?;
        return Ok(());
    }
    let only_devices = resources.memory().is_none()
        && resources.cpu().is_none()
        && resources.pids().is_none()
        && resources.block_io().is_none()
        && resources
            .hugepage_limits()
            .as_ref()
            .is_none_or(|h| h.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|r| r.is_empty())
        && resources.unified().as_ref().is_none_or(|u| u.is_empty());
    if only_devices || write_common_v1_limits(resources, cgroups)? {
        return Ok(());
    }
    // Without devices, libcgroups' devices controller only adds the default allow rules
    // (already there): no deny-all rewrite while the init runs.
    let mut without_devices = resources.clone();
    without_devices.set_devices(None);
    let opt = ControllerOpt {
        resources: &without_devices,
        freezer_state: None,
        oom_score_adj: None,
        disable_oom_killer: false,
    };
    libcgroups::v1::Manager::new(cgroup_path)?.apply(&opt)?;
    Ok(())
}

/// The limits a pod's container usually has — memory limit and reservation, CPU shares,
/// period and quota, a pids limit — written straight into the container's directories: the
/// same files and values libcgroups' v1 controllers write for them, without its manager,
/// which re-reads mountinfo and /proc/self/cgroup for each of twelve controllers (~3 ms, the
/// longest step of a `create` with limits). `false`, with nothing written, when the resources
/// ask for anything else; libcgroups' manager then applies them all.
fn write_common_v1_limits(resources: &LinuxResources, cgroups: &Cgroups) -> Result<bool> {
    let memory_is_common = resources.memory().as_ref().is_none_or(|m| {
        m.swap().is_none()
            && m.kernel().is_none()
            && m.kernel_tcp().is_none()
            && m.swappiness().is_none()
            && m.disable_oom_killer().is_none()
            && m.use_hierarchy().is_none()
            && m.check_before_update().is_none()
            && m.limit().is_none_or(|limit| limit > 0)
    });
    let cpu_is_common = resources.cpu().as_ref().is_none_or(|c| {
        c.cpus().is_none()
            && c.mems().is_none()
            && c.realtime_period().is_none()
            && c.realtime_runtime().is_none()
            && c.idle().is_none()
            && c.burst().is_none()
    });
    let nothing_else = resources.block_io().is_none()
        && resources
            .hugepage_limits()
            .as_ref()
            .is_none_or(|h| h.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|r| r.is_empty())
        && resources.unified().as_ref().is_none_or(|u| u.is_empty());
    if !(memory_is_common && cpu_is_common && nothing_else) {
        return Ok(false);
    }
    let write = |controller: &str, file: &str, value: String| -> Result<()> {
        let dir = cgroups
            .dir_of(controller)
            .with_context(|| format!("the {controller} cgroup controller is not mounted"))?;
        let path = dir.join(file);
        fs::write(&path, &value)
            .with_context(|| format!("cannot write {value} to {}", path.display()))
    };
    if let Some(memory) = resources.memory() {
        if let Some(limit) = memory.limit() {
            write("memory", "memory.limit_in_bytes", limit.to_string())?;
        }
        if let Some(reservation) = memory.reservation().filter(|r| *r != 0) {
            write(
                "memory",
                "memory.soft_limit_in_bytes",
                reservation.to_string(),
            )?;
        }
        write("memory", "memory.oom_control", "0".into())?;
    }
    if let Some(cpu) = resources.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            write("cpu", "cpu.shares", shares.to_string())?;
        }
        if let Some(period) = cpu.period().filter(|p| *p != 0) {
            write("cpu", "cpu.cfs_period_us", period.to_string())?;
        }
        if let Some(quota) = cpu.quota().filter(|q| *q != 0) {
            write("cpu", "cpu.cfs_quota_us", quota.to_string())?;
        }
    }
    if let Some(pids) = resources.pids() {
        let limit = match pids.limit() {
            limit if limit > 0 => limit.to_string(),
            _ => "max".to_string(),
        };
        write("pids", "pids.max", limit)?;
    }
    Ok(true)
}

/// The devices every container may use whatever its spec says, after the spec's own rules:
/// the same list libcgroups applies (runc's: the standard character devices, mknod of any
/// device, the console, ptys, tun).
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            b = b.major(major);
        }
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        b.build().expect("static device rule")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, None, None, "m"),            // mknod of any character device
        rule(B, None, None, "m"),            // … and block device
        rule(C, Some(5), Some(1), "rwm"),    // /dev/console
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

/// Names the process (ps, /proc/<pid>/comm) for what it is while it is ours.
fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string we own.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// Forks with clone3 (no new stack: fork semantics) and runs `child` in the new process,
/// which exits with its return value. `CLONE_PARENT` makes the child our parent's child.
/// The caller must be single-threaded.
fn fork(
    flags: u64,
    exit_signal: u64,
    into_cgroup: Option<&OwnedFd>,
    child: impl FnOnce() -> i32,
) -> std::io::Result<Pid> {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    // CLONE_INTO_CGROUP (Linux 5.7), not in the libc crate's constants.
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut clone_args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = into_cgroup {
        clone_args.flags |= CLONE_INTO_CGROUP;
        clone_args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 without a stack duplicates the calling (single) thread like fork; the
    // child only runs `child` and then _exit, never returning into the caller's frames.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut clone_args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            let code = child();
            // SAFETY: ends the child without running the parent's exit handlers twice.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(Pid::from_raw(pid as i32)),
    }
}

/// After a failed create that left no state behind: kills whatever is in the cgroups recorded
/// in the state dir `dir` and removes them.
pub fn remove_recorded_cgroups(dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join(CGROUPS_FILE)) else {
        return;
    };
    if let Some(cgroups) = Cgroups::from_text(&text) {
        let _ = cgroups.remove();
    }
}

/// `delete` of a container this launcher created: libcontainer's `Container::delete` minus
/// building a cgroup manager. `None` when the container was created by libcontainer's builder.
pub fn delete_fast(container: &mut Container, force: bool) -> Option<Result<()>> {
    let text = fs::read_to_string(container.root.join(CGROUPS_FILE)).ok()?;
    let cgroups = Cgroups::from_text(&text)?;
    Some(delete_with(container, &cgroups, force))
}

fn delete_with(container: &mut Container, cgroups: &Cgroups, force: bool) -> Result<()> {
    container.refresh_status()?;
    match container.status() {
        ContainerStatus::Stopped => {}
        // Like runc and libcontainer: a created container is deleted without --force.
        ContainerStatus::Created => {}
        status if force => {
            let _ = status;
        }
        status => bail!(
            "cannot delete container {} that is not stopped: {}",
            container.id(),
            crate::containers::status_name(status)
        ),
    }
    // Kills every process left in the cgroup (the init first, so a pid namespace collapses);
    // `remove` thaws a paused container first.
    if let Some(pid) = container.pid() {
        if container.status() != ContainerStatus::Stopped {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    cgroups
        .remove()
        .context("cannot remove the container's cgroups")?;
    if container.root.exists() {
        if let Ok(config) = YoukiConfig::load(&container.root) {
            if let Some(hooks) = config.hooks.as_ref() {
                libcontainer::hooks::run_hooks(
                    hooks.poststop().as_ref(),
                    Some(&container.state),
                    None,
                    None,
                    None,
                )
                .context("poststop hook failed")?;
            }
        }
        fs::remove_dir_all(&container.root)
            .with_context(|| format!("cannot remove {}", container.root.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcontainer::oci_spec::runtime::{LinuxNamespaceBuilder, Spec};

    fn spec_with_namespace(typ: LinuxNamespaceType) -> Spec {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap();
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build().unwrap());
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
        spec
    }

    #[test]
    fn default_spec_is_launched_here() {
        assert_eq!(unsupported(&Spec::default(), false), None);
    }

    #[test]
    fn what_needs_libcontainers_main_process_is_left_to_it() {
        assert!(unsupported(&Spec::default(), true).is_some(), "systemd");
        assert!(unsupported(&spec_with_namespace(LinuxNamespaceType::User), false).is_some());
        assert!(unsupported(&spec_with_namespace(LinuxNamespaceType::Time), false).is_some());
    }

    #[test]
    fn common_v1_limits_are_written_to_each_controllers_directory() {
        let hierarchies = tempfile::tempdir().unwrap();
        let base = hierarchies.path().display();
        let mountinfo = format!(
            "1 0 0:1 / {base}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             2 0 0:2 / {base}/memory rw - cgroup cgroup rw,memory\n\
             3 0 0:3 / {base}/pids rw - cgroup cgroup rw,pids\n"
        );
        let cgroups = Cgroups::from_mountinfo(&mountinfo, Path::new("/pod/c1")).unwrap();
        cgroups.create_v1().unwrap();
        let resources: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 268435456, "reservation": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 100}
        }))
        .unwrap();
        assert!(write_common_v1_limits(&resources, &cgroups).unwrap());
        let read = |file: &str| fs::read_to_string(hierarchies.path().join(file)).unwrap();
        assert_eq!(read("memory/pod/c1/memory.limit_in_bytes"), "268435456");
        assert_eq!(
            read("memory/pod/c1/memory.soft_limit_in_bytes"),
            "134217728"
        );
        assert_eq!(read("memory/pod/c1/memory.oom_control"), "0");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.shares"), "512");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.cfs_period_us"), "100000");
        assert_eq!(read("pids/pod/c1/pids.max"), "100");

        // Anything beyond those goes to libcgroups' manager: nothing written here.
        let with_swap: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152}
        }))
        .unwrap();
        fs::remove_file(
            hierarchies
                .path()
                .join("memory/pod/c1/memory.limit_in_bytes"),
        )
        .unwrap();
        assert!(!write_common_v1_limits(&with_swap, &cgroups).unwrap());
        assert!(!hierarchies
            .path()
            .join("memory/pod/c1/memory.limit_in_bytes")
            .exists());
    }

    #[test]
    fn default_devices_match_runc() {
        let rules: Vec<String> = default_device_rules()
            .iter()
            .map(|r| r.to_string())
            .collect();
        for want in [
            "c 1:3 rwm",
            "c *:* m",
            "b *:* m",
            "c 136:* rwm",
            "c 10:200 rwm",
        ] {
            assert!(rules.iter().any(|r| r == want), "{want} not in {rules:?}");
        }
        assert!(default_device_rules().iter().all(|r| r.allow()));
    }
}
