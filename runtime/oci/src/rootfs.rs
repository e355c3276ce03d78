//! The container's root filesystem as skiff's own init (init.rs) prepares it before
//! `pivot_root`: the spec's mounts, the cgroup filesystem, the device nodes and /dev links.
//!
//! Why not libcontainer's `RootFS::prepare_rootfs`: it resolves every mount destination
//! through libpathrs, which for each path opens the root afresh, reopens and verifies
//! intermediate handles through procfs (readlink of /proc/self/fd/N, statx, fstatfs) and
//! closes detached mounts — ~0.25 ms per mount, ~4 ms for runc's default spec on cgroup v1
//! (seven mounts plus one bind per cgroup hierarchy), the largest part of a container start.
//! The kernel gives the same guarantee in one call: `openat2(RESOLVE_IN_ROOT)` resolves a
//! path as if the rootfs were `/`, so `..` and absolute symlinks in the image cannot leave it,
//! and refuses magic links. Every destination is resolved (and created) that way and mounted
//! onto through its `/proc/self/fd/N` handle, never by a path a container image could
//! redirect; the mount itself is one `mount(2)` (two for flags a bind ignores).
//!
//! Semantics follow runc where libcontainer 0.7 differs: mount propagation options
//! (`rshared`, `private`, …) are applied, and on cgroup v1 a read-only `cgroup` mount makes
//! the hierarchy binds and their tmpfs read-only too.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{LinuxDevice, Mount as SpecMount, Spec};
use libcontainer::rootfs::utils::{default_devices, parse_mount, to_sflag};
use nix::mount::MsFlags;
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::cgroups::{hierarchy_key, Cgroups, Layout};

/// Propagation flags: never part of a mount call itself (`propagation_of` applies the spec's
/// afterwards, each with its own call, as the kernel requires).
const PROPAGATION: MsFlags = MsFlags::MS_SHARED
    .union(MsFlags::MS_SLAVE)
    .union(MsFlags::MS_PRIVATE)
    .union(MsFlags::MS_UNBINDABLE);

/// Mounts every spec mount under `rootfs`, creates the devices and links in its /dev.
/// Runs in the container's new mount namespace, before `pivot_root`.
pub fn prepare(spec: &Spec, rootfs: &Path, cgroups: &Cgroups, cgroup_ns: bool) -> Result<()> {
    let linux = spec
        .linux()
        .as_ref()
        .context("config.json has no linux section")?;
    let propagation = match linux.rootfs_propagation().as_deref() {
        Some("shared") => MsFlags::MS_SHARED,
        Some("private") => MsFlags::MS_PRIVATE,
        Some("slave" | "unbindable") | None => MsFlags::MS_SLAVE,
        Some(other) => bail!("unknown rootfs propagation {other:?}"),
    };
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | propagation,
        None::<&str>,
    )
    .context("cannot set the propagation of /")?;
    if propagation == MsFlags::MS_SHARED {
        // pivot_root refuses a shared parent mount; with rslave/rprivate it is not shared.
        libcontainer::rootfs::Mount::new()
            .make_parent_mount_private(rootfs)
            .map_err(|e| anyhow::anyhow!("cannot make the rootfs' parent mount private: {e}"))?;
    }
    nix::mount::mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("cannot bind mount the rootfs {}", rootfs.display()))?;
    let root = Root::new(rootfs)?;

    let mut host_cgroups = None;
    for mount in spec.mounts().iter().flatten() {
        mount_one(&root, mount, cgroups, cgroup_ns, &mut host_cgroups)
            .with_context(|| format!("cannot mount {}", mount.destination().display()))?;
    }

    let dev = root.mkdir_all(Path::new("/dev"))?;
    // Like libcontainer and runc: the spec's devices, then the defaults it does not name.
    let extra = linux.devices().clone().unwrap_or_default();
    let defaults = default_devices()
        .into_iter()
        .filter(|d| !extra.iter().any(|e| e.path() == d.path()));
    let old_umask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let created = extra
        .iter()
        .cloned()
        .chain(defaults)
        .try_for_each(|device| root.mknod(&device));
    nix::sys::stat::umask(old_umask);
    created?;

    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        symlink_at(target, &dev, name)?;
    }
    match rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(io::Error::from(e)).context("cannot remove /dev/ptmx"),
    }
    symlink_at("pts/ptmx", &dev, "ptmx")?;
    Ok(())
}

