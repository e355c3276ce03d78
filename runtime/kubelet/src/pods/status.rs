//! The pod's status as upstream's kubelet generates it (`kubelet_pods.go`'s
//! `generateAPIPodStatus`, `getPhase`, and `status/generate.go`'s conditions).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::state::Slot;

/// Conditions the kubelet owns; others (PodScheduled, DisruptionTarget, readiness gates'
/// conditions) are kept as they are.
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

/// What the status needs besides the containers.
pub struct PodFacts<'a> {
    pub host_ip: &'a str,
    pub pod_ips: &'a [String],
    pub sandbox_ready: bool,
    pub start_time: Option<Time>,
    pub qos_class: &'a str,
    /// The pod is being terminated by the kubelet (deletion): a stopped pod is then
    /// Succeeded only if everything exited 0.
    pub terminating: bool,
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// A container's status entry.
pub fn container_status(spec: &Container, slot: &Slot) -> ContainerStatus {
    let current = slot.current.as_ref();
    let state = match current {
        Some(i) if i.running() => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: i
                    .record
                    .started_at
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(Time),
            }),
            ..ContainerState::default()
        },
        _ => match (&slot.waiting, current.and_then(|i| i.terminated())) {
            (Some((reason, message)), _) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: (!message.is_empty()).then(|| message.clone()),
                }),
                ..ContainerState::default()
            },
            (None, Some(t)) => ContainerState {
                terminated: Some(t),
                ..ContainerState::default()
            },
            (None, None) => ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("ContainerCreating".into()),
                    message: None,
                }),
                ..ContainerState::default()
            },
        },
    };
    // A container waiting to restart shows its last end in lastState.
    let last_state = match (&slot.waiting, current.and_then(|i| i.terminated())) {
        (Some(_), Some(t)) => Some(ContainerState {
            terminated: Some(t),
            ..ContainerState::default()
        }),
        _ => slot.last.clone().map(|t| ContainerState {
            terminated: Some(t),
            ..ContainerState::default()
        }),
    };
    let running = current.is_some_and(|i| i.running());
    ContainerStatus {
        name: spec.name.clone(),
        image: current
            .map(|i| i.record.image_ref.clone())
            .unwrap_or_else(|| spec.image.clone().unwrap_or_default()),
        image_id: current
            .map(|i| i.record.image_id.clone())
            .unwrap_or_default(),
        container_id: current.map(|i| format!("skiff://{}", i.record.id)),
        ready: running && current.is_some_and(|i| i.ready),
        started: Some(running && current.is_some_and(|i| i.started)),
        restart_count: slot.restart_count(),
        state: Some(state),
        last_state: Some(last_state.unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

/// Upstream's `getPhase`.
pub fn phase(pod: &Pod, slots: &BTreeMap<String, Slot>, terminating: bool) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let inits = spec.init_containers.clone().unwrap_or_default();
    let mut init_pending = false;
    for c in &inits {
        let slot = slots.get(&c.name);
        let current = slot.and_then(|s| s.current.as_ref());
        if is_sidecar(c) {
            if !current.is_some_and(|i| i.running() && i.started) {
                init_pending = true;
            }
            continue;
        }
        match current.and_then(|i| i.exit_code()) {
            Some(0) => {}
            Some(_) if policy == "Never" && slot.is_some_and(|s| s.waiting.is_none()) => {
                return "Failed"
            }
            _ => init_pending = true,
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in &spec.containers {
        let slot = slots.get(&c.name);
        let current = slot.and_then(|s| s.current.as_ref());
        match current {
            Some(i) if i.running() => running += 1,
            Some(i) if i.exit_code().is_some() => {
                if slot.is_some_and(|s| s.waiting.is_some()) {
                    // Terminated and about to restart: counts as running for the phase.
                    running += 1;
                } else {
                    stopped += 1;
                    if i.exit_code() == Some(0) {
                        succeeded += 1;
                    }
                }
            }
            _ => waiting += 1,
        }
    }
    if init_pending && running == 0 && stopped == 0 {
        return "Pending";
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == spec.containers.len() {
        if terminating {
            return if succeeded == stopped {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return match policy.as_str() {
            "Always" => "Running",
            "OnFailure" if succeeded == stopped => "Succeeded",
            "OnFailure" => "Running",
            _ if succeeded == stopped => "Succeeded",
            _ => "Failed",
        };
    }
    "Pending"
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    previous: &[PodCondition],
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let now = Time(jiff::Timestamp::now());
    let transition = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        last_probe_time: None,
        last_transition_time: Some(transition),
        observed_generation: None,
    }
}

/// The whole status the kubelet posts.
pub fn generate(pod: &Pod, slots: &BTreeMap<String, Slot>, facts: &PodFacts) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let previous = pod.status.clone().unwrap_or_default();
    let previous_conditions = previous.conditions.clone().unwrap_or_default();
    let empty = Slot::default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    let init_statuses: Vec<ContainerStatus> = inits
        .iter()
        .map(|c| container_status(c, slots.get(&c.name).unwrap_or(&empty)))
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, slots.get(&c.name).unwrap_or(&empty)))
        .collect();
    let mut phase = phase(pod, slots, facts.terminating);
    // Terminal phases never go back.
    if matches!(
        previous.phase.as_deref(),
        Some("Succeeded") | Some("Failed")
    ) {
        phase = if previous.phase.as_deref() == Some("Succeeded") {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    let initialized_pending: Vec<String> = inits
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| {
            if is_sidecar(c) {
                !s.started.unwrap_or(false)
            } else {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .map(|t| t.exit_code)
                    != Some(0)
            }
        })
        .map(|(c, _)| c.name.clone())
        .collect();
    // Once a regular container has started, the pod stays initialized.
    let any_started = statuses.iter().any(|s| {
        s.state
            .as_ref()
            .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
            || s.restart_count > 0
    });
    let initialized = initialized_pending.is_empty() || any_started;
    let not_ready: Vec<String> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.clone())
        .collect();
    let sidecars_not_ready: Vec<String> = inits
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| is_sidecar(c) && !s.ready)
        .map(|(c, _)| c.name.clone())
        .collect();
    let mut unready = not_ready.clone();
    unready.extend(sidecars_not_ready);
    let succeeded = phase == "Succeeded";
    let containers_ready = unready.is_empty() && !succeeded && phase != "Failed";
    let (ready_reason, ready_message) = if succeeded {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let mut conditions: Vec<PodCondition> = vec![
        condition(
            "PodReadyToStartContainers",
            facts.sandbox_ready,
            None,
            None,
            &previous_conditions,
        ),
        condition(
            "Initialized",
            initialized,
            Some(if succeeded {
                "PodCompleted"
            } else {
                "ContainersNotInitialized"
            }),
            Some(format!(
                "containers with incomplete status: [{}]",
                initialized_pending.join(" ")
            )),
            &previous_conditions,
        ),
        condition(
            "Ready",
            containers_ready,
            Some(ready_reason),
            ready_message.clone(),
            &previous_conditions,
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(ready_reason),
            ready_message,
            &previous_conditions,
        ),
    ];
    if succeeded {
        for c in conditions.iter_mut().skip(1) {
            if c.status == "False" {
                c.reason = Some("PodCompleted".into());
                c.message = None;
            }
        }
    }
    for c in &previous_conditions {
        if !KUBELET_CONDITIONS.contains(&c.type_.as_str()) {
            conditions.push(c.clone());
        }
    }
    if !conditions.iter().any(|c| c.type_ == "PodScheduled") {
        conditions.push(condition(
            "PodScheduled",
            true,
            None,
            None,
            &previous_conditions,
        ));
    }
    let pod_ips: Vec<PodIP> = facts
        .pod_ips
        .iter()
        .map(|ip| PodIP { ip: ip.clone() })
        .collect();
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(facts.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: facts.host_ip.to_string(),
        }]),
        pod_ip: facts.pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty()).then_some(pod_ips),
        start_time: facts.start_time.clone().or(previous.start_time),
        qos_class: Some(facts.qos_class.to_string()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        nominated_node_name: previous.nominated_node_name,
        ..PodStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::state::{ContainerRecord, Instance};
    use crate::shim::Exit;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}),
        )
        .unwrap()
    }

    fn instance(name: &str, exit: Option<i32>) -> Instance {
        Instance {
            record: ContainerRecord {
                id: format!("id-{name}"),
                pod_uid: "u".into(),
                name: name.into(),
                init: false,
                restart_count: 0,
                image: "busybox".into(),
                image_ref: "docker.io/library/busybox:latest".into(),
                image_id: "docker.io/library/busybox@sha256:0".into(),
                created_at: "2026-12-03T00:00:00Z".into(),
                started_at: Some("2026-12-03T00:00:01Z".into()),
                pid: Some(1),
                log_path: "/x".into(),
                termination_log: "/nonexistent".into(),
                start_error: None,
            },
            exit: exit.map(|c| Exit {
                exit_code: c,
                signal: None,
                finished_at: "2026-12-03T00:00:02Z".into(),
            }),
            oom_killed: false,
            ready: true,
            started: true,
        }
    }

    fn slots(list: &[(&str, Option<i32>)]) -> BTreeMap<String, Slot> {
        list.iter()
            .map(|(n, e)| {
                (
                    n.to_string(),
                    Slot {
                        current: Some(instance(n, *e)),
                        ..Slot::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn phases_as_upstream() {
        let never =
            pod(json!({"restartPolicy": "Never", "containers": [{"name": "a"}, {"name": "b"}]}));
        assert_eq!(phase(&never, &BTreeMap::new(), false), "Pending");
        assert_eq!(
            phase(&never, &slots(&[("a", None), ("b", None)]), false),
            "Running"
        );
        assert_eq!(
            phase(&never, &slots(&[("a", Some(0)), ("b", Some(0))]), false),
            "Succeeded"
        );
        assert_eq!(
            phase(&never, &slots(&[("a", Some(0)), ("b", Some(1))]), false),
            "Failed"
        );
        let always = pod(json!({"containers": [{"name": "a"}]}));
        assert_eq!(phase(&always, &slots(&[("a", Some(0))]), false), "Running");
        assert_eq!(phase(&always, &slots(&[("a", Some(0))]), true), "Succeeded");
        let init = pod(
            json!({"restartPolicy": "Never", "initContainers": [{"name": "i"}], "containers": [{"name": "a"}]}),
        );
        assert_eq!(phase(&init, &slots(&[("i", None)]), false), "Pending");
        assert_eq!(phase(&init, &slots(&[("i", Some(2))]), false), "Failed");
    }

    #[test]
    fn conditions_and_statuses() {
        let p = pod(
            json!({"initContainers": [{"name": "i"}], "containers": [{"name": "a"}, {"name": "b"}]}),
        );
        let mut s = slots(&[("i", Some(0)), ("a", None)]);
        s.insert(
            "b".into(),
            Slot {
                waiting: Some(("ContainerCreating".into(), String::new())),
                ..Slot::default()
            },
        );
        let facts = PodFacts {
            host_ip: "192.168.56.11",
            pod_ips: &["10.244.1.5".into()],
            sandbox_ready: true,
            start_time: None,
            qos_class: "BestEffort",
            terminating: false,
        };
        let status = generate(&p, &s, &facts);
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        let cond = |t: &str| {
            status
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .clone()
        };
        assert_eq!(cond("Initialized").status, "True");
        assert_eq!(cond("Ready").status, "False");
        assert_eq!(
            cond("Ready").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(cond("PodScheduled").status, "True");
        let b = &status.container_statuses.as_ref().unwrap()[1];
        assert_eq!(
            b.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        let a = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.container_id.as_deref(), Some("skiff://id-a"));
        assert!(a.ready);
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.5"));
    }
}
