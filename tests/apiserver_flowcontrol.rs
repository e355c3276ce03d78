//! API Priority and Fairness against `skiff server`, driven by curl and kubectl: a priority level
//! with one seat and a queue of one for user `flood-a`; a request of hers holds the seat (its
//! body never comes until the test sends it), the next one waits, everything beyond is refused
//! with upstream's 429 and `Retry-After`, while user `user-b` (another level) is served; the
//! `X-Kubernetes-PF-*` headers, the `apiserver_flowcontrol_*` metrics, the debug dump, the
//! queue wait limit (`time-out`) and a FlowSchema's `Dangling` condition as kubectl shows it.
//! No latencies are asserted: only status codes, headers and counts.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};

use common::{wait_until, ServerProcess};

const LEVEL: &str = r#"
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: flood}
spec:
  type: Limited
  limited:
    nominalConcurrencyShares: 1
    lendablePercent: 0
    borrowingLimitPercent: 0
    limitResponse:
      type: Queue
      queuing: {queues: 1, handSize: 1, queueLengthLimit: 1}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: flood}
spec:
  priorityLevelConfiguration: {name: flood}
  matchingPrecedence: 500
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: User, user: {name: flood-a}}]
    resourceRules:
    - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: orphan}
spec:
  priorityLevelConfiguration: {name: no-such-level}
  matchingPrecedence: 600
  rules:
  - subjects: [{kind: User, user: {name: nobody}}]
    nonResourceRules: [{verbs: ["*"], nonResourceURLs: ["*"]}]
"#;

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn curl_command(s: &ServerProcess, user: Option<&str>, path: &str) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {}", s.token())]);
    if let Some(user) = user {
        cmd.args(["-H", &format!("Impersonate-User: {user}")]);
    }
    cmd.arg(format!("{}{path}", s.url()));
    cmd
}

fn parse(output: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(output).to_string();
    // The last header block (an upload may be answered `100 Continue` first).
    let mut rest = text.as_str();
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").expect("a response");
        let status: u16 = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        return Reply {
            status,
            headers,
            body: body.to_string(),
        };
    }
}

fn curl(s: &ServerProcess, user: Option<&str>, path: &str) -> Reply {
    let out = curl_command(s, user, path).output().expect("run curl");
    parse(&out.stdout)
}

/// A curl process killed by its pid when dropped (a request the test holds open).
struct Held(Option<Child>);

