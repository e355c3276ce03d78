//! skiff's container init process: what runs inside the container's new namespaces, from the
//! intermediate's clone until `execve` of the container's process. It follows libcontainer's
//! `container_init_process` step by step (and its channel protocol with the main process, so
//! launch.rs's main process is unchanged), for the specs launch.rs creates itself — no user
//! namespace, network devices, seccomp listener, AppArmor, SELinux labels, personality,
//! scheduler, I/O priority or memory policy (`launch::unsupported` sends those to
//! libcontainer's builder).
//!
//! The root filesystem is ours (rootfs.rs): libcontainer's resolves each mount through
//! libpathrs at ~0.25 ms a mount. The steps that are cheap already — namespaces, capabilities,
//! seccomp, hooks, the console, the notify socket, the final exec — are libcontainer's.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use libcontainer::namespaces::Namespaces;
use libcontainer::oci_spec::runtime::LinuxNamespaceType;
use libcontainer::process::args::ContainerArgs;
use libcontainer::process::channel::{InitReceiver, MainSender};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};

use crate::cgroups::Cgroups;

/// Prepares the container and waits for `start`; on success it does not return (the
/// container's process replaces it).
pub fn container_init(
    args: &ContainerArgs,
    cgroups: &Cgroups,
    main_tx: &mut MainSender,
    init_rx: &mut InitReceiver,
) -> Result<()> {
    let spec = args.spec.as_ref();
    let linux = spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let syscall = args.syscall.create_syscall();
    let namespaces = Namespaces::try_from(linux.namespaces().as_ref())?;

    nix::unistd::setsid().context("setsid")?;
    if args.console_socket.is_none() {
        for (fd, target) in [(args.stdin, 0), (args.stdout, 1), (args.stderr, 2)] {
            if let Some(fd) = fd {
                nix::unistd::dup2(fd, target).context("cannot set up stdio")?;
                nix::unistd::close(fd).context("cannot set up stdio")?;
            }
        }
    }

    // Every namespace but the pid one (the intermediate entered it for us); the mount
    // namespace last, as a namespace path may be under /proc.
    namespaces
        .apply_namespaces(|flag| {
            flag != CloneFlags::CLONE_NEWPID && flag != CloneFlags::CLONE_NEWUSER
        })
        .context("cannot enter the container's namespaces")?;
    if let Some(uts) = namespaces.get(LinuxNamespaceType::Uts)? {
        if uts.path().is_none() {
            if let Some(hostname) = spec.hostname() {
                syscall
                    .set_hostname(hostname)
                    .context("cannot set the hostname")?;
            }
            if let Some(domainname) = spec.domainname() {
                syscall
                    .set_domainname(domainname)
                    .context("cannot set the domain name")?;
            }
        }
    }
    if process.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
        }
    }

    let rootfs = args.rootfs.as_path();
    let cgroup_ns = namespaces.get(LinuxNamespaceType::Cgroup)?.is_some();
    crate::rootfs::prepare(spec, rootfs, cgroups, cgroup_ns)
        .context("cannot prepare the rootfs")?;

    let hooks = spec.hooks().as_ref();
    let state = args.container.as_ref().map(|c| &c.state);
    if let Some(hooks) = hooks {
        // prestart and createRuntime run in the main process (runtime namespaces), now that
        // ours exist; createContainer here, in the container's, before pivot_root.
        main_tx.hook_request()?;
        init_rx.wait_for_hook_request_done()?;
        libcontainer::hooks::run_hooks(hooks.create_container().as_ref(), state, None, None, None)
            .context("createContainer hook failed")?;
    }

    if namespaces.get(LinuxNamespaceType::Mount)?.is_none() {
        bail!("a container needs its own mount namespace here");
    }
    syscall
        .pivot_rootfs(rootfs)
        .context("cannot pivot_root into the rootfs")?;
    match linux.rootfs_propagation().as_deref() {
        Some("shared") => remount_root_propagation(MsFlags::MS_SHARED)?,
        Some("unbindable") => remount_root_propagation(MsFlags::MS_UNBINDABLE)?,
        _ => {}
    }
    reopen_dev_null()?;
    for (key, value) in linux.sysctl().iter().flatten() {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .with_context(|| format!("cannot set sysctl {key}={value}"))?;
    }
    if let Some(console) = args.console_socket {
        libcontainer::tty::setup_console(syscall.as_ref(), console, true)
            .context("cannot set up the console")?;
    }
    if let Some(umask) = process.user().umask() {
        let mode = nix::sys::stat::Mode::from_bits(umask)
            .with_context(|| format!("invalid umask {umask:o}"))?;
        nix::sys::stat::umask(mode);
    }

    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        let flags = nix::sys::statfs::statfs("/")
            .context("statfs /")?
            .flags()
            .bits();
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_RDONLY
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::from_bits_truncate(flags),
            None::<&str>,
        )
        .context("cannot remount / read-only")?;
    }
    for path in linux.readonly_paths().iter().flatten() {
        readonly_path(Path::new(path)).with_context(|| format!("cannot make {path} read-only"))?;
    }
    if let Some(paths) = linux.masked_paths() {
        masked_paths(paths)?;
    }

    // chdir before dropping to the container's user: it may lack the right to get there.
    let cwd = process.cwd();
    let chdir_again = if cwd.as_os_str().is_empty() {
        false
    } else {
        match nix::unistd::chdir(cwd) {
            Ok(()) => false,
            Err(nix::errno::Errno::EPERM) => true,
            Err(e) => return Err(e).with_context(|| format!("cannot chdir to {}", cwd.display())),
        }
    };
    let user = process.user();
    if let Some(gids) = user.additional_gids().as_ref().filter(|g| !g.is_empty()) {
        let gids: Vec<libc::gid_t> = gids.clone();
        // SAFETY: setgroups reads `gids.len()` ids from the vector.
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot set supplementary groups");
        }
    }
    syscall
        .set_id(Uid::from_raw(user.uid()), Gid::from_raw(user.gid()))
        .with_context(|| format!("cannot become uid {} gid {}", user.uid(), user.gid()))?;

    let mut envs: HashMap<String, String> =
        libcontainer::utils::parse_env(process.env().as_deref().unwrap_or_default());
    // systemd socket activation: the LISTEN_FDS passed to us stay open for the container.
    let listen_fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(0);
    if listen_fds > 0 {
        envs.insert("LISTEN_FDS".into(), listen_fds.to_string());
        envs.insert("LISTEN_PID".into(), "1".into());
    }
    // Everything past stdio and the preserved fds closes on exec (GHSA-xr7r-f8xq-vfvv); not
    // now, the notify socket is still needed.
    syscall
        .close_range(args.preserve_fds + listen_fds)
        .context("cannot mark fds close-on-exec")?;

    // Without no_new_privs, loading a seccomp filter needs CAP_SYS_ADMIN: before dropping
    // capabilities. With it, as late as possible.
    let seccomp = linux.seccomp().as_ref();
    let no_new_privs = process.no_new_privileges() == Some(true);
    if let Some(seccomp) = seccomp.filter(|_| !no_new_privs) {
        load_seccomp(seccomp)?;
    }
    libcontainer::capabilities::reset_effective(syscall.as_ref())
        .context("cannot reset effective capabilities")?;
    if let Some(caps) = process.capabilities() {
        libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
            .context("cannot drop capabilities")?;
    }
    if chdir_again {
        nix::unistd::chdir(cwd).with_context(|| format!("cannot chdir to {}", cwd.display()))?;
    }
    // The working directory must be inside the container's root (GHSA-xr7r-f8xq-vfvv).
    let here = nix::unistd::getcwd().context("the working directory is not reachable")?;
    if !here.is_absolute() {
        bail!("the working directory is outside the container");
    }
    if let Some(seccomp) = seccomp.filter(|_| no_new_privs) {
        load_seccomp(seccomp)?;
    }

    if envs.get("HOME").is_none_or(|h| h.is_empty()) {
        // Like runc: the user's home from the container's /etc/passwd, `/` without one.
        let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let home = home_of(&passwd, user.uid()).unwrap_or("/");
        envs.insert("HOME".into(), home.into());
    }
    let start_container_env = envs.clone();
    args.executor.validate(spec)?;
    args.executor.setup_envs(envs)?;

    main_tx.init_ready()?;
    main_tx.close()?;
    args.notify_listener
        .wait_for_container_start()
        .context("waiting for start")?;
    args.notify_listener.close()?;
    if let Some(hooks) = hooks {
        libcontainer::hooks::run_hooks(
            hooks.start_container().as_ref(),
            state,
            None,
            None,
            Some(&start_container_env),
        )
        .context("startContainer hook failed")?;
    }
    if process.args().is_none() {
        bail!("config.json's process has no args");
    }
    args.executor.exec(spec)?;
    unreachable!("the executor returns only on failure");
}