/// A symlink `name` → `target` in `dir`; one already there is kept.
fn symlink_at(target: &str, dir: &OwnedFd, name: &str) -> Result<()> {
    match rustix::fs::symlinkat(target, dir, name) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => {
            Err(io::Error::from(e)).with_context(|| format!("cannot link {name} to {target}"))
        }
    }
}

fn mount_one(
    root: &Root,
    mount: &SpecMount,
    cgroups: &Cgroups,
    cgroup_ns: bool,
    host_cgroups: &mut Option<HashMap<String, String>>,
) -> Result<()> {
    let mut options = parse_mount(mount).map_err(|e| anyhow::anyhow!("{e}"))?;
    libcontainer::rootfs::Mount::new()
        .check_proc_mount(&root.path, mount)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let destination = mount.destination();
    let typ = mount.typ().as_deref();
    match typ {
        Some("cgroup") => {
            return match cgroups.layout() {
                Layout::V1 => {
                    mount_cgroup_v1(root, mount, cgroups, options.flags, cgroup_ns, host_cgroups)
                }
                Layout::V2 => mount_cgroup_v2(root, mount, cgroups, options.flags, cgroup_ns),
            };
        }
        Some("proc" | "sysfs") => {
            // They must land on a real directory (GHSA-fh74-hm69-rqjw): a symlink in the image
            // could otherwise put them anywhere.
            if let Some(kind) = root.kind_of(destination)? {
                if !kind.is_dir() {
                    bail!(
                        "{} must be mounted on an ordinary directory",
                        typ.unwrap_or("")
                    );
                }
            }
        }
        _ if destination == Path::new("/dev") => options.flags.remove(MsFlags::MS_RDONLY),
        _ => {}
    }
    let source = mount
        .source()
        .clone()
        .unwrap_or_else(|| PathBuf::from("none"));
    let is_bind = libcontainer::rootfs::utils::is_bind(mount);
    if is_bind {
        let source = fs::canonicalize(&source)
            .with_context(|| format!("bind source {} does not exist", source.display()))?;
        let target = if source.is_dir() {
            root.mkdir_all(destination)?
        } else {
            root.create_file(destination)?
        };
        bind(root, &source, destination, &target, options.flags)?;
    } else {
        let target = root.mkdir_all(destination)?;
        let data = options.data.join(",");
        nix::mount::mount(
            Some(&source),
            fd_path(&target).as_str(),
            typ,
            options.flags - PROPAGATION - MsFlags::MS_REC,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .with_context(|| format!("mount -t {} {}", typ.unwrap_or(""), source.display()))?;
    }
    let propagations = propagation_of(mount);
    if propagations.is_empty() && options.rec_attr.is_none() {
        return Ok(());
    }
    // Reopened: the fd still names the directory under the new mount, not its root.
    let mounted = root.open(destination)?;
    for propagation in propagations {
        nix::mount::mount(
            None::<&str>,
            fd_path(&mounted).as_str(),
            None::<&str>,
            propagation,
            None::<&str>,
        )
        .with_context(|| format!("cannot set the mount's propagation to {propagation:?}"))?;
    }
    if let Some(attr) = options.rec_attr {
        mount_setattr_recursive(&mounted, &attr)?;
    }
    Ok(())
}

/// The mount's propagation options in order, as runc applies them. (libcontainer's
/// `parse_mount` reads them as flags to clear, so they never reach the kernel there.)
fn propagation_of(mount: &SpecMount) -> Vec<MsFlags> {
    let recursive = |flag: MsFlags| flag | MsFlags::MS_REC;
    mount
        .options()
        .iter()
        .flatten()
        .filter_map(|option| match option.as_str() {
            "shared" => Some(MsFlags::MS_SHARED),
            "rshared" => Some(recursive(MsFlags::MS_SHARED)),
            "slave" => Some(MsFlags::MS_SLAVE),
            "rslave" => Some(recursive(MsFlags::MS_SLAVE)),
            "private" => Some(MsFlags::MS_PRIVATE),
            "rprivate" => Some(recursive(MsFlags::MS_PRIVATE)),
            "unbindable" => Some(MsFlags::MS_UNBINDABLE),
            "runbindable" => Some(recursive(MsFlags::MS_UNBINDABLE)),
            _ => None,
        })
        .collect()
}

/// A bind mount of `source` onto `target` (`destination`'s handle), remounted for the flags
/// (ro, nosuid, …) that the first bind ignores.
fn bind(
    root: &Root,
    source: &Path,
    destination: &Path,
    target: &OwnedFd,
    flags: MsFlags,
) -> Result<()> {
    let bind_flags = MsFlags::MS_BIND | (flags & MsFlags::MS_REC);
    nix::mount::mount(
        Some(source),
        fd_path(target).as_str(),
        None::<&str>,
        bind_flags,
        None::<&str>,
    )
    .with_context(|| format!("bind {}", source.display()))?;
    let extra = flags - PROPAGATION - MsFlags::MS_BIND - MsFlags::MS_REC - MsFlags::MS_REMOUNT;
    if !extra.is_empty() {
        // `target` still names the directory under the new mount: the remount goes through a
        // fresh handle, which lands on the mount's root.
        let mounted = root.open(destination)?;
        let remount_flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra;
        nix::mount::mount(
            None::<&str>,
            fd_path(&mounted).as_str(),
            None::<&str>,
            remount_flags,
            None::<&str>,
        )
        .with_context(|| format!("remount the bind of {} with {extra:?}", source.display()))?;
    }
    Ok(())
}

/// Recursive mount attributes (`rro`, `rnosuid`, … options) on the whole mounted tree.
fn mount_setattr_recursive(
    target: &OwnedFd,
    attr: &libcontainer::syscall::linux::MountAttr,
) -> Result<()> {
    // SAFETY: mount_setattr reads `attr` (size given) and an empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            attr as *const _,
            size_of::<libcontainer::syscall::linux::MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("mount_setattr");
    }
    Ok(())
}

