//! One pod's worker (upstream's `pod_workers.go` + `SyncPod`): a task per pod that drives
//! what runs toward what the Pod says, so a slow image pull or a long grace period holds up
//! only its own pod.
//!
//! Each sync: the sandbox (namespaces, cgroup, CNI), the volumes, the containers' exits,
//! init containers in order (sidecars kept running), the regular containers with the restart
//! policy and upstream's backoff, the probes that are due, and the status when it changed. A
//! Pod with a deletionTimestamp (or gone from the API) is terminated: preStop, SIGTERM,
//! SIGKILL after the grace period, everything removed, then the final delete (grace 0, uid
//! precondition) that lets the API server drop the object.
//!
//! A static pod (from `--pod-manifest-path`, `file.rs`) goes through the same steps; what
//! differs is the API side: its status goes to its mirror pod (`mirror.rs`) when there is
//! one, the phase it keeps is its own last status (the file has none), and its end is not a
//! delete in the API (the mirror pod is `mirror.rs`'s business).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::mirror::MirrorUids;
use super::probes::{self, Kind};
use super::state::{self, ContainerRecord, Instance, SandboxRecord, Slot};
use super::{env, file, images, sandbox, spec, status, volumes};
use crate::{cgroups, cni, ContainerView, Kubelet, PodView};

/// What the manager tells a worker: the newest Pod, or None once it is gone from the API.
pub type PodUpdates = watch::Receiver<Option<Arc<Pod>>>;

/// How long until the next sync at the latest (upstream's PLEG relists every second).
const RESYNC: Duration = Duration::from_secs(1);

type ProbeResult = (String, String, Kind, Result<(), String>);

pub struct Worker {
    k: Arc<Kubelet>,
    uid: String,
    /// The newest Pod from the API.
    pod: Option<Arc<Pod>>,
    sandbox: Option<SandboxRecord>,
    slots: BTreeMap<String, Slot>,
    start_time: Option<Time>,
    last_sent: Option<Value>,
    probes: JoinSet<ProbeResult>,
    /// Probes in flight, by (container name, kind): one at a time each.
    probing: std::collections::HashSet<(String, usize)>,
    /// The sandbox of a finished (Succeeded/Failed) pod has been released.
    released: bool,
    /// A static pod's: where its mirror pod's uid is found (its status goes there).
    mirror: Option<Arc<MirrorUids>>,
    /// A static pod's last generated status: what the API's copy is for other pods.
    local_status: Option<k8s_openapi::api::core::v1::PodStatus>,
}

impl Worker {
    /// A worker for `uid`, starting from what was found on disk; `mirror` is Some for a
    /// static pod.
    pub fn new(
        k: Arc<Kubelet>,
        uid: String,
        sandbox: Option<SandboxRecord>,
        instances: Vec<Instance>,
        mirror: Option<Arc<MirrorUids>>,
    ) -> Worker {
        let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
        for instance in instances {
            let slot = slots.entry(instance.record.name.clone()).or_default();
            // Older instances of the same container: the newest is current, the one before
            // gives lastState; any older is deleted at the first sync.
            if let Some(previous) = slot.current.take() {
                slot.last = previous.terminated();
                let k = k.clone();
                tokio::spawn(async move { remove_instance(&k, &previous).await });
            }
            slot.finished_seen = instance.exit.as_ref().map(|_| Instant::now());
            slot.current = Some(instance);
        }
        let start_time = sandbox
            .as_ref()
            .and_then(|s| s.created_at.parse::<jiff::Timestamp>().ok())
            .map(Time);
        Worker {
            k,
            uid,
            pod: None,
            sandbox,
            slots,
            start_time,
            last_sent: None,
            probes: JoinSet::new(),
            probing: Default::default(),
            released: false,
            mirror,
            local_status: None,
        }
    }

    /// The pod as a sync sees it: a static pod carries its own last status.
    fn with_local_status(&self, pod: Arc<Pod>) -> Arc<Pod> {
        match (&self.mirror, &self.local_status) {
            (Some(_), Some(status)) => {
                let mut pod = (*pod).clone();
                pod.status = Some(status.clone());
                Arc::new(pod)
            }
            _ => pod,
        }
    }

