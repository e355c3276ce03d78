//! The pod sandbox: network, IPC and UTS namespaces shared by the pod's containers, held for
//! the pod's life, and the files every container gets (`/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`).
//!
//! Why pinned namespaces and no pause container: a namespace lives as long as something
//! refers to it; a bind mount of `/proc/thread-self/ns/<type>` is such a reference and costs
//! no process (CRI-O's `pinns` does the same). A short-lived thread unshares the three
//! namespaces, sets the pod's hostname and brings `lo` up, and the bind mounts under the
//! pod's directory keep them. Containers join them by path in their OCI spec, and CNI
//! configures the network one by its path. They survive a kubelet restart untouched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// The namespaces a sandbox pins, as named under /proc/<pid>/ns.
pub const PINNED: [&str; 3] = ["net", "ipc", "uts"];

/// Paths of a sandbox's pinned namespaces.
pub fn ns_path(pod_dir: &Path, ns: &str) -> PathBuf {
    pod_dir.join("ns").join(ns)
}

/// Creates and pins the sandbox's namespaces under `pod_dir/ns/`.
pub fn pin_namespaces(pod_dir: &Path, hostname: &str) -> io::Result<()> {
    let ns_dir = pod_dir.join("ns");
    fs::create_dir_all(&ns_dir)?;
    for ns in PINNED {
        fs::File::create(ns_dir.join(ns))?;
    }
    let hostname = hostname.to_string();
    let ns_dir_for_thread = ns_dir.clone();
    // A thread of its own: unshare changes only the calling thread's namespaces, and the
    // thread ends right after, so no other work ever runs in them.
    let pinned = std::thread::spawn(move || -> io::Result<()> {
        use nix::sched::CloneFlags;
        nix::sched::unshare(
            CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
        )
        .map_err(io::Error::from)?;
        nix::unistd::sethostname(&hostname).map_err(io::Error::from)?;
        loopback_up()?;
        for ns in PINNED {
            let source = format!("/proc/thread-self/ns/{ns}");
            nix::mount::mount(
                Some(source.as_str()),
                &ns_dir_for_thread.join(ns),
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?;
    if let Err(e) = pinned {
        let _ = unpin_namespaces(pod_dir);
        return Err(e);
    }
    Ok(())
}

/// Whether the sandbox's namespaces are (still) pinned.
pub fn namespaces_pinned(pod_dir: &Path) -> bool {
    PINNED.iter().all(|ns| is_nsfs(&ns_path(pod_dir, ns)))
}

fn is_nsfs(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == NSFS_MAGIC)
        .unwrap_or(false)
}

/// Releases the namespaces (the network one goes once no process is left in it).
pub fn unpin_namespaces(pod_dir: &Path) -> io::Result<()> {
    for ns in PINNED {
        let path = ns_path(pod_dir, ns);
        match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let _ = fs::remove_dir(pod_dir.join("ns"));
    Ok(())
}

/// `ip link set lo up` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket() takes no pointers; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a valid descriptor we just opened and nobody else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut req: libc::ifreq = {
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        unsafe { std::mem::zeroed() }
    };
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFFLAGS reads the flags into `req`, a valid ifreq with a NUL-terminated name.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union's flags member was just filled by SIOCGIFFLAGS.
    unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `req`, a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The pod's hostname: spec.hostname or the pod name, cut to 63 characters without a
/// trailing '-' or '.' (upstream's GeneratePodHostNameAndDomain).
pub fn hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut cut: String = name.chars().take(63).collect();
    while cut.ends_with('-') || cut.ends_with('.') {
        cut.pop();
    }
    cut
}

/// `<hostname>.<subdomain>.<ns>.svc.<domain>` when the pod names a subdomain.
pub fn fqdn(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let subdomain = pod
        .spec
        .as_ref()?
        .subdomain
        .clone()
        .filter(|s| !s.is_empty())?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!(
        "{}.{subdomain}.{namespace}.svc.{cluster_domain}",
        hostname(pod)
    ))
}

/// The pod's /etc/hosts (upstream's managed hosts file, tab-separated).
pub fn hosts_file(pod: &Pod, pod_ips: &[String], cluster_domain: &str) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let host = hostname(pod);
    for ip in pod_ips {
        match fqdn(pod, cluster_domain) {
            Some(f) => text.push_str(&format!("{ip}\t{f}\t{host}\n")),
            None => text.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        text.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            text.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    text
}

/// The pod's resolv.conf for its dnsPolicy (upstream's `pkg/kubelet/network/dns`).
pub fn resolv_conf(
    pod: &Pod,
    cluster_dns: &[String],
    cluster_domain: &str,
    node_resolv: &str,
) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let (node_servers, node_searches, node_options) = parse_resolv(node_resolv);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster_first = match policy.as_str() {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match policy.as_str() {
            "None" => (Vec::new(), Vec::new(), Vec::new()),
            _ if cluster_first && !cluster_dns.is_empty() => {
                let mut searches = vec![
                    format!("{namespace}.svc.{cluster_domain}"),
                    format!("svc.{cluster_domain}"),
                    cluster_domain.to_string(),
                ];
                searches.extend(node_searches);
                (cluster_dns.to_vec(), searches, vec!["ndots:5".to_string()])
            }
            _ => (node_servers, node_searches, node_options),
        };
    if let Some(config) = spec.dns_config {
        servers.extend(config.nameservers.unwrap_or_default());
        searches.extend(config.searches.unwrap_or_default());
        for option in config.options.unwrap_or_default() {
            let Some(name) = option.name else { continue };
            let text = match option.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(text);
        }
    }
    servers.dedup();
    servers.truncate(3);
    let mut seen = std::collections::HashSet::new();
    searches.retain(|s| seen.insert(s.clone()));
    searches.truncate(32);
    let mut text = String::new();
    if !searches.is_empty() {
        text.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        text.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        text.push_str(&format!("options {}\n", options.join(" ")));
    }
    text
}

fn parse_resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                searches = words.map(str::to_string).collect();
            }
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "demo"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn cluster_first_resolv_conf() {
        let p = pod(json!({"containers": []}));
        let text = resolv_conf(
            &p,
            &["10.96.0.10".into()],
            "cluster.local",
            "nameserver 192.168.56.1\nsearch lab\n",
        );
        assert_eq!(
            text,
            "search demo.svc.cluster.local svc.cluster.local cluster.local lab\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_and_none_policies() {
        let p = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        let text = resolv_conf(
            &p,
            &["10.96.0.10".into()],
            "cluster.local",
            "nameserver 1.1.1.1\n",
        );
        assert_eq!(text, "nameserver 1.1.1.1\n");
        let p = pod(json!({"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["x.y"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let text = resolv_conf(
            &p,
            &["10.96.0.10".into()],
            "cluster.local",
            "nameserver 1.1.1.1\n",
        );
        assert_eq!(
            text,
            "search x.y\nnameserver 9.9.9.9\noptions ndots:2 edns0\n"
        );
        // hostNetwork with ClusterFirst falls back to the node's resolver, as upstream.
        let p = pod(json!({"containers": [], "hostNetwork": true}));
        let text = resolv_conf(
            &p,
            &["10.96.0.10".into()],
            "cluster.local",
            "nameserver 1.1.1.1\n",
        );
        assert_eq!(text, "nameserver 1.1.1.1\n");
    }

    #[test]
    fn hosts_file_with_subdomain_and_aliases() {
        let p = pod(
            json!({"containers": [], "hostname": "web-0", "subdomain": "web",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}),
        );
        let text = hosts_file(&p, &["10.244.1.5".into()], "cluster.local");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.244.1.5\tweb-0.web.demo.svc.cluster.local\tweb-0\n"));
        assert!(text.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"));
    }

    #[test]
    fn long_hostnames_are_cut() {
        let mut p = pod(json!({"containers": []}));
        p.metadata.name = Some(format!("{}-{}", "a".repeat(62), "b"));
        assert_eq!(hostname(&p), "a".repeat(62));
    }
}