/// cgroup v1 (legacy or hybrid host): a tmpfs with one directory per hierarchy — the
/// container's own cgroup bound from the host, or with a cgroup namespace a fresh mount of
/// the hierarchy (which shows the namespace's root) — and links for co-mounted controllers.
fn mount_cgroup_v1(
    root: &Root,
    mount: &SpecMount,
    cgroups: &Cgroups,
    flags: MsFlags,
    cgroup_ns: bool,
    host_cgroups: &mut Option<HashMap<String, String>>,
) -> Result<()> {
    let destination = mount.destination();
    let tmpfs_flags = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let dir = root.mkdir_all(destination)?;
    nix::mount::mount(
        Some("tmpfs"),
        fd_path(&dir).as_str(),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .context("cannot mount the tmpfs for cgroup hierarchies")?;
    let dir = root.open(destination)?;
    let hierarchy_flags = tmpfs_flags | (flags & MsFlags::MS_RDONLY);
    let own = match host_cgroups {
        Some(own) => own,
        None => host_cgroups.insert(own_cgroups()?),
    };
    for hierarchy in cgroups.v1_hierarchies() {
        let name = hierarchy
            .mount_point
            .file_name()
            .and_then(|n| n.to_str())
            .context("cgroup hierarchy without a name")?
            .to_string();
        let sub = destination.join(&name);
        if cgroup_ns {
            let target = root.mkdir_all(&sub)?;
            nix::mount::mount(
                Some("cgroup"),
                fd_path(&target).as_str(),
                Some("cgroup"),
                hierarchy_flags,
                Some(hierarchy.options.as_str()),
            )
            .with_context(|| format!("cannot mount cgroup hierarchy {name}"))?;
        } else {
            let Some(path) = own.get(&hierarchy.options) else {
                continue; // not a hierarchy this process is in (runc skips it too)
            };
            let source = hierarchy.mount_point.join(path.trim_start_matches('/'));
            let target = root.mkdir_all(&sub)?;
            bind(
                root,
                &source,
                &sub,
                &target,
                hierarchy_flags | MsFlags::MS_REC,
            )?;
        }
        // cpu,cpuacct mounted together: `cpu` and `cpuacct` lead to it, as on the host.
        if name.contains(',') {
            for single in name.split(',') {
                symlink_at(&name, &dir, single)?;
            }
        }
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        nix::mount::mount(
            None::<&str>,
            fd_path(&dir).as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | tmpfs_flags,
            Some("mode=755"),
        )
        .context("cannot remount the cgroup tmpfs read-only")?;
    }
    Ok(())
}

/// cgroup v2. In a cgroup namespace: a fresh cgroup2 mount, which shows the namespace's root
/// (the container's cgroup). Without one: the container's own cgroup bound from the host, as
/// on v1 — runc mounts cgroup2 afresh there too, which shows the host's whole hierarchy and,
/// in the host's cgroup namespace, takes the kernel's global cgroup rwsem (an RCU grace
/// period after a quiet spell, ~20 ms here) for every container.
fn mount_cgroup_v2(
    root: &Root,
    mount: &SpecMount,
    cgroups: &Cgroups,
    flags: MsFlags,
    cgroup_ns: bool,
) -> Result<()> {
    let target = root.mkdir_all(mount.destination())?;
    let mount_flags = flags - PROPAGATION - MsFlags::MS_REC - MsFlags::MS_BIND;
    if cgroup_ns
        && nix::mount::mount(
            Some("cgroup"),
            fd_path(&target).as_str(),
            Some("cgroup2"),
            mount_flags,
            None::<&str>,
        )
        .is_ok()
    {
        return Ok(());
    }
    let own = cgroups
        .v2_dir()
        .context("the container has no cgroup2 directory")?;
    bind(
        root,
        own,
        mount.destination(),
        &target,
        mount_flags | MsFlags::MS_REC,
    )
}

/// This process's cgroup per hierarchy, keyed by the name `/proc/self/cgroup` gives it in
/// `hierarchy_key`'s order, as `Hierarchy::options` is (`cpu,cpuacct`, `name=systemd`, `` for
/// cgroup2).
fn own_cgroups() -> Result<HashMap<String, String>> {
    let text = fs::read_to_string("/proc/self/cgroup").context("cannot read /proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            Some((hierarchy_key(fields.next()?), fields.next()?.to_string()))
        })
        .collect())
}

