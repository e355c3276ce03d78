//! The batch controllers (Job, CronJob, TTL-after-finished) inside `skiff server`, driven by
//! the real kubectl 1.32 against hollow nodes. The test plays a hollow kubelet that runs a pod
//! for a moment and ends it with the exit code in its `hollow/exit` annotation (`never`: runs
//! until deleted); a pod being deleted turns Failed (as the kubelet reports a killed pod) and
//! is then removed with grace 0 — its object stays while the Job's tracking finalizer holds it.
//! One server for every check.

mod common;

use std::time::Duration;

use common::hollow::{apply, get, node_yaml};
use common::{wait_until, ServerProcess};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};

fn condition(s: &ServerProcess, job: &str, type_: &str) -> String {
    get(
        s,
        &["job", job],
        &format!("{{.status.conditions[?(@.type==\"{type_}\")].status}}/{{.status.conditions[?(@.type==\"{type_}\")].reason}}"),
    )
}

fn job_pods(s: &ServerProcess, job: &str) -> Vec<String> {
    get(
        s,
        &["pods", "-l", &format!("batch.kubernetes.io/job-name={job}")],
        "{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn job_yaml(name: &str, spec: &str, exit: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
{spec}
  template:
    metadata: {{annotations: {{hollow/exit: "{exit}"}}}}
    spec:
      restartPolicy: Never
      containers:
      - {{name: main, image: busybox, resources: {{requests: {{cpu: 10m}}}}}}
"#
    )
}

fn annotation(pod: &Pod, key: &str) -> Option<String> {
    pod.metadata.annotations.as_ref()?.get(key).cloned()
}

/// The status of a pod whose container exited with `code`.
fn terminated(code: i32) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let (phase, reason) = if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    serde_json::json!({"status": {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "finishedAt": now, "reason": reason}}}],
    }})
}

/// The hollow kubelet for run-to-completion pods.
async fn hollow_kubelet(client: kube::Client) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => pod,
            _ => continue,
        };
        let (Some(name), Some(namespace)) =
            (pod.metadata.name.clone(), pod.metadata.namespace.clone())
        else {
            continue;
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        if pod.metadata.deletion_timestamp.is_some() {
            if phase != "Succeeded" && phase != "Failed" {
                let _ = pods
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(terminated(137)),
                    )
                    .await;
            }
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if !bound || phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let exit = annotation(&pod, "hollow/exit").unwrap_or_else(|| "0".into());
        if phase != "Running" {
            let running = serde_json::json!({"status": {
                "phase": "Running",
                "startTime": now,
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                    "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}}}],
            }});
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(running))
                .await;
        }
        let Ok(code) = exit.parse::<i32>() else {
            continue; // "never"
        };
        let client = client.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let pods: Api<Pod> = Api::namespaced(client, &namespace);
            let status = terminated(code);
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await;
        });
    }
}

fn no_finalizers_left(s: &ServerProcess, job: &str) -> bool {
    get(
        s,
        &["pods", "-l", &format!("batch.kubernetes.io/job-name={job}")],
        "{.items[*].metadata.finalizers}",
    )
    .trim()
    .is_empty()
}

/// completions 3, parallelism 2: runs to Complete with the interim SuccessCriteriaMet, every
/// pod counted once and released.
fn completes(s: &ServerProcess) {
    apply(
        s,
        &job_yaml("ok", "  completions: 3\n  parallelism: 2", "0"),
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/ok",
        "--timeout=60s",
    ]);
    assert_eq!(get(s, &["job", "ok"], "{.status.succeeded}"), "3");
    assert_eq!(get(s, &["job", "ok"], "{.status.failed}"), "");
    assert_eq!(
        condition(s, "ok", "SuccessCriteriaMet"),
        "True/CompletionsReached"
    );
    assert_eq!(condition(s, "ok", "Complete"), "True/CompletionsReached");
    assert!(!get(s, &["job", "ok"], "{.status.completionTime}").is_empty());
    assert_eq!(job_pods(s, "ok").len(), 3, "no pod beyond the completions");
    wait_until("ok's finalizers released", || no_finalizers_left(s, "ok"));
    let table = s.kubectl_ok(&["get", "job", "ok"]);
    assert!(
        table.contains("Complete") && table.contains("3/3"),
        "{table}"
    );
    let describe = s.kubectl_ok(&["describe", "job", "ok"]);
    assert!(
        describe.contains("Completed") && describe.contains("Job completed"),
        "{describe}"
    );
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
}