impl Held {
    fn finish(mut self, body: &str) -> Reply {
        let mut child = self.0.take().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).unwrap();
        drop(stdin);
        parse(&child.wait_with_output().unwrap().stdout)
    }

    fn running(&mut self) -> bool {
        matches!(self.0.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    fn wait(mut self) -> Reply {
        let child = self.0.take().unwrap();
        parse(&child.wait_with_output().unwrap().stdout)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A create by `user` whose body comes only when `finish` sends it: the request holds its seat
/// (the handler reads the body) until then.
fn held_create(s: &ServerProcess, user: &str) -> Held {
    let mut cmd = curl_command(s, Some(user), "/api/v1/namespaces/default/configmaps");
    cmd.args(["--http1.1", "-X", "POST", "-T", "-"])
        .args(["-H", "Content-Type: application/json", "-H", "Expect:"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    Held(Some(cmd.spawn().expect("start curl")))
}

fn background_get(s: &ServerProcess, user: &str, path: &str) -> Held {
    let mut cmd = curl_command(s, Some(user), path);
    cmd.stdout(Stdio::piped());
    Held(Some(cmd.spawn().expect("start curl")))
}

/// One column of `dump_priority_levels` for the level `flood`.
fn flood_column(s: &ServerProcess, column: &str) -> u64 {
    let dump = curl(
        s,
        None,
        "/debug/api_priority_and_fairness/dump_priority_levels",
    );
    assert_eq!(dump.status, 200, "{}", dump.body);
    let mut lines = dump.body.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').map(str::trim).collect();
    let index = header.iter().position(|h| *h == column).unwrap();
    lines
        .map(|l| l.split(',').map(str::trim).collect::<Vec<_>>())
        .find(|cells| cells[0] == "flood")
        .map(|cells| cells[index].parse().unwrap())
        .unwrap_or(0)
}

fn metric(s: &ServerProcess, line_prefix: &str) -> Option<u64> {
    let metrics = curl(s, None, "/metrics");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .map(|v| v.trim().parse().unwrap())
}

fn uid(s: &ServerProcess, kind: &str, name: &str) -> String {
    s.kubectl_ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
}

#[test]
fn a_flooded_level_queues_rejects_and_leaves_others_served() {
    // One seat for every level that has shares: the flood level's limit is 1.
    let s = ServerProcess::start_with(&[
        "--max-requests-inflight=1",
        "--max-mutating-requests-inflight=0",
    ]);
    let file = s.dir.path().join("apf.yaml");
    std::fs::write(&file, LEVEL).unwrap();
    s.kubectl_ok(&["apply", "-f", file.to_str().unwrap()]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "flood-admins",
        "--clusterrole=cluster-admin",
        "--user=flood-a",
        "--user=user-b",
    ]);
    let flood_fs = uid(&s, "flowschema", "flood");
    let flood_pl = uid(&s, "prioritylevelconfiguration", "flood");
    let default_pl = uid(&s, "prioritylevelconfiguration", "global-default");
    let default_fs = uid(&s, "flowschema", "global-default");

    // The headers name what the request fell into (kubectl and client-go read them).
    wait_until("flood-a's requests classified as flood", || {
        let r = curl(&s, Some("flood-a"), "/api/v1/namespaces/default/configmaps");
        r.status == 200 && r.header("X-Kubernetes-PF-FlowSchema-UID") == Some(flood_fs.as_str())
    });
    let r = curl(&s, Some("flood-a"), "/api/v1/namespaces/default/configmaps");
    assert_eq!(
        r.header("X-Kubernetes-PF-PriorityLevel-UID"),
        Some(flood_pl.as_str())
    );
    let b = curl(&s, Some("user-b"), "/api/v1/namespaces/default/configmaps");
    assert_eq!(b.status, 200);
    assert_eq!(
        b.header("X-Kubernetes-PF-FlowSchema-UID"),
        Some(default_fs.as_str())
    );
    assert_eq!(
        b.header("X-Kubernetes-PF-PriorityLevel-UID"),
        Some(default_pl.as_str())
    );

    // flood-a's create holds the level's only seat; her list waits in the queue of one.
    let dispatched = flood_column(&s, "DispatchedRequests");
    let held = held_create(&s, "flood-a");
    wait_until("the held create executing", || {
        flood_column(&s, "ExecutingRequests") == 1
    });
    let queued = background_get(&s, "flood-a", "/api/v1/namespaces/default/configmaps");
    wait_until("the list queued", || {
        flood_column(&s, "WaitingRequests") == 1
    });

    // Anything more of hers is refused at once: queue-full, upstream's 429.
    let mut floods = Vec::new();
    for _ in 0..20 {
        floods.push(background_get(
            &s,
            "flood-a",
            "/api/v1/namespaces/default/configmaps",
        ));
    }
    // Meanwhile user-b, in another level, is served every time.
    for _ in 0..10 {
        let b = curl(&s, Some("user-b"), "/api/v1/namespaces/default/configmaps");
        assert_eq!(b.status, 200, "{}", b.body);
    }
    for flood in floods {
        let r = flood.wait();
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.body, "Too many requests, please try again later.\n");
        let retry: u64 = r.header("Retry-After").unwrap().parse().unwrap();
        assert!((1..=32).contains(&retry));
        assert_eq!(
            r.header("X-Kubernetes-PF-FlowSchema-UID"),
            Some(flood_fs.as_str())
        );
    }
    let rejected = "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"flood\",priority_level=\"flood\",reason=\"queue-full\"} ";
    assert_eq!(metric(&s, rejected), Some(20));
    let inqueue =
        "apiserver_flowcontrol_current_inqueue_requests{flow_schema=\"flood\",priority_level=\"flood\"} ";
    assert_eq!(metric(&s, inqueue), Some(1));
    let nominal = "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"flood\"} ";
    assert_eq!(metric(&s, nominal), Some(1));

    // The body comes: the create completes and the queued list gets the seat.
    let created = held.finish(r#"{"metadata":{"name":"held"}}"#);
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = queued.wait();
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("\"ConfigMapList\""));
    assert_eq!(flood_column(&s, "DispatchedRequests"), dispatched + 2);
    assert_eq!(flood_column(&s, "RejectedRequests"), 20);

    // A request waits at most a quarter of its deadline: `timeout=4s` waits a second for the
    // seat another held create keeps, then is refused (time-out).
    let held = held_create(&s, "flood-a");
    wait_until("the second held create executing", || {
        flood_column(&s, "ExecutingRequests") == 1
    });
    let r = curl(
        &s,
        Some("flood-a"),
        "/api/v1/namespaces/default/configmaps?timeout=4s",
    );
    assert_eq!(r.status, 429);
    assert!(r.header("Retry-After").is_some());
    assert_eq!(flood_column(&s, "TimedoutRequests"), 1);
    let timed_out = "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"flood\",priority_level=\"flood\",reason=\"time-out\"} ";
    assert_eq!(metric(&s, timed_out), Some(1));
    let created = held.finish(r#"{"metadata":{"name":"held2"}}"#);
    assert_eq!(created.status, 201, "{}", created.body);

    // A watch holds a seat only while it is set up: with one open, flood-a's next request
    // still gets the level's only seat (were it held, the request would time out: a 429).
    let dispatched = flood_column(&s, "DispatchedRequests");
    let mut watch = background_get(
        &s,
        "flood-a",
        "/api/v1/namespaces/default/configmaps?watch=1",
    );
    wait_until("the watch dispatched and its seat given back", || {
        flood_column(&s, "DispatchedRequests") == dispatched + 1
            && flood_column(&s, "ExecutingRequests") == 0
    });
    let r = curl(
        &s,
        Some("flood-a"),
        "/api/v1/namespaces/default/configmaps?timeout=4s",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(watch.running(), "the watch is still open");
    drop(watch);

    // The configuration controller marks the schema whose level does not exist.
    wait_until("orphan's Dangling condition", || {
        let out = s.kubectl_ok(&[
            "get",
            "flowschema",
            "orphan",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Dangling\")].status}/{.status.conditions[?(@.type==\"Dangling\")].reason}",
        ]);
        out == "True/NotFound"
    });
    let message = s.kubectl_ok(&[
        "get",
        "flowschema",
        "orphan",
        "-o",
        "jsonpath={.status.conditions[0].message}",
    ]);
    assert_eq!(
        message,
        "This FlowSchema references the PriorityLevelConfiguration object named \"no-such-level\" but there is no such object"
    );
    let table = s.kubectl_ok(&["get", "flowschemas"]);
    let orphan = table.lines().find(|l| l.starts_with("orphan ")).unwrap();
    assert!(orphan.trim_end().ends_with("True"), "{table}");
    let flood = table.lines().find(|l| l.starts_with("flood ")).unwrap();
    assert!(flood.trim_end().ends_with("False"), "{table}");
}

/// With `--enable-priority-and-fairness=false` requests are not classified: no headers.
#[test]
fn without_priority_and_fairness_no_classification() {
    let s = ServerProcess::start_with(&["--enable-priority-and-fairness=false"]);
    let r = curl(&s, None, "/api/v1/namespaces/default/configmaps");
    assert_eq!(r.status, 200);
    assert!(r.header("X-Kubernetes-PF-FlowSchema-UID").is_none());
    let metrics = curl(&s, None, "/metrics");
    assert!(!metrics
        .body
        .contains("apiserver_flowcontrol_dispatched_requests_total{"));
    // The debug dumps are not served either.
    let dump = curl(
        &s,
        None,
        "/debug/api_priority_and_fairness/dump_priority_levels",
    );
    assert_eq!(dump.status, 404);
}