    pub async fn run(mut self, mut updates: PodUpdates) {
        loop {
            let pod = updates.borrow_and_update().clone();
            let pod = pod.map(|p| self.with_local_status(p));
            if pod.is_some() {
                self.pod = pod.clone();
            }
            let done = match pod {
                None => {
                    self.terminate(None).await;
                    true
                }
                Some(pod) => self.sync(&pod).await,
            };
            if done {
                self.k.views.lock().expect("not poisoned").remove(&self.uid);
                return;
            }
            tokio::select! {
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The kubelet is stopping: leave everything running.
                        return;
                    }
                }
                Some(Ok((name, id, kind, result))) = self.probes.join_next(), if !self.probes.is_empty() => {
                    self.probed(name, id, kind, result).await;
                }
                _ = tokio::time::sleep(RESYNC) => {}
            }
        }
    }

    fn pod_dir(&self) -> PathBuf {
        state::pod_dir(&self.k.args.root_dir, &self.uid)
    }

    /// Puts the container's seccomp filter (`seccomp.rs`) into its finished spec, whose
    /// bounding set decides what RuntimeDefault lets through.
    fn seccomp(&self, pod: &Pod, c: &Container, config: &mut Value) -> Result<(), String> {
        let sc = spec::effective_security(pod, c);
        let profile = super::seccomp::profile(
            sc.seccomp_profile.as_ref(),
            sc.privileged.unwrap_or(false),
            self.k.args.seccomp_default,
            &self.k.args.root_dir,
        )?;
        let bounding: Vec<String> =
            serde_json::from_value(config["process"]["capabilities"]["bounding"].clone())
                .unwrap_or_default();
        match super::seccomp::filter(&profile, &bounding)? {
            Some(filter) => config["linux"]["seccomp"] = filter,
            None => {
                if let Some(linux) = config["linux"].as_object_mut() {
                    linux.remove("seccomp");
                }
            }
        }
        Ok(())
    }

    async fn event(&self, pod: &Pod, type_: &str, reason: &str, message: &str) {
        let reference = skiff_events::reference(pod);
        self.send_event(reference, type_, reason, message);
    }

    /// Events are written beside the sync, never in its way: a pod start does not wait for
    /// the three or four event writes it causes.
    fn send_event(
        &self,
        reference: k8s_openapi::api::core::v1::ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let k = self.k.clone();
        let (type_, reason, message) = (type_.to_string(), reason.to_string(), message.to_string());
        tokio::spawn(async move {
            let result = k
                .recorder
                .record(&k.client, &reference, &type_, &reason, &reason, &message)
                .await;
            if let Err(e) = result {
                tracing::debug!("event {reason}: {e}");
            }
        });
    }

    async fn container_event(
        &self,
        pod: &Pod,
        container: &str,
        init: bool,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let mut reference = skiff_events::reference(pod);
        let list = if init { "initContainers" } else { "containers" };
        reference.field_path = Some(format!("spec.{list}{{{container}}}"));
        self.send_event(reference, type_, reason, message);
    }

    /// One pass; true when the pod is finished with (terminated and deleted).
    async fn sync(&mut self, pod: &Arc<Pod>) -> bool {
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(Some(pod.clone())).await;
            return true;
        }
        if self.start_time.is_none() {
            self.start_time = Some(Time(jiff::Timestamp::now()));
        }
        self.refresh_exits();
        self.adopt_readiness(pod);
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            // Finished: nothing runs again; the network goes back, the records stay for
            // the status and logs until the pod is deleted.
            if !self.released {
                self.stop_all(pod, Duration::from_secs(0)).await;
                self.release_network().await;
                self.released = true;
            }
            self.publish(pod);
            return false;
        }
        if let Err(message) = self.ensure_sandbox(pod).await {
            self.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {message}"),
            )
            .await;
            for c in all_containers(pod) {
                let slot = self.slots.entry(c.name.clone()).or_default();
                if slot.current.is_none() {
                    slot.waiting = Some(("ContainerCreating".into(), String::new()));
                }
            }
            self.post_status(pod).await;
            return false;
        }
        let volume_paths = match volumes::ensure(
            &self.k.client,
            pod,
            &self.pod_dir(),
            &self.k.args.node_ip.to_string(),
        )
        .await
        {
            Ok(paths) => paths,
            Err(e) => {
                self.event(pod, "Warning", "FailedMount", &e.to_string())
                    .await;
                for c in all_containers(pod) {
                    let slot = self.slots.entry(c.name.clone()).or_default();
                    if slot.current.is_none() {
                        slot.waiting = Some(("ContainerCreating".into(), String::new()));
                    }
                }
                self.post_status(pod).await;
                return false;
            }
        };
        if self.run_init_containers(pod, &volume_paths).await {
            self.run_containers(pod, &volume_paths).await;
        }
        self.start_probes(pod);
        self.post_status(pod).await;
        self.publish(pod);
        false
    }

    /// Readiness of running instances the probes have not judged yet: without probes a
    /// started container is ready; one found running after a kubelet restart keeps what the
    /// API last said of it (same container id), so a restart does not flap the pod to
    /// not-ready while the probes catch up.
    fn adopt_readiness(&mut self, pod: &Pod) {
        let statuses = pod.status.as_ref().map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
                .cloned()
                .collect::<Vec<_>>()
        });
        for c in all_containers(pod) {
            let Some(slot) = self.slots.get_mut(&c.name) else {
                continue;
            };
            let Some(instance) = slot.current.as_mut().filter(|i| i.running()) else {
                continue;
            };
            if slot.probes.iter().any(|(ok, failed)| ok + failed > 0) {
                continue;
            }
            let reported = statuses.iter().flatten().find(|s| {
                s.name == c.name
                    && s.container_id.as_deref() == Some(&format!("skiff://{}", instance.record.id))
            });
            if c.startup_probe.is_none() {
                instance.started = true;
            } else if let Some(r) = reported {
                instance.started = instance.started || r.started.unwrap_or(false);
            }
            if c.readiness_probe.is_none() {
                instance.ready = instance.started;
            } else if let Some(r) = reported {
                instance.ready = instance.ready || r.ready;
            }
        }
    }

    /// Reads exit.json of every running instance.
    fn refresh_exits(&mut self) {
        let root = self.k.args.root_dir.clone();
        for slot in self.slots.values_mut() {
            let Some(instance) = slot.current.as_mut() else {
                continue;
            };
            if instance.exit.is_some() || instance.record.started_at.is_none() {
                continue;
            }
            if let Some(exit) = state::read_exit(&root, &instance.record.id) {
                let cgroup = self
                    .sandbox
                    .as_ref()
                    .map(|s| format!("{}/{}", s.cgroup_path, instance.record.id))
                    .unwrap_or_default();
                instance.oom_killed =
                    exit.exit_code == 137 && cgroups::oom_kills(&self.k.layout, &cgroup) > 0;
                instance.exit = Some(exit);
                instance.ready = false;
                slot.finished_seen = Some(Instant::now());
            } else if !state::shim_alive(&root, &instance.record.id)
                && state::read_exit(&root, &instance.record.id).is_none()
            {
                instance.exit = Some(crate::shim::Exit {
                    exit_code: 255,
                    signal: None,
                    finished_at: jiff::Timestamp::now().to_string(),
                });
                instance.ready = false;
                slot.finished_seen = Some(Instant::now());
            }
        }
    }

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let pod_dir = self.pod_dir();
        if let Some(existing) = &self.sandbox {
            if sandbox::namespaces_pinned(&pod_dir)
                && (existing.host_network || existing.network_ready)
            {
                return Ok(());
            }
            if !sandbox::namespaces_pinned(&pod_dir) {
                // The host rebooted (or someone removed the mounts): a new sandbox, and the
                // containers start again in it.
                self.event(
                    pod,
                    "Normal",
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.",
                )
                .await;
                self.stop_all(pod, Duration::from_secs(0)).await;
                self.release_network().await;
                self.sandbox = None;
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut record = match self.sandbox.clone() {
            Some(r) => r,
            None => {
                let qos = cgroups::qos_class(pod);
                let record = SandboxRecord {
                    id: new_id(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: self.uid.clone(),
                    host_network,
                    cgroup_path: cgroups::pod_path(&self.k.args.cgroup_root, qos, &self.uid),
                    cni_result: None,
                    pod_ips: Vec::new(),
                    created_at: jiff::Timestamp::now().to_string(),
                    network_ready: false,
                    static_pod: file::is_static(pod),
                };
                std::fs::create_dir_all(&pod_dir)
                    .map_err(|e| format!("creating {}: {e}", pod_dir.display()))?;
                state::write_json(&pod_dir.join("sandbox.json"), &record)
                    .map_err(|e| e.to_string())?;
                if !sandbox::namespaces_pinned(&pod_dir) {
                    sandbox::pin_namespaces(&pod_dir, &sandbox::hostname(pod))
                        .map_err(|e| format!("creating the pod's namespaces: {e}"))?;
                }
                cgroups::ensure_pod(
                    &self.k.layout,
                    &self.k.args.cgroup_root,
                    &record.cgroup_path,
                    &cgroups::pod_limits(pod),
                )
                .map_err(|e| format!("creating the pod cgroup: {e}"))?;
                record
            }
        };
        if host_network {
            record.pod_ips = vec![self.k.args.node_ip.to_string()];
        } else if !record.network_ready {
            let network = cni::load(&self.k.args.cni_conf_dir)
                .map_err(|e| format!("network plugin is not ready: {e}"))?;
            let netns = sandbox::ns_path(&pod_dir, "net");
            let attachment = cni::Attachment {
                container_id: &record.id,
                netns: &netns,
                ifname: "eth0",
                namespace: &namespace,
                pod_name: &name,
                pod_uid: &self.uid,
                port_mappings: port_mappings(pod),
            };
            let began = Instant::now();
            let result = network
                .add(&self.k.args.cni_bin_dirs(), &attachment)
                .await
                .map_err(|e| format!("failed to setup network for sandbox {:?}: {e}", record.id))?;
            tracing::info!(pod = %name, cni_ms = began.elapsed().as_millis() as u64, "pod network ready");
            record.pod_ips = cni::pod_ips(&result, "eth0");
            record.cni_result = Some(result);
            record.network_ready = true;
        }
        let hosts = if host_network {
            let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            format!("# Kubernetes-managed hosts file (host network).\n{node_hosts}")
        } else {
            sandbox::hosts_file(pod, &record.pod_ips, &self.k.args.cluster_domain)
        };
        let dns: Vec<String> = self
            .k
            .args
            .cluster_dns
            .iter()
            .map(|ip| ip.to_string())
            .collect();
        let resolv =
            sandbox::resolv_conf(pod, &dns, &self.k.args.cluster_domain, &self.k.node_resolv);
        for (file, text) in [
            ("etc-hosts", hosts),
            ("resolv.conf", resolv),
            ("hostname", format!("{}\n", sandbox::hostname(pod))),
        ] {
            std::fs::write(pod_dir.join(file), text).map_err(|e| format!("writing {file}: {e}"))?;
        }
        state::write_json(&pod_dir.join("sandbox.json"), &record).map_err(|e| e.to_string())?;
        self.sandbox = Some(record);
        Ok(())
    }

    /// Init containers in order; true once every one has succeeded (sidecars: started).
    async fn run_init_containers(
        &mut self,
        pod: &Arc<Pod>,
        volumes: &BTreeMap<String, PathBuf>,
    ) -> bool {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.init_containers.clone().unwrap_or_default() {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let current = self.slots.get(&c.name).and_then(|s| s.current.clone());
            match current {
                None => {
                    self.start_container(pod, &c, true, volumes).await;
                    if !sidecar {
                        return false;
                    }
                    if !self
                        .slots
                        .get(&c.name)
                        .and_then(|s| s.current.as_ref())
                        .is_some_and(|i| i.running() && i.started)
                    {
                        return false;
                    }
                }
                Some(i) if i.running() => {
                    if !sidecar || !i.started {
                        return false;
                    }
                }
                Some(i) => {
                    let code = i.exit_code().unwrap_or(255);
                    if !sidecar && code == 0 {
                        continue;
                    }
                    if !sidecar && policy == "Never" {
                        // The pod has failed; the phase says so.
                        return false;
                    }
                    self.restart_with_backoff(pod, &c, true, volumes).await;
                    return false;
                }
            }
        }
        true
    }

    async fn run_containers(&mut self, pod: &Arc<Pod>, volumes: &BTreeMap<String, PathBuf>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        for c in spec.containers.clone() {
            let current = self.slots.get(&c.name).and_then(|s| s.current.clone());
            match current {
                None => self.start_container(pod, &c, false, volumes).await,
                Some(i) if i.running() => {}
                Some(i) => {
                    let code = i.exit_code().unwrap_or(255);
                    let restart = match policy.as_str() {
                        "Never" => false,
                        "OnFailure" => code != 0,
                        _ => true,
                    };
                    if restart {
                        self.restart_with_backoff(pod, &c, false, volumes).await;
                    } else if let Some(slot) = self.slots.get_mut(&c.name) {
                        slot.waiting = None;
                    }
                }
            }
        }
    }

    async fn restart_with_backoff(
        &mut self,
        pod: &Arc<Pod>,
        c: &Container,
        init: bool,
        volumes: &BTreeMap<String, PathBuf>,
    ) {
        let Some(slot) = self.slots.get_mut(&c.name) else {
            return;
        };
        let finished = slot.finished_seen.unwrap_or_else(Instant::now);
        if let Some(wait) = slot.backoff.in_backoff(finished, Instant::now()) {
            let _ = wait;
            let delay = slot.backoff.delay().as_secs();
            let (ns, name) = names(pod);
            slot.waiting = Some((
                "CrashLoopBackOff".into(),
                format!(
                    "back-off {delay}s restarting failed container={} pod={name}_{ns}({})",
                    c.name, self.uid
                ),
            ));
            let message = format!(
                "Back-off restarting failed container {} in pod {name}_{ns}({})",
                c.name, self.uid
            );
            self.container_event(pod, &c.name, init, "Warning", "BackOff", &message)
                .await;
            return;
        }
        self.start_container(pod, c, init, volumes).await;
    }

    /// Creates and starts a new instance of `c` (replacing a finished one).
    async fn start_container(
        &mut self,
        pod: &Arc<Pod>,
        c: &Container,
        init: bool,
        volumes: &BTreeMap<String, PathBuf>,
    ) {
        let Some(sandbox_record) = self.sandbox.clone() else {
            return;
        };
        let image = c.image.clone().unwrap_or_default();
        // Image pull backoff.
        {
            let slot = self.slots.entry(c.name.clone()).or_default();
            if let Some(failed) = slot.pull_failed_at {
                if slot
                    .pull_backoff
                    .in_backoff(failed, Instant::now())
                    .is_some()
                {
                    slot.waiting = Some((
                        "ImagePullBackOff".into(),
                        format!("Back-off pulling image {image:?}"),
                    ));
                    self.container_event(
                        pod,
                        &c.name,
                        init,
                        "Normal",
                        "BackOff",
                        &format!("Back-off pulling image {image:?}"),
                    )
                    .await;
                    self.container_event(
                        pod,
                        &c.name,
                        init,
                        "Warning",
                        "Failed",
                        "Error: ImagePullBackOff",
                    )
                    .await;
                    return;
                }
            }
        }
        let policy = images::policy(c);
        let needs_pull = policy == "Always" || self.k.images.image(&image).is_err();
        if needs_pull && policy != "Never" {
            self.container_event(
                pod,
                &c.name,
                init,
                "Normal",
                "Pulling",
                &format!("Pulling image {image:?}"),
            )
            .await;
        }
        let info = match images::ensure(&self.k.client, &self.k.images, pod, c, &self.pod_dir())
            .await
        {
            Ok(images::Outcome::Present(info)) => {
                if !needs_pull || policy == "Always" {
                    self.container_event(
                        pod,
                        &c.name,
                        init,
                        "Normal",
                        "Pulled",
                        &format!("Container image {image:?} already present on machine"),
                    )
                    .await;
                }
                info
            }
            Ok(images::Outcome::Pulled { info, seconds }) => {
                let message = format!(
                    "Successfully pulled image {image:?} in {seconds:.3}s ({seconds:.3}s including waiting). Image size: {} bytes.",
                    info.size
                );
                self.container_event(pod, &c.name, init, "Normal", "Pulled", &message)
                    .await;
                if let Some(slot) = self.slots.get_mut(&c.name) {
                    slot.pull_failed_at = None;
                    slot.pull_backoff = Default::default();
                }
                info
            }
            Err(failure) => {
                let message = if failure.reason == "ErrImagePull" {
                    format!("Failed to pull image {image:?}: {}", failure.message)
                } else {
                    failure.message.clone()
                };
                self.container_event(pod, &c.name, init, "Warning", "Failed", &message)
                    .await;
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "Failed",
                    &format!("Error: {}", failure.reason),
                )
                .await;
                let slot = self.slots.entry(c.name.clone()).or_default();
                slot.waiting = Some((failure.reason.to_string(), failure.message));
                let now = Instant::now();
                slot.pull_backoff.in_backoff(now, now);
                slot.pull_failed_at = Some(now);
                return;
            }
        };
        match self
            .create_and_start(pod, c, init, volumes, &sandbox_record, &info)
            .await
        {
            Ok(()) => {}
            Err(StartFailure::Config(message)) => {
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "Failed",
                    &format!("Error: {message}"),
                )
                .await;
                let slot = self.slots.entry(c.name.clone()).or_default();
                slot.waiting = Some(("CreateContainerConfigError".into(), message));
            }
            Err(StartFailure::Create(message)) => {
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "Failed",
                    &format!("Error: {message}"),
                )
                .await;
                let slot = self.slots.entry(c.name.clone()).or_default();
                slot.waiting = Some(("CreateContainerError".into(), message));
            }
        }
    }

    async fn create_and_start(
        &mut self,
        pod: &Arc<Pod>,
        c: &Container,
        init: bool,
        volume_paths: &BTreeMap<String, PathBuf>,
        sandbox_record: &SandboxRecord,
        info: &skiff_image::ImageInfo,
    ) -> Result<(), StartFailure> {
        let facts = env::Facts {
            host_ip: &self.k.args.node_ip.to_string(),
            pod_ips: &sandbox_record.pod_ips,
            node_allocatable_millicpu: self.k.node_millicpu,
            node_allocatable_memory: self.k.node_memory_bytes,
        };
        let began = Instant::now();
        let vars = env::environment(&self.k.client, pod, c, &facts)
            .await
            .map_err(|e| StartFailure::Config(e.0))?;
        let env_done = began.elapsed();
        // Bind mounts for the container's volumeMounts.
        let mut mounts = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let source = volume_paths.get(&m.name).ok_or_else(|| {
                StartFailure::Config(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    m.name, c.name
                ))
            })?;
            let is_dir_volume = pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_ref())
                .and_then(|v| v.iter().find(|v| v.name == m.name))
                .is_some_and(|v| v.empty_dir.is_some() || v.host_path.is_some());
            let source =
                volumes::sub_path(source, m.sub_path.as_deref().unwrap_or(""), is_dir_volume)
                    .map_err(|e| StartFailure::Config(e.0))?;
            mounts.push(spec::BindMount {
                source,
                destination: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        let slot = self.slots.entry(c.name.clone()).or_default();
        let restart_count = slot
            .current
            .as_ref()
            .map(|i| i.record.restart_count + 1)
            .unwrap_or(0);
        let previous = slot.current.take();
        if let Some(previous) = previous {
            slot.last = previous.terminated();
            remove_instance(&self.k, &previous).await;
        }
        let id = new_id();
        let dir = state::container_dir(&self.k.args.root_dir, &id);
        std::fs::create_dir_all(&dir).map_err(|e| StartFailure::Create(e.to_string()))?;
        let (ns, name) = names(pod);
        let log_path = self
            .k
            .args
            .pod_logs_dir
            .join(format!("{ns}_{name}_{}", self.uid))
            .join(&c.name)
            .join(format!("{restart_count}.log"));
        let termination_log = self
            .pod_dir()
            .join("containers")
            .join(&c.name)
            .join(&id[..8]);
        if let Some(parent) = termination_log.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StartFailure::Create(e.to_string()))?;
        }
        std::fs::write(&termination_log, b"").map_err(|e| StartFailure::Create(e.to_string()))?;
        let mut record = ContainerRecord {
            id: id.clone(),
            pod_uid: self.uid.clone(),
            name: c.name.clone(),
            init,
            restart_count,
            image: c.image.clone().unwrap_or_default(),
            image_ref: info.name.clone(),
            image_id: images::image_id(info),
            created_at: jiff::Timestamp::now().to_string(),
            started_at: None,
            pid: None,
            log_path: log_path.clone(),
            termination_log: termination_log.clone(),
            start_error: None,
        };
        state::write_json(&dir.join("record.json"), &record)
            .map_err(|e| StartFailure::Create(e.to_string()))?;
        // From here on the record exists: failures leave an instance that cleanup removes.
        let store = self.k.images.clone();
        let image_name = info.name.clone();
        let id_for_mount = id.clone();
        let rootfs = tokio::task::spawn_blocking(move || {
            skiff_image::overlay::mount_rootfs(&store, &image_name, &id_for_mount)
        })
        .await
        .map_err(|e| StartFailure::Create(e.to_string()))
        .and_then(|r| {
            r.map_err(|e| StartFailure::Create(format!("failed to mount the image's rootfs: {e}")))
        });
        let rootfs = match rootfs {
            Ok(r) => r,
            Err(e) => {
                self.forget_failed(c, record).await;
                return Err(e);
            }
        };
        let base = skiff_image::bundle::runtime_spec(info, &rootfs)
            .map_err(|e| StartFailure::Create(e.to_string()))
            .and_then(|s| serde_json::to_value(s).map_err(|e| StartFailure::Create(e.to_string())));
        let built = base.and_then(|mut base| {
            base["root"]["path"] = json!(rootfs);
            let image_config = info.config.config.clone().unwrap_or_default();
            let mut env_map: BTreeMap<String, String> = BTreeMap::new();
            let mut env_list: Vec<(String, String)> = Vec::new();
            for e in image_config.env.clone().unwrap_or_default() {
                let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
                env_list.retain(|(n, _)| n != k);
                env_list.push((k.to_string(), v.to_string()));
            }
            env_list.retain(|(n, _)| n != "HOSTNAME");
            env_list.push(("HOSTNAME".into(), sandbox::hostname(pod)));
            for (k, v) in &vars {
                env_list.retain(|(n, _)| n != k);
                env_list.push((k.clone(), v.clone()));
            }
            for (k, v) in &env_list {
                env_map.insert(k.clone(), v.clone());
            }
            let entrypoint = image_config.entrypoint.clone().unwrap_or_default();
            let cmd = image_config.cmd.clone().unwrap_or_default();
            let args: Vec<String> = spec::command_line(c, &entrypoint, &cmd)
                .iter()
                .map(|a| env::expand(a, &env_map))
                .collect();
            let env_strings: Vec<String> =
                env_list.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let ctx = spec::PodContext {
                pod,
                pod_dir: &self.pod_dir(),
                netns: (!sandbox_record.host_network)
                    .then(|| sandbox::ns_path(&self.pod_dir(), "net")),
                cgroup_parent: &sandbox_record.cgroup_path,
                node_memory_bytes: self.k.node_memory_bytes,
                min_oom_score_adj: self.k.min_oom_score_adj,
            };
            spec::build(
                base,
                &ctx,
                c,
                &id,
                args,
                env_strings,
                &mounts,
                &termination_log,
            )
            .map_err(|e| StartFailure::Config(e.0))
            .and_then(|mut config| {
                self.seccomp(pod, c, &mut config)
                    .map_err(StartFailure::Create)?;
                Ok(config)
            })
        });
        let config = match built {
            Ok(config) => config,
            Err(e) => {
                self.forget_failed(c, record).await;
                return Err(e);
            }
        };
        if let Err(e) = state::write_json(&dir.join("config.json"), &config) {
            self.forget_failed(c, record).await;
            return Err(StartFailure::Create(e.to_string()));
        }
        self.container_event(
            pod,
            &c.name,
            init,
            "Normal",
            "Created",
            &format!("Created container {}", c.name),
        )
        .await;
        let prepared = began.elapsed();
        // `stdin: true` gives the container a stdin kubectl attach writes to.
        let stdin = c
            .stdin
            .unwrap_or(false)
            .then(|| c.stdin_once.unwrap_or(false));
        let started = self
            .k
            .runtime
            .start(
                &id,
                &dir,
                &dir,
                &log_path,
                crate::logrotate::Policy {
                    max_size: self.k.args.container_log_max_size,
                    max_files: self.k.args.container_log_max_files,
                },
                stdin,
                self.k
                    .layout
                    .unified_dir(&sandbox_record.cgroup_path)
                    .as_deref(),
            )
            .await;
        tracing::info!(
            pod = %name,
            container = %c.name,
            env_ms = env_done.as_millis() as u64,
            prepare_ms = (prepared - env_done).as_millis() as u64,
            runtime_ms = (began.elapsed() - prepared).as_millis() as u64,
            "container started"
        );
        let now = jiff::Timestamp::now().to_string();
        let slot = self.slots.entry(c.name.clone()).or_default();
        slot.waiting = None;
        match started {
            Ok(pid) => {
                record.started_at = Some(now);
                record.pid = Some(pid);
                let _ = state::write_json(&dir.join("record.json"), &record);
                let has_startup = c.startup_probe.is_some();
                let has_readiness = c.readiness_probe.is_some();
                slot.current = Some(Instance {
                    record,
                    exit: None,
                    oom_killed: false,
                    ready: !has_readiness && !has_startup,
                    started: !has_startup,
                });
                slot.probes = Default::default();
                slot.probe_due = Default::default();
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Normal",
                    "Started",
                    &format!("Started container {}", c.name),
                )
                .await;
                if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
                    let ip = sandbox_record.pod_ips.first().cloned().unwrap_or_default();
                    if let Err(e) =
                        probes::hook(&hook, c, &id, &ip, &self.k.runtime, Duration::from_secs(30))
                            .await
                    {
                        let message = format!("PostStartHook failed: {e}");
                        self.container_event(
                            pod,
                            &c.name,
                            init,
                            "Warning",
                            "FailedPostStartHook",
                            &message,
                        )
                        .await;
                        let _ = self.k.runtime.kill(&id, "KILL").await;
                    }
                }
            }
            Err(e) => {
                let message = format!("failed to start container {:?}: {e}", c.name);
                record.start_error = Some(("StartError".into(), message.clone()));
                let _ = state::write_json(&dir.join("record.json"), &record);
                slot.finished_seen = Some(Instant::now());
                slot.current = Some(Instance {
                    record,
                    exit: None,
                    oom_killed: false,
                    ready: false,
                    started: false,
                });
                self.container_event(
                    pod,
                    &c.name,
                    init,
                    "Warning",
                    "Failed",
                    &format!("Error: {message}"),
                )
                .await;
            }
        }
        Ok(())
    }

    /// An instance that never got to run: removed again, its restart count kept.
    async fn forget_failed(&mut self, c: &Container, record: ContainerRecord) {
        let instance = Instance {
            record,
            exit: None,
            oom_killed: false,
            ready: false,
            started: false,
        };
        remove_instance(&self.k, &instance).await;
        let _ = c;
    }

    fn start_probes(&mut self, pod: &Arc<Pod>) {
        let ip = self
            .sandbox
            .as_ref()
            .and_then(|s| s.pod_ips.first().cloned())
            .unwrap_or_default();
        let now = Instant::now();
        for c in all_containers(pod) {
            let Some(slot) = self.slots.get_mut(&c.name) else {
                continue;
            };
            let Some(instance) = slot.current.as_ref().filter(|i| i.running()) else {
                continue;
            };
            let started_at = instance
                .record
                .started_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .unwrap_or_else(jiff::Timestamp::now);
            for kind in Kind::ALL {
                let Some(probe) = kind.of(&c) else { continue };
                // Until the startup probe succeeds, only it runs.
                if kind != Kind::Startup && !instance.started {
                    continue;
                }
                if kind == Kind::Startup && instance.started {
                    continue;
                }
                let timing = probes::timing(&probe);
                let due = slot.probe_due[kind as usize].unwrap_or_else(|| {
                    let since = jiff::Timestamp::now().duration_since(started_at);
                    let since = Duration::from_secs(since.as_secs().max(0) as u64);
                    now + timing.initial_delay.saturating_sub(since)
                });
                slot.probe_due[kind as usize] = Some(due);
                if due > now || self.probing.contains(&(c.name.clone(), kind as usize)) {
                    continue;
                }
                slot.probe_due[kind as usize] = Some(now + timing.period);
                self.probing.insert((c.name.clone(), kind as usize));
                let runtime = self.k.runtime.clone();
                let id = instance.record.id.clone();
                let ip = ip.clone();
                let container = c.clone();
                self.probes.spawn(async move {
                    let result = probes::run(&probe, &container, &id, &ip, &runtime).await;
                    (container.name.clone(), id, kind, result)
                });
            }
        }
    }

    async fn probed(&mut self, name: String, id: String, kind: Kind, result: Result<(), String>) {
        self.probing.remove(&(name.clone(), kind as usize));
        let Some(pod) = self.current_pod() else {
            return;
        };
        let Some(container) = all_containers(&pod).into_iter().find(|c| c.name == name) else {
            return;
        };
        let Some(probe) = kind.of(&container) else {
            return;
        };
        let timing = probes::timing(&probe);
        let init = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|l| l.iter().any(|c| c.name == name));
        let Some(slot) = self.slots.get_mut(&name) else {
            return;
        };
        let Some(instance) = slot
            .current
            .as_mut()
            .filter(|i| i.record.id == id && i.running())
        else {
            return;
        };
        let counters = &mut slot.probes[kind as usize];
        match &result {
            Ok(()) => {
                counters.0 += 1;
                counters.1 = 0;
            }
            Err(_) => {
                counters.1 += 1;
                counters.0 = 0;
            }
        }
        let (successes, failures) = *counters;
        let mut kill = None;
        match kind {
            Kind::Readiness => {
                if successes >= timing.success_threshold {
                    instance.ready = true;
                } else if failures >= timing.failure_threshold {
                    instance.ready = false;
                }
            }
            Kind::Startup => {
                if successes >= 1 {
                    instance.started = true;
                    instance.ready = container.readiness_probe.is_none();
                } else if failures >= timing.failure_threshold {
                    kill = Some(format!(
                        "Container {name} failed startup probe, will be restarted"
                    ));
                }
            }
            Kind::Liveness => {
                if failures >= timing.failure_threshold {
                    kill = Some(format!(
                        "Container {name} failed liveness probe, will be restarted"
                    ));
                }
            }
        }
        if let Err(why) = &result {
            let message = format!("{} probe failed: {why}", kind.name());
            self.container_event(&pod, &name, init, "Warning", "Unhealthy", &message)
                .await;
        }
        if let Some(message) = kill {
            if let Some(slot) = self.slots.get_mut(&name) {
                slot.probes[kind as usize] = (0, 0);
            }
            self.container_event(&pod, &name, init, "Normal", "Killing", &message)
                .await;
            let grace = grace_period(&pod);
            stop_container(&self.k, &container, &id, "", grace).await;
        }
        self.post_status(&pod).await;
    }

    fn current_pod(&self) -> Option<Arc<Pod>> {
        self.pod.clone()
    }

    /// Stops every running container (preStop, TERM, KILL after `grace`), concurrently.
    async fn stop_all(&mut self, pod: &Pod, grace: Duration) {
        let ip = self
            .sandbox
            .as_ref()
            .and_then(|s| s.pod_ips.first().cloned())
            .unwrap_or_default();
        let mut stops = JoinSet::new();
        let containers = all_containers(pod);
        for (name, slot) in &self.slots {
            let Some(instance) = slot.current.as_ref().filter(|i| i.running()) else {
                continue;
            };
            let container = containers
                .iter()
                .find(|c| &c.name == name)
                .cloned()
                .unwrap_or_default();
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|l| l.iter().any(|c| &c.name == name));
            self.container_event(
                pod,
                name,
                init,
                "Normal",
                "Killing",
                &format!("Stopping container {name}"),
            )
            .await;
            let k = self.k.clone();
            let id = instance.record.id.clone();
            let ip = ip.clone();
            stops.spawn(async move { stop_container(&k, &container, &id, &ip, grace).await });
        }
        while stops.join_next().await.is_some() {}
        self.refresh_exits();
    }

    async fn release_network(&mut self) {
        let Some(mut record) = self.sandbox.clone() else {
            return;
        };
        if record.network_ready && !record.host_network {
            if let Ok(network) = cni::load(&self.k.args.cni_conf_dir) {
                let netns = sandbox::ns_path(&self.pod_dir(), "net");
                let attachment = cni::Attachment {
                    container_id: &record.id,
                    netns: &netns,
                    ifname: "eth0",
                    namespace: &record.namespace,
                    pod_name: &record.name,
                    pod_uid: &record.uid,
                    port_mappings: Vec::new(),
                };
                if let Err(e) = network
                    .del(
                        &self.k.args.cni_bin_dirs(),
                        &attachment,
                        record.cni_result.as_ref(),
                    )
                    .await
                {
                    tracing::warn!(pod = %record.name, "CNI DEL: {e}");
                }
            }
            record.network_ready = false;
            let _ = state::write_json(&self.pod_dir().join("sandbox.json"), &record);
        }
        self.sandbox = Some(record);
    }

    /// Deletion: stop everything, remove everything, then the final delete.
    async fn terminate(&mut self, pod: Option<Arc<Pod>>) {
        let grace = pod
            .as_deref()
            .map(grace_period)
            .unwrap_or(Duration::from_secs(2));
        if let Some(pod) = &pod {
            self.stop_all(pod, grace).await;
        } else {
            // Gone from the API without us: stop with the records alone.
            let mut stops = JoinSet::new();
            for slot in self.slots.values() {
                if let Some(i) = slot.current.as_ref().filter(|i| i.running()) {
                    let k = self.k.clone();
                    let id = i.record.id.clone();
                    stops.spawn(async move {
                        stop_container(&k, &Container::default(), &id, "", Duration::from_secs(2))
                            .await
                    });
                }
            }
            while stops.join_next().await.is_some() {}
            self.refresh_exits();
        }
        if let Some(pod) = pod.as_ref().filter(|_| self.mirror.is_none()) {
            // The last status (containers terminated) before the object goes.
            self.post_status_terminating(pod).await;
        }
        self.cleanup().await;
        // A static pod has no object of its own in the API to delete.
        if let Some(pod) = pod.filter(|_| self.mirror.is_none()) {
            let (ns, name) = names(&pod);
            let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(self.uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(pod = %name, "final delete: {e}"),
            }
        }
        self.k.recorder.forget(&self.uid);
    }

    /// Removes every instance, the sandbox, the volumes, the cgroup, the pod's files and logs.
    async fn cleanup(&mut self) {
        for slot in self.slots.values() {
            if let Some(instance) = &slot.current {
                remove_instance(&self.k, instance).await;
            }
        }
        self.release_network().await;
        let pod_dir = self.pod_dir();
        if let Err(e) = sandbox::unpin_namespaces(&pod_dir) {
            tracing::warn!("releasing namespaces of {}: {e}", self.uid);
        }
        if let Err(e) = volumes::remove_all(&pod_dir) {
            tracing::warn!("removing volumes of {}: {e}", self.uid);
        }
        if let Some(record) = &self.sandbox {
            if let Err(e) = cgroups::remove_pod(&self.k.layout, &record.cgroup_path) {
                tracing::warn!("removing the cgroup of {}: {e}", self.uid);
            }
            let logs = self.k.args.pod_logs_dir.join(format!(
                "{}_{}_{}",
                record.namespace, record.name, record.uid
            ));
            let _ = std::fs::remove_dir_all(logs);
        }
        if let Err(e) = std::fs::remove_dir_all(&pod_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", pod_dir.display());
            }
        }
        self.slots.clear();
        self.sandbox = None;
    }

    async fn post_status_terminating(&mut self, pod: &Arc<Pod>) {
        self.post(pod, true).await;
    }

    async fn post_status(&mut self, pod: &Arc<Pod>) {
        self.post(pod, false).await;
    }

    async fn post(&mut self, pod: &Arc<Pod>, terminating: bool) {
        let pod_ips = self
            .sandbox
            .as_ref()
            .map(|s| s.pod_ips.clone())
            .unwrap_or_default();
        let sandbox_ready = self
            .sandbox
            .as_ref()
            .is_some_and(|s| s.host_network || s.network_ready);
        let facts = status::PodFacts {
            host_ip: &self.k.args.node_ip.to_string(),
            pod_ips: &pod_ips,
            sandbox_ready,
            start_time: self.start_time.clone(),
            qos_class: cgroups::qos_class(pod),
            terminating,
        };
        let status = status::generate(pod, &self.slots, &facts);
        let uid = match &self.mirror {
            None => self.uid.clone(),
            Some(mirrors) => {
                self.local_status = Some(status.clone());
                // No mirror pod (yet, or the API server is away): nothing to post to.
                match mirrors.get(&self.uid) {
                    Some(uid) => uid,
                    None => return,
                }
            }
        };
        let body = json!({"metadata": {"uid": uid}, "status": status});
        if self.last_sent.as_ref() == Some(&body) {
            return;
        }
        let (ns, name) = names(pod);
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &ns);
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => self.last_sent = Some(body),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => tracing::warn!(pod = %name, "posting status: {e}"),
        }
    }

    /// What the kubelet API (logs, exec) needs to find this pod's containers.
    fn publish(&self, pod: &Arc<Pod>) {
        let (namespace, name) = names(pod);
        let containers = self
            .slots
            .iter()
            .map(|(n, slot)| ContainerView {
                name: n.clone(),
                id: slot.current.as_ref().map(|i| i.record.id.clone()),
                running: slot.current.as_ref().is_some_and(|i| i.running()),
                restart_count: slot.restart_count(),
                log_path: slot.current.as_ref().map(|i| i.record.log_path.clone()),
                waiting: slot.waiting.as_ref().map(|w| w.0.clone()),
            })
            .collect();
        let view = PodView {
            namespace,
            name,
            uid: self.uid.clone(),
            pod_ip: self
                .sandbox
                .as_ref()
                .and_then(|s| s.pod_ips.first().cloned()),
            netns: self
                .sandbox
                .as_ref()
                .filter(|s| !s.host_network)
                .map(|_| sandbox::ns_path(&self.pod_dir(), "net")),
            containers,
        };
        self.k
            .views
            .lock()
            .expect("not poisoned")
            .insert(self.uid.clone(), view);
    }
}