/// A failing pod is replaced after the 10 s backoff; the second failure passes backoffLimit 1.
fn backoff_limit(s: &ServerProcess) {
    apply(s, &job_yaml("fails", "  backoffLimit: 1", "1"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=90s",
    ]);
    assert_eq!(
        condition(s, "fails", "FailureTarget"),
        "True/BackoffLimitExceeded"
    );
    assert_eq!(condition(s, "fails", "Failed"), "True/BackoffLimitExceeded");
    assert_eq!(get(s, &["job", "fails"], "{.status.failed}"), "2");
    assert_eq!(job_pods(s, "fails").len(), 2);
    let describe = s.kubectl_ok(&["describe", "job", "fails"]);
    assert!(
        describe.contains("BackoffLimitExceeded")
            && describe.contains("Job has reached the specified backoff limit"),
        "{describe}"
    );
    wait_until("fails' finalizers released", || {
        no_finalizers_left(s, "fails")
    });
}

/// Indexed: each index once, pods named and hostnamed by index, completedIndexes "0-2".
fn indexed(s: &ServerProcess) {
    let spec = "  completions: 3\n  parallelism: 3\n  completionMode: Indexed";
    apply(s, &job_yaml("idx", spec, "0"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=60s",
    ]);
    assert_eq!(get(s, &["job", "idx"], "{.status.completedIndexes}"), "0-2");
    let hostnames = get(
        s,
        &["pods", "-l", "batch.kubernetes.io/job-name=idx"],
        "{range .items[*]}{.spec.hostname} {.metadata.labels.batch\\.kubernetes\\.io/job-completion-index}{\"\\n\"}{end}",
    );
    let mut lines: Vec<&str> = hostnames.lines().collect();
    lines.sort();
    assert_eq!(lines, ["idx-0 0", "idx-1 1", "idx-2 2"]);
    for pod in job_pods(s, "idx") {
        assert!(
            pod.starts_with("idx-0-") || pod.starts_with("idx-1-") || pod.starts_with("idx-2-"),
            "{pod}"
        );
    }
}

/// A FailJob rule on exit code 42 fails the Job at the first such pod, whatever backoffLimit.
fn pod_failure_policy(s: &ServerProcess) {
    let spec = r#"  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}"#;
    apply(s, &job_yaml("policy", spec, "42"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/policy",
        "--timeout=60s",
    ]);
    assert_eq!(condition(s, "policy", "Failed"), "True/PodFailurePolicy");
    let message = get(
        s,
        &["job", "policy"],
        "{.status.conditions[?(@.type==\"Failed\")].message}",
    );
    assert!(
        message.starts_with("Container main for pod default/policy-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(job_pods(s, "policy").len(), 1);
}

/// Created suspended: no pods, Suspended=True; resumed: runs to completion.
fn suspend(s: &ServerProcess) {
    apply(
        s,
        &job_yaml("later", "  suspend: true\n  completions: 2", "0"),
    );
    wait_until("Suspended condition", || {
        condition(s, "later", "Suspended") == "True/JobSuspended"
    });
    assert!(job_pods(s, "later").is_empty());
    assert_eq!(get(s, &["job", "later"], "{.status.startTime}"), "");
    s.kubectl_ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/later",
        "--timeout=60s",
    ]);
    assert_eq!(condition(s, "later", "Suspended"), "False/JobResumed");
    let events = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=later",
    ]);
    assert!(
        events.contains("Suspended") && events.contains("Resumed"),
        "{events}"
    );
}

/// activeDeadlineSeconds: pods that never end are stopped and the Job fails.
fn deadline(s: &ServerProcess) {
    apply(
        s,
        &job_yaml(
            "slow",
            "  activeDeadlineSeconds: 3\n  parallelism: 2\n  completions: 2",
            "never",
        ),
    );
    wait_until("slow's pods run", || {
        get(s, &["job", "slow"], "{.status.active}") == "2"
    });
    s.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/slow",
        "--timeout=60s",
    ]);
    assert_eq!(condition(s, "slow", "Failed"), "True/DeadlineExceeded");
    assert_eq!(get(s, &["job", "slow"], "{.status.active}"), "0");
    assert_eq!(get(s, &["job", "slow"], "{.status.failed}"), "2");
    wait_until("slow's pods gone", || job_pods(s, "slow").is_empty());
}