/// The home directory of `uid` in passwd(5) text. Parsed here rather than through libc's
/// getpwuid: after pivot_root that would follow the container's /etc/nsswitch.conf and could
/// load a shared library from the container's image into this still-privileged process.
fn home_of(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse() == Ok(uid)).then(|| fields[5])
    })
}

fn load_seccomp(seccomp: &libcontainer::oci_spec::runtime::LinuxSeccomp) -> Result<()> {
    let seccomp = masked_equal_as_runc(seccomp);
    let notify_fd = libcontainer::seccomp::initialize_seccomp(&seccomp)
        .context("cannot load the seccomp filter")?;
    if let Some(fd) = notify_fd {
        // SAFETY: initialize_seccomp handed us this fd; closing it once is ours to do.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        bail!("seccomp notify actions need a listener path");
    }
    Ok(())
}

/// runc reads `SCMP_CMP_MASKED_EQ` as `(arg & value) == valueTwo` (libseccomp's datum_a is
/// the mask), and docker's and containerd's profiles are written that way (their `clone` rule:
/// `value` = the namespace flags, `valueTwo` = 0). libcontainer 0.7 hands `valueTwo` to
/// libseccomp as the mask, which turns that rule into "always allowed"; swapping the two here
/// gives profiles the meaning they have under runc (tests/runtime.rs
/// `seccomp_masked_equal_reads_like_runc`).
fn masked_equal_as_runc(
    seccomp: &libcontainer::oci_spec::runtime::LinuxSeccomp,
) -> libcontainer::oci_spec::runtime::LinuxSeccomp {
    use libcontainer::oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompOperator};
    let mut seccomp = seccomp.clone();
    let Some(mut syscalls) = seccomp.syscalls().clone() else {
        return seccomp;
    };
    for syscall in syscalls.iter_mut() {
        let Some(mut args) = syscall.args().clone() else {
            continue;
        };
        for arg in args.iter_mut() {
            if arg.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                let swapped = LinuxSeccompArgBuilder::default()
                    .index(arg.index())
                    .value(arg.value_two().unwrap_or(0))
                    .value_two(arg.value())
                    .op(arg.op())
                    .build();
                if let Ok(swapped) = swapped {
                    *arg = swapped;
                }
            }
        }
        syscall.set_args(Some(args));
    }
    seccomp.set_syscalls(Some(syscalls));
    seccomp
}