enum StartFailure {
    /// The pod's configuration is wrong (CreateContainerConfigError).
    Config(String),
    /// The node could not make the container (CreateContainerError).
    Create(String),
}

fn names(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn all_containers(pod: &Pod) -> Vec<Container> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.init_containers
        .unwrap_or_default()
        .into_iter()
        .chain(spec.containers)
        .collect()
}

/// The grace period of a deletion (deletionGracePeriodSeconds) or the pod's own.
fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}

/// hostPort mappings for CNI's portmap plugin.
fn port_mappings(pod: &Pod) -> Vec<Value> {
    let mut mappings = Vec::new();
    for c in all_containers(pod) {
        for p in c.ports.iter().flatten() {
            if let Some(host_port) = p.host_port.filter(|h| *h > 0) {
                mappings.push(json!({
                    "hostPort": host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()).to_lowercase(),
                    "hostIP": p.host_ip.clone().unwrap_or_default(),
                }));
            }
        }
    }
    mappings
}

/// preStop, SIGTERM, then SIGKILL once `grace` is over; returns when the container has ended.
pub async fn stop_container(
    k: &Kubelet,
    container: &Container,
    id: &str,
    pod_ip: &str,
    grace: Duration,
) {
    let deadline = Instant::now() + grace;
    if let Some(hook) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.clone())
    {
        if !grace.is_zero() {
            let _ = probes::hook(&hook, container, id, pod_ip, &k.runtime, grace).await;
        }
    }
    if let Err(e) = k.runtime.kill(id, "TERM").await {
        tracing::debug!("SIGTERM to {id}: {e}");
    }
    let root = &k.args.root_dir;
    while Instant::now() < deadline {
        if state::read_exit(root, id).is_some() || !state::shim_alive(root, id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Err(e) = k.runtime.kill(id, "KILL").await {
        tracing::debug!("SIGKILL to {id}: {e}");
    }
    let hard = Instant::now() + Duration::from_secs(5);
    while Instant::now() < hard {
        if state::read_exit(root, id).is_some() || !state::shim_alive(root, id) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes an instance: the runtime's container, its rootfs, its directory (the log stays
/// with the pod until the pod goes).
pub async fn remove_instance(k: &Kubelet, instance: &Instance) {
    let id = instance.record.id.clone();
    if let Err(e) = k.runtime.delete(&id).await {
        tracing::warn!("deleting container {id}: {e}");
    }
    let store = k.images.clone();
    let id_for_unmount = id.clone();
    match tokio::task::spawn_blocking(move || {
        skiff_image::overlay::unmount_rootfs(&store, &id_for_unmount)
    })
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("unmounting the rootfs of {id}: {e}"),
        Err(e) => tracing::warn!("unmounting the rootfs of {id}: {e}"),
    }
    let _ = std::fs::remove_dir_all(state::container_dir(&k.args.root_dir, &id));
}

/// A random 64-hex-digit id, as containerd's.
pub fn new_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}