/// Deleting a running Job removes its pods (their finalizers released).
fn delete_running(s: &ServerProcess) {
    apply(
        s,
        &job_yaml("gone", "  parallelism: 2\n  completions: 4", "never"),
    );
    wait_until("gone's pods run", || job_pods(s, "gone").len() == 2);
    s.kubectl_ok(&["delete", "job", "gone"]);
    wait_until("gone's pods deleted", || job_pods(s, "gone").is_empty());
}

/// ttlSecondsAfterFinished: the finished Job (and its pods) go that long after completion.
fn ttl_after_finished_start(s: &ServerProcess) {
    apply(s, &job_yaml("brief", "  ttlSecondsAfterFinished: 2", "0"));
}

fn ttl_after_finished_check(s: &ServerProcess) {
    wait_until("brief deleted after its TTL", || {
        !s.kubectl_ok(&["get", "jobs", "-o", "name"])
            .contains("job.batch/brief")
    });
    wait_until("brief's pods gone", || job_pods(s, "brief").is_empty());
}

/// A CronJob every minute: its first Job is created for the minute, named by it, completes
/// and shows in the status; `kubectl create job --from=cronjob/…` runs its template.
fn cronjob(s: &ServerProcess) {
    let yaml = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  timeZone: Etc/UTC
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 1
  jobTemplate:
    metadata: {labels: {from: tick}}
    spec:
      template:
        metadata: {annotations: {hollow/exit: "0"}}
        spec:
          restartPolicy: Never
          containers:
          - {name: main, image: busybox}
"#;
    apply(s, yaml);
    let table = s.kubectl_ok(&["get", "cronjob", "tick"]);
    assert!(
        table.contains("SCHEDULE") && table.contains("* * * * *"),
        "{table}"
    );
    s.kubectl_ok(&["create", "job", "--from=cronjob/tick", "by-hand"]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=60s",
    ]);
    // The first scheduled run: at most a minute away.
    let mut scheduled = String::new();
    for _ in 0..150 {
        // (kubectl's by-hand Job is owned by the CronJob too.)
        scheduled = get(s, &["jobs", "-l", "from=tick"], "{.items[*].metadata.name}")
            .split_whitespace()
            .find(|n| n.starts_with("tick-"))
            .unwrap_or_default()
            .to_string();
        if !scheduled.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        scheduled.starts_with("tick-"),
        "no scheduled Job: {scheduled:?}"
    );
    let minute: i64 = scheduled
        .trim_start_matches("tick-")
        .parse()
        .expect("minutes");
    let stamp = get(
        s,
        &["job", &scheduled],
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    let at: k8s_openapi::jiff::Timestamp = stamp.parse().expect("RFC 3339 time");
    assert_eq!(at.as_second(), minute * 60, "{stamp}");
    s.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        &format!("job/{scheduled}"),
        "--timeout=60s",
    ]);
    wait_until("tick's status shows the success", || {
        !get(s, &["cronjob", "tick"], "{.status.lastSuccessfulTime}").is_empty()
            && get(s, &["cronjob", "tick"], "{.status.active}").is_empty()
    });
    assert!(!get(s, &["cronjob", "tick"], "{.status.lastScheduleTime}").is_empty());
    let describe = s.kubectl_ok(&["describe", "cronjob", "tick"]);
    assert!(
        describe.contains(&format!("Created job {scheduled}"))
            && describe.contains(&format!(
                "Saw completed job: {scheduled}, condition: Complete"
            )),
        "{describe}"
    );
    s.kubectl_ok(&[
        "patch",
        "cronjob",
        "tick",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
}

#[test]
fn batch_controllers_with_kubectl() {
    // Hollow nodes post no heartbeats: the node lifecycle controller must not declare them
    // unreachable during the test.
    let s = ServerProcess::start_with(&["--node-monitor-grace-period=1h"]);
    for name in ["n1", "n2"] {
        apply(&s, &node_yaml(name));
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let client = runtime
        .block_on(skiff_controllers::client_from_kubeconfig(&s.kubeconfig))
        .expect("client");
    runtime.spawn(hollow_kubelet(client));

    ttl_after_finished_start(&s);
    completes(&s);
    ttl_after_finished_check(&s);
    cronjob(&s);
    indexed(&s);
    pod_failure_policy(&s);
    suspend(&s);
    deadline(&s);
    delete_running(&s);
    backoff_limit(&s);
    drop(runtime);
}