/// `/proc/self/fd/N`: mount(2) follows this magic link to exactly the object the fd holds.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// The rootfs, with every path under it resolved by the kernel as if it were `/`.
struct Root {
    path: PathBuf,
    fd: OwnedFd,
}

impl Root {
    fn new(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("cannot open the rootfs {}", path.display()))?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    fn resolve(&self, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let relative = relative(path);
        rustix::fs::openat2(
            &self.fd,
            relative.as_path(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// An O_PATH handle on `path` inside the rootfs (following symlinks inside it).
    fn open(&self, path: &Path) -> Result<OwnedFd> {
        self.resolve(path, OFlags::PATH)
            .map_err(io::Error::from)
            .with_context(|| format!("cannot open {} in the rootfs", path.display()))
    }

    /// What `path` is (without following a final symlink), or `None` if it does not exist.
    fn kind_of(&self, path: &Path) -> Result<Option<rustix::fs::FileType>> {
        let (parent, name) = self.parent_of(path)?;
        match rustix::fs::statat(
            &parent,
            name.as_path(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => Ok(Some(rustix::fs::FileType::from_raw_mode(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => {
                Err(io::Error::from(e)).with_context(|| format!("cannot stat {}", path.display()))
            }
        }
    }

    /// The directory holding `path` (created if missing) and the last component's name.
    fn parent_of(&self, path: &Path) -> Result<(OwnedFd, PathBuf)> {
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?;
        let parent = path.parent().unwrap_or(Path::new("/"));
        Ok((self.mkdir_all(parent)?, PathBuf::from(name)))
    }

    /// Creates `path` (mode 0755) and its missing parents inside the rootfs and opens it. A
    /// dangling symlink on the way is followed inside the rootfs and its target created, as
    /// runc (libpathrs' `mkdir_all`) does.
    fn mkdir_all(&self, path: &Path) -> Result<OwnedFd> {
        self.mkdir_all_following(path, 0)
            .with_context(|| format!("cannot create {} in the rootfs", path.display()))
    }

    fn mkdir_all_following(&self, path: &Path, symlinks: u32) -> Result<OwnedFd> {
        match self.resolve(path, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io::Error::from(e).into()),
        }
        if symlinks > 40 {
            return Err(io::Error::from(rustix::io::Errno::LOOP).into());
        }
        let mut current = self
            .resolve(Path::new("/"), OFlags::PATH | OFlags::DIRECTORY)
            .map_err(io::Error::from)?;
        let mut walked = PathBuf::from("/");
        let relative_path = relative(path);
        let components: Vec<Component> = relative_path.components().collect();
        for (i, component) in components.iter().enumerate() {
            walked.push(component);
            if let Component::Normal(name) = component {
                match rustix::fs::mkdirat(&current, *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(io::Error::from(e))
                            .with_context(|| format!("mkdir {}", walked.display()))
                    }
                }
            }
            // Resolved again from the root: a symlink met on the way stays inside it.
            match self.resolve(&walked, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => current = fd,
                Err(rustix::io::Errno::NOENT) => {
                    let Component::Normal(name) = component else {
                        return Err(io::Error::from(rustix::io::Errno::NOENT).into());
                    };
                    // A dangling symlink: continue from its target.
                    let target = rustix::fs::readlinkat(&current, *name, Vec::new())
                        .map_err(io::Error::from)
                        .with_context(|| format!("open {}", walked.display()))?;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    let mut next = match target.is_absolute() {
                        true => target,
                        false => walked.parent().unwrap_or(Path::new("/")).join(target),
                    };
                    next.extend(&components[i + 1..]);
                    return self.mkdir_all_following(&next, symlinks + 1);
                }
                Err(e) => {
                    return Err(io::Error::from(e))
                        .with_context(|| format!("open {}", walked.display()))
                }
            }
        }
        Ok(current)
    }

    /// Creates an empty file at `path` (a file bind mount's target) unless something is there.
    fn create_file(&self, path: &Path) -> Result<OwnedFd> {
        let (parent, name) = self.parent_of(path)?;
        match rustix::fs::openat(
            &parent,
            name.as_path(),
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::WRONLY,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(_) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("cannot create {} in the rootfs", path.display()))
            }
        }
        self.open(path)
    }

    /// A device node; one already there is kept (as runc does).
    fn mknod(&self, device: &LinuxDevice) -> Result<()> {
        let path = device.path();
        if !path.starts_with("/dev") {
            bail!("{} is not a device path under /dev", path.display());
        }
        let (parent, name) = self.parent_of(path)?;
        let kind = match to_sflag(device.typ()) {
            nix::sys::stat::SFlag::S_IFBLK => rustix::fs::FileType::BlockDevice,
            nix::sys::stat::SFlag::S_IFIFO => rustix::fs::FileType::Fifo,
            _ => rustix::fs::FileType::CharacterDevice,
        };
        let dev = rustix::fs::makedev(device.major() as u32, device.minor() as u32);
        let mode = Mode::from_raw_mode(device.file_mode().unwrap_or(0o666));
        match rustix::fs::mknodat(&parent, name.as_path(), kind, mode, dev) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => return Ok(()),
            Err(e) => {
                return Err(io::Error::from(e))
                    .with_context(|| format!("cannot create device {}", path.display()))
            }
        }
        if device.uid().is_some() || device.gid().is_some() {
            rustix::fs::chownat(
                &parent,
                name.as_path(),
                device.uid().map(rustix::fs::Uid::from_raw),
                device.gid().map(rustix::fs::Gid::from_raw),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io::Error::from)
            .with_context(|| format!("cannot chown device {}", path.display()))?;
        }
        Ok(())
    }
}

/// `path` without its leading `/` (openat2 with RESOLVE_IN_ROOT treats both alike; a relative
/// path keeps `Path::join` from replacing the base).
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}