fn remount_root_propagation(flags: MsFlags) -> Result<()> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .with_context(|| format!("cannot set / to {flags:?}"))
}

/// stdio that was the host's /dev/null now points at the container's.
fn reopen_dev_null() -> Result<()> {
    let dev_null = fs::File::open("/dev/null").context("cannot open /dev/null in the container")?;
    let null = nix::sys::stat::fstat(dev_null.as_raw_fd())?;
    if null.st_mode & libc::S_IFMT != libc::S_IFCHR || null.st_rdev != libc::makedev(1, 3) {
        bail!("/dev/null in the container is not the null device");
    }
    for fd in 0..3 {
        let stat = nix::sys::stat::fstat(fd)?;
        if stat.st_mode & libc::S_IFMT == libc::S_IFCHR && stat.st_rdev == null.st_rdev {
            nix::unistd::dup2(dev_null.as_raw_fd(), fd)?;
        }
    }
    Ok(())
}

fn readonly_path(path: &Path) -> Result<()> {
    match nix::mount::mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => {}
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    nix::mount::mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY,
        None::<&str>,
    )?;
    Ok(())
}

/// Directories get an empty read-only tmpfs over them, files the null device.
fn masked_paths(paths: &[String]) -> Result<()> {
    for path in paths.iter().map(Path::new) {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        let result = if meta.is_dir() {
            nix::mount::mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            nix::mount::mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        result.with_context(|| format!("cannot mask {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::home_of;

    #[test]
    fn home_comes_from_the_matching_passwd_line() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                      # comment\n\
                      broken:line\n\
                      app:x:1000:1000:App,,,:/home/app:/bin/false\n";
        assert_eq!(home_of(passwd, 0), Some("/root"));
        assert_eq!(home_of(passwd, 1000), Some("/home/app"));
        assert_eq!(home_of(passwd, 7), None);
    }
}
