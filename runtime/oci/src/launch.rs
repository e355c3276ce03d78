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
//! (init.rs, rootfs.rs) the main process sets the limits (limits.rs), answers its requests
//! (prestart and createRuntime hooks) over libcontainer's channels and saves the same state
//! files libcontainer does (and skiff's own, records.rs), so every later command (start,
//! state, kill, exec, events, …) works on the result unchanged; `delete` removes the recorded
//! cgroups without libcgroups (delete.rs).
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
use libcontainer::config::YoukiConfig;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::namespaces::Namespaces;
use libcontainer::notify_socket::{NotifyListener, NOTIFY_FILE};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Spec};
use libcontainer::process::args::{ContainerArgs, ContainerType};
use libcontainer::process::channel;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::{Cgroups, Layout};
use crate::{limits, records};

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
    records::record_cgroups(&dir, &cgroups)?;

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
        records::record_start_time_of(&dir, init_pid.as_raw())?;
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
            limits::apply_resources(resources, cgroups, cgroup_path)?;
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
        limits::write_v1_device_rules(resources, cgroups)?;
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
            size_of::<CloneArgs>(),
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
}
