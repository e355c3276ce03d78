//! CustomResourceDefinitions against real clients: kubectl 1.32 (the CRDs in `tests/data/crd/`:
//! upstream's CronTab example with printer columns, short names, a category, status and scale
//! subresources and a selectable field; a two-version Widget; a large ServiceMonitor-style CRD),
//! the Python `kubernetes` package (`tests/python/crd_test.py`) and kube-rs' DynamicObject, on one
//! `skiff server` (its controller manager runs the garbage collector, which must handle custom
//! resources).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{wait_until, wait_until_for, ServerProcess};
use serde_json::Value;

fn data(name: &str) -> String {
    format!("{}/tests/data/crd/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn apply_stdin(s: &ServerProcess, args: &[&str], yaml: &str) -> std::process::Output {
    let mut all = vec!["apply", "-f", "-"];
    all.extend_from_slice(args);
    s.kubectl_stdin(&all, yaml)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn get_json(s: &ServerProcess, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all)).expect("kubectl -o json")
}

fn establish(s: &ServerProcess, file: &str, name: &str) {
    s.kubectl_ok(&["apply", "-f", &data(file)]);
    s.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{name}"),
        "--timeout=30s",
    ]);
}

/// The CRD itself: accepted names, conditions, stored versions; discovery and explain.
fn crd_lifecycle(s: &ServerProcess) {
    establish(s, "crontab.yaml", "crontabs.stable.example.com");
    let crd = get_json(s, &["crd", "crontabs.stable.example.com"]);
    let conditions: Vec<(String, String, String)> = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(conditions.contains(&("NamesAccepted".into(), "True".into(), "NoConflicts".into())));
    assert!(conditions.contains(&(
        "Established".into(),
        "True".into(),
        "InitialNamesAccepted".into()
    )));
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"][0], "ct");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
    // Upstream 1.37's CRD columns.
    let out = s.kubectl_ok(&["get", "crd"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "SCOPE", "VERSIONS", "CREATED", "AT"],
        "{out}"
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..3],
        ["crontabs.stable.example.com", "Namespaced", "v1(storage)"]
    );
    let wide = s.kubectl_ok(&["get", "crd", "-o", "wide"]);
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[4..],
        ["stable.example.com", "CronTab", "ct", "true"],
        "{wide}"
    );

    let resources = s.kubectl_ok(&["api-resources", "--api-group=stable.example.com"]);
    let line = resources
        .lines()
        .find(|l| l.starts_with("crontabs"))
        .unwrap_or_else(|| panic!("{resources}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields,
        ["crontabs", "ct", "stable.example.com/v1", "true", "CronTab"]
    );
    assert!(s
        .kubectl_ok(&["api-versions"])
        .lines()
        .any(|l| l == "stable.example.com/v1"));
    let explain = s.kubectl_ok(&["explain", "crontab.spec"]);
    assert!(explain.contains("KIND:       CronTab"), "{explain}");
    assert!(
        explain.contains("cronSpec\t<string> -required-"),
        "{explain}"
    );
    assert!(
        explain.contains("The schedule, in cron format."),
        "{explain}"
    );

    // Invalid definitions are refused with upstream's messages.
    let bad = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: things, kind: Thing}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            properties:
              sizes: {type: array}
"#;
    let out = apply_stdin(s, &[], bad);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"The CustomResourceDefinition "things.example.com" is invalid"#),
        "{err}"
    );
    assert!(err.contains("spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"), "{err}");
    assert!(err.contains("spec.validation.openAPIV3Schema.properties[spec].properties[sizes].items: Required value: must be specified"), "{err}");
    let no_storage = bad
        .replace("storage: true", "storage: false")
        .replace("name: things.example.com", "name: stuff.example.com");
    let err = stderr(&apply_stdin(s, &[], &no_storage));
    assert!(err.contains("metadata.name: Invalid value: \"stuff.example.com\": must be spec.names.plural+\".\"+spec.group"), "{err}");
    assert!(
        err.contains("must have exactly one version marked as storage version"),
        "{err}"
    );

    // A name another CRD of the group holds is not accepted, and the CRD is not served.
    let conflict = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs2.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs2, kind: CronTab, listKind: CronTabCollection}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
"#;
    assert!(apply_stdin(s, &[], conflict).status.success());
    let mut reason = String::new();
    wait_until("NamesAccepted=False", || {
        let crd = get_json(s, &["crd", "crontabs2.stable.example.com"]);
        let c = crd["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "NamesAccepted").cloned());
        match c {
            Some(c) if c["status"] == "False" => {
                reason = format!("{} {}", c["reason"], c["message"]);
                true
            }
            _ => false,
        }
    });
    assert_eq!(reason, r#""KindConflict" "\"CronTab\" is already in use""#);
    let crd = get_json(s, &["crd", "crontabs2.stable.example.com"]);
    let established = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Established")
        .unwrap();
    assert_eq!(
        (&established["status"], &established["reason"]),
        (&Value::from("False"), &Value::from("NotAccepted"))
    );
    let (code, _) = s.curl(
        "GET",
        "/apis/stable.example.com/v1/crontabs2",
        "application/json",
        b"",
    );
    assert_eq!(code, 404);
    s.kubectl_ok(&["delete", "crd", "crontabs2.stable.example.com"]);
}

const CRONTAB: &str = r#"
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: my-new-cron-object
  labels: {tier: batch}
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"#;

/// Objects: printer columns, defaulting, pruning and field validation, schema validation,
/// patches, scale and status.
fn objects(s: &ServerProcess) {
    let out = apply_stdin(s, &[], CRONTAB);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "crontab.stable.example.com/my-new-cron-object created"
    );
    let table = s.kubectl_ok(&["get", "crontabs"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        ["my-new-cron-object", "*", "*", "*", "*", "*/5", "1"]
    );
    let wide = s.kubectl_ok(&["get", "ct", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("IMAGE"), "{wide}");
    assert!(wide.contains("my-awesome-cron-image"), "{wide}");
    // The `all` category.
    let all = s.kubectl_ok(&["get", "all"]);
    assert!(
        all.contains("crontab.stable.example.com/my-new-cron-object"),
        "{all}"
    );
    // Defaults from the schema.
    let obj = get_json(s, &["ct", "my-new-cron-object"]);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(obj["spec"]["mode"], "Fast");
    assert_eq!(obj["metadata"]["generation"], 1);

    // Unknown fields: refused by kubectl's default (Strict), reported with Warn, pruned.
    let extra = CRONTAB.replace("image: my", "color: red\n  image: my");
    let err = stderr(&apply_stdin(s, &[], &extra));
    assert!(
        err.contains(r#"CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: unknown field "spec.color""#),
        "{err}"
    );
    let out = apply_stdin(s, &["--validate=warn"], &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(r#"Warning: unknown field "spec.color""#),
        "{}",
        stderr(&out)
    );
    let out = apply_stdin(s, &["--validate=false"], &extra);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(get_json(s, &["ct", "my-new-cron-object"])["spec"]
        .get("color")
        .is_none());

    // Schema validation, with upstream's messages.
    let err = s.kubectl_err(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":"three"}}"#,
    ]);
    assert!(
        err.contains(r#"The CronTab "my-new-cron-object" is invalid"#),
        "{err}"
    );
    assert!(err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#), "{err}");
    let err = s.kubectl_err(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":11,"cronSpec":"often","mode":"Medium","image":null}}"#,
    ]);
    assert!(err.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"), "{err}");
    assert!(
        err.contains(
            r#"spec.cronSpec: Invalid value: "often": spec.cronSpec in body should match"#
        ),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.mode: Unsupported value: "Medium": supported values: "Fast", "Slow""#),
        "{err}"
    );
    let missing = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: empty}\nspec: {image: x}\n";
    let err = stderr(&apply_stdin(s, &[], missing));
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");

    // Patches: merge and JSON patch; strategic merge is refused as upstream refuses it.
    s.kubectl_ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"v2"}}"#,
    ]);
    s.kubectl_ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
    ]);
    let err = s.kubectl_err(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "-p",
        r#"{"spec":{"image":"v3"}}"#,
    ]);
    assert!(err.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"), "{err}");
    let obj = get_json(s, &["ct", "my-new-cron-object"]);
    assert_eq!(
        (&obj["spec"]["image"], &obj["spec"]["replicas"]),
        (&Value::from("v2"), &Value::from(2))
    );
    let generation = obj["metadata"]["generation"].as_i64().unwrap();

    // Status: only status changes through /status, and no new generation.
    s.kubectl_ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"labelSelector":"app=cron"},"spec":{"image":"ignored"}}"#,
    ]);
    let obj = get_json(s, &["ct", "my-new-cron-object"]);
    assert_eq!(obj["status"]["replicas"], 2);
    assert_eq!(obj["spec"]["image"], "v2");
    assert_eq!(obj["metadata"]["generation"].as_i64().unwrap(), generation);
    // ...and status does not change through the main resource.
    s.kubectl_ok(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":7}}"#,
    ]);
    assert_eq!(
        get_json(s, &["ct", "my-new-cron-object"])["status"]["replicas"],
        2
    );

    // Scale.
    assert_eq!(
        s.kubectl_ok(&["scale", "ct", "my-new-cron-object", "--replicas=5"])
            .trim(),
        "crontab.stable.example.com/my-new-cron-object scaled"
    );
    let obj = get_json(s, &["ct", "my-new-cron-object"]);
    assert_eq!(obj["spec"]["replicas"], 5);
    assert_eq!(
        obj["metadata"]["generation"].as_i64().unwrap(),
        generation + 1
    );
    let scale: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/my-new-cron-object/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 2);
    assert_eq!(scale["status"]["selector"], "app=cron");
    let err = s.kubectl_err(&["scale", "ct", "my-new-cron-object", "--replicas=11"]);
    assert!(err.contains("should be less than or equal to 10"), "{err}");
}

/// Server-side apply, dry run, selectors, chunked lists, watch, protobuf refused.
fn verbs(s: &ServerProcess) {
    let ssa = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: applied\n  labels: {tier: web, owner: a}\nspec:\n  cronSpec: '*/5 * * * *'\n  image: nginx\n";
    let out = apply_stdin(s, &["--server-side"], ssa);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "crontab.stable.example.com/applied serverside-applied"
    );
    let obj = get_json(s, &["ct", "applied", "--show-managed-fields"]);
    let managers: Vec<&str> = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["kubectl"]);
    // A field left out of the next apply is removed.
    let out = apply_stdin(s, &["--server-side"], &ssa.replace(", owner: a", ""));
    assert!(out.status.success(), "{}", stderr(&out));
    let obj = get_json(s, &["ct", "applied"]);
    assert!(obj["metadata"]["labels"].get("owner").is_none(), "{obj}");

    // Under fieldValidation=Strict (kubectl's default) an apply that sets a field the schema
    // does not declare is refused, as structured-merge-diff refuses to type it upstream.
    let out = apply_stdin(
        s,
        &["--server-side"],
        &ssa.replace("image: nginx", "image: nginx\n  bogus: 1"),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failed to create typed patch object (default/applied; stable.example.com/v1, Kind=CronTab): .spec.bogus: field not declared in schema"),
        "{}",
        stderr(&out)
    );
    // A key given twice in a YAML body (kubectl would merge them before sending).
    let twice = "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: applied\nspec:\n  image: a\n  image: b\n";
    let (code, body) = s.curl(
        "PATCH",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/applied?fieldManager=kubectl&fieldValidation=Strict",
        "application/apply-patch+yaml",
        twice.as_bytes(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"error strict decoding patch: yaml: unmarshal errors:\n  line 7: key \"image\" already set in map"#),
        "{body}"
    );

    // Dry run stores nothing.
    let dry = ssa.replace("name: applied", "name: dry");
    let out = s.kubectl_stdin(&["create", "-f", "-", "--dry-run=server"], &dry);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(s
        .kubectl_err(&["get", "ct", "dry"])
        .contains(r#"crontabs.stable.example.com "dry" not found"#));

    // Label and field selectors, including the CRD's selectable field.
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["get", "ct", "-o", "name"];
        all.extend_from_slice(args);
        s.kubectl_ok(&all).lines().map(str::to_string).collect()
    };
    assert_eq!(
        names(&["-l", "tier=web"]),
        ["crontab.stable.example.com/applied"]
    );
    assert_eq!(
        names(&["--field-selector", "metadata.name=my-new-cron-object"]),
        ["crontab.stable.example.com/my-new-cron-object"]
    );
    assert_eq!(
        names(&["--field-selector", "spec.image=nginx"]),
        ["crontab.stable.example.com/applied"]
    );
    let err = s.kubectl_err(&["get", "ct", "--field-selector", "spec.cronSpec=x"]);
    assert!(
        err.contains("field label not supported: spec.cronSpec"),
        "{err}"
    );

    // Chunked lists.
    assert_eq!(names(&["--chunk-size=1"]).len(), 2);
    let page: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs?limit=1",
    ]))
    .unwrap();
    assert_eq!(page["kind"], "CronTabList");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["metadata"]["remainingItemCount"], 1);
    assert!(page["metadata"]["continue"].is_string());

    // Watch: kubectl get -w sees a new object with its columns.
    let mut child = s
        .kubectl_cmd(&["get", "ct", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Lines are read on a thread so that a missing event fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    assert!(first.starts_with("EVENT"), "{first}");
    let watched = ssa.replace("name: applied", "name: watched");
    assert!(apply_stdin(s, &[], &watched).status.success());
    let mut seen = String::new();
    let mut found = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("ADDED") && line.contains("watched") && line.contains("*/5 * * * *") {
            found = true;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{seen}");

    // Watch with bookmarks from a list's resourceVersion, as client-go's reflectors do.
    let list: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
    ]))
    .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    s.kubectl_ok(&["delete", "ct", "watched"]);
    let events = s.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/apis/stable.example.com/v1/namespaces/default/crontabs?watch=true&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=2"),
    ]);
    assert!(
        events
            .lines()
            .any(|l| l.contains(r#""type":"DELETED""#) && l.contains(r#""name":"watched""#)),
        "{events}"
    );

    // Custom objects are JSON only.
    let (code, body) = s.curl(
        "POST",
        "/apis/stable.example.com/v1/namespaces/default/crontabs",
        "application/vnd.kubernetes.protobuf",
        b"k8s\0",
    );
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("UnsupportedMediaType"), "{body}");
}

/// A cluster-scoped CRD with two versions (None conversion), generateName and finalizers.
fn versions_and_scope(s: &ServerProcess) {
    establish(s, "widget.yaml", "widgets.toys.example.com");
    let beta = "apiVersion: toys.example.com/v1beta1\nkind: Widget\nmetadata:\n  generateName: w-\n  finalizers: [toys.example.com/hold]\nspec:\n  size: 3\n";
    let out = s.kubectl_stdin(&["create", "-f", "-", "-o", "name"], beta);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = stdout(&out).trim().rsplit('/').next().unwrap().to_string();
    assert!(name.starts_with("w-") && name.len() == 7, "{name}");
    // Stored once (in v1), read in either version.
    let path = |v: &str| format!("/apis/toys.example.com/{v}/widgets/{name}");
    let v1: Value = serde_json::from_str(&s.kubectl_ok(&["get", "--raw", &path("v1")])).unwrap();
    assert_eq!(v1["apiVersion"], "toys.example.com/v1");
    assert_eq!(v1["spec"]["size"], 3);
    let beta1: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", &path("v1beta1")])).unwrap();
    assert_eq!(beta1["apiVersion"], "toys.example.com/v1beta1");
    let list: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/toys.example.com/v1beta1/widgets",
    ]))
    .unwrap();
    assert_eq!(list["items"][0]["apiVersion"], "toys.example.com/v1beta1");
    let out = s.kubectl_ok(&["get", "crd", "widgets.toys.example.com"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[1..3], ["Cluster", "v1(storage),v1beta1"], "{out}");
    // The preferred version is the highest one.
    let group: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/apis/toys.example.com"])).unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v1");
    assert_eq!(
        get_json(s, &["widgets", &name])["apiVersion"],
        "toys.example.com/v1"
    );

    // CEL rules (v1's schema has them), with their messages; a transition rule on update.
    let bad =
        "apiVersion: toys.example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: -1}\n";
    let err = stderr(&apply_stdin(s, &[], bad));
    assert!(
        err.contains("spec: Invalid value: size must not be negative"),
        "{err}"
    );
    let black = bad.replace("size: -1", "size: 3, color: black");
    let err = stderr(&apply_stdin(s, &[], &black));
    assert!(
        err.contains("spec: Invalid value: a black widget must be larger than 10"),
        "{err}"
    );
    let red = bad
        .replace("name: bad", "name: red")
        .replace("size: -1", "size: 1, color: red");
    assert!(apply_stdin(s, &[], &red).status.success());
    let err = s.kubectl_err(&[
        "patch",
        "widget",
        "red",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"green","size":2}}"#,
    ]);
    assert!(
        err.contains(r#"spec.color: Invalid value: "green": color is immutable"#),
        "{err}"
    );
    s.kubectl_ok(&[
        "patch",
        "widget",
        "red",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":2}}"#,
    ]);
    s.kubectl_ok(&["delete", "widget", "red"]);
    let broken = std::fs::read_to_string(data("widget.yaml"))
        .unwrap()
        .replace("widgets.toys.example.com", "gadgets.toys.example.com")
        .replace("plural: widgets", "plural: gadgets")
        .replace("singular: widget", "singular: gadget")
        .replace("kind: Widget", "kind: Gadget")
        .replace("rule: self == oldSelf", "rule: self ==");
    let err = stderr(&apply_stdin(s, &[], &broken));
    assert!(
        err.contains("spec.versions[1].schema.openAPIV3Schema.properties[spec].properties[color]"),
        "{err}"
    );
    assert!(err.contains("compilation failed"), "{err}");

    // The finalizer holds the object until it is removed.
    s.kubectl_ok(&["delete", "widget", &name, "--wait=false"]);
    let held = get_json(s, &["widget", &name]);
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    s.kubectl_ok(&[
        "patch",
        "widget",
        &name,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("the widget to go", || {
        !s.kubectl(&["get", "widget", &name]).status.success()
    });
}

/// A large realistic CRD: nested schemas, int-or-string, map lists, embedded resources,
/// free-form configuration.
fn realistic(s: &ServerProcess) {
    establish(
        s,
        "monitor.yaml",
        "scrapemonitors.observability.example.com",
    );
    let out = s.kubectl_ok(&["apply", "-f", &data("monitor-object.yaml")]);
    assert_eq!(
        out.trim(),
        "scrapemonitor.observability.example.com/web created"
    );
    let obj = get_json(s, &["smon", "web"]);
    let endpoints = &obj["spec"]["endpoints"];
    assert_eq!(endpoints[0]["targetPort"], 9090);
    assert_eq!(endpoints[1]["targetPort"], "admin-port");
    // Defaults inside list items.
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert_eq!(endpoints[0]["interval"], "30s");
    assert_eq!(endpoints[0]["relabelings"][0]["action"], "replace");
    assert_eq!(endpoints[1]["interval"], "1m30s");
    // Preserved and embedded.
    assert_eq!(
        obj["spec"]["extraConfig"]["global"]["external_labels"]["cluster"],
        "lab"
    );
    // OpenAPI v2 as upstream's CRD builder makes it for kubectl's client-side validation:
    // ObjectMeta by reference, and nodes that keep unknown fields without a type or
    // properties (kubectl would refuse the fields it does not see listed).
    let v2: Value = serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    let (_, def) = v2["definitions"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(".ScrapeMonitor"))
        .expect("the ScrapeMonitor definition");
    assert_eq!(
        def["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert_eq!(
        def["x-kubernetes-group-version-kind"][0]["kind"],
        "ScrapeMonitor"
    );
    let pod_template = &def["properties"]["spec"]["properties"]["podTemplate"];
    assert_eq!(
        pod_template["x-kubernetes-preserve-unknown-fields"], true,
        "{pod_template}"
    );
    assert!(
        pod_template.get("type").is_none() && pod_template.get("properties").is_none(),
        "{pod_template}"
    );
    for flag in [
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        assert!(
            !def.to_string().contains(&format!("\"{flag}\":false")),
            "{def}"
        );
    }
    assert_eq!(obj["spec"]["podTemplate"]["kind"], "Pod");
    assert_eq!(
        obj["spec"]["podTemplate"]["spec"]["containers"][0]["image"],
        "busybox"
    );
    // Printer columns, with a filter expression.
    s.kubectl_ok(&[
        "patch",
        "smon",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"endpoints":2,"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2024-01-01T00:00:00Z"}]}}"#,
    ]);
    let table = s.kubectl_ok(&["get", "smon"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "JOB", "ENDPOINTS", "READY", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..4],
        ["web", "app.kubernetes.io/name", "2", "True"],
        "{table}"
    );
    // Invalid input deep inside.
    let bad = std::fs::read_to_string(data("monitor-object.yaml"))
        .unwrap()
        .replace("name: web", "name: bad")
        .replace("targetPort: 9090", "targetPort: true")
        .replace("operator: In", "operator: Within")
        .replace("port: admin\n", "port: http-metrics\n")
        .replace("serverName: admin.example.com", "serverName: not_a_host!");
    let err = stderr(&apply_stdin(s, &[], &bad));
    for want in [
        r#"spec.endpoints[0].targetPort: Invalid value: "boolean": spec.endpoints[0].targetPort in body must be of type integer,string: "boolean""#,
        r#"spec.selector.matchExpressions[0].operator: Unsupported value: "Within": supported values: "In", "NotIn", "Exists", "DoesNotExist""#,
        r#"spec.endpoints[1]: Duplicate value: {"port":"http-metrics"}"#,
        r#"spec.endpoints[1].tlsConfig.serverName: Invalid value: "not_a_host!": spec.endpoints[1].tlsConfig.serverName in body must be of type hostname: "not_a_host!""#,
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }
}

/// kube-rs: DynamicObject through discovery, list and patch.
fn kube_rs(s: &ServerProcess) {
    use kube::api::{Api, DynamicObject, Patch, PatchParams};
    use kube::discovery::{self, Scope};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&s.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let group = discovery::group(&client, "stable.example.com")
            .await
            .unwrap();
        let (resource, caps) = group.recommended_kind("CronTab").unwrap();
        assert_eq!(caps.scope, Scope::Namespaced);
        assert_eq!(resource.plural, "crontabs");
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let names: Vec<String> = all
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect();
        assert!(
            names.contains(&"my-new-cron-object".to_string()),
            "{names:?}"
        );
        let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
        let patched = api
            .patch(
                "applied",
                &PatchParams::apply("kube-rs"),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "stable.example.com/v1", "kind": "CronTab",
                    "metadata": {"name": "applied"}, "spec": {"image": "from-kube-rs"}
                })),
            )
            .await;
        // kubectl owns spec.image: the second applier conflicts unless it forces.
        let err = patched.unwrap_err().to_string();
        assert!(err.contains("conflict"), "{err}");
        let patched = api
            .patch(
                "applied",
                &PatchParams::apply("kube-rs").force(),
                &Patch::Apply(serde_json::json!({
                    "apiVersion": "stable.example.com/v1", "kind": "CronTab",
                    "metadata": {"name": "applied"}, "spec": {"image": "from-kube-rs"}
                })),
            )
            .await
            .unwrap();
        assert_eq!(patched.data["spec"]["image"], "from-kube-rs");
    });
}

/// The garbage collector deletes a custom object whose owner is gone.
fn garbage_collection(s: &ServerProcess) {
    s.kubectl_ok(&["create", "configmap", "owner"]);
    let uid = s.kubectl_ok(&["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"]);
    let owned = format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: owned\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {uid}}}\nspec:\n  cronSpec: '* * * * *'\n"
    );
    assert!(apply_stdin(s, &[], &owned).status.success());
    s.kubectl_ok(&["delete", "cm", "owner"]);
    // The collector finds new resources by re-running discovery every minute.
    wait_until_for(
        "the garbage collector to delete the owned CronTab",
        Duration::from_secs(150),
        || !s.kubectl(&["get", "ct", "owned"]).status.success(),
    );
}

/// Deleting a CRD deletes its objects first (they may have finalizers), then the CRD.
fn crd_deletion(s: &ServerProcess) {
    s.kubectl_ok(&["create", "namespace", "other"]);
    let other = CRONTAB.replace("name: my-new-cron-object", "name: elsewhere");
    assert!(apply_stdin(s, &["-n", "other"], &other).status.success());
    let held = CRONTAB.replace(
        "name: my-new-cron-object",
        "name: held\n  finalizers: [example.com/hold]",
    );
    assert!(apply_stdin(s, &[], &held).status.success());
    s.kubectl_ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--wait=false",
    ]);
    // Terminating while the held object waits for its finalizer; no new objects meanwhile.
    wait_until("the held CronTab to be marked", || {
        get_json(s, &["ct", "held"])["metadata"]["deletionTimestamp"].is_string()
    });
    let crd = get_json(s, &["crd", "crontabs.stable.example.com"]);
    let terminating = crd["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Terminating")
        .unwrap()
        .clone();
    assert_eq!(terminating["status"], "True");
    assert_eq!(terminating["reason"], "InstanceDeletionInProgress");
    assert!(!s
        .kubectl(&["get", "ct", "elsewhere", "-n", "other"])
        .status
        .success());
    let err = stderr(&apply_stdin(
        s,
        &[],
        &CRONTAB.replace("my-new-cron-object", "late"),
    ));
    assert!(
        err.contains("create not allowed while custom resource definition is terminating"),
        "{err}"
    );
    s.kubectl_ok(&[
        "patch",
        "ct",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("the CRD to go", || {
        !s.kubectl(&["get", "crd", "crontabs.stable.example.com"])
            .status
            .success()
    });
    let (code, _) = s.curl(
        "GET",
        "/apis/stable.example.com/v1/crontabs",
        "application/json",
        b"",
    );
    assert_eq!(code, 404);
    let groups = s.kubectl_ok(&["api-versions"]);
    assert!(!groups.contains("stable.example.com"), "{groups}");
}

/// Runs `tests/python/crd_test.py` (the Python `kubernetes` package).
fn python(s: &ServerProcess) {
    let python =
        std::env::var("SKIFF_PYTHON").unwrap_or_else(|_| "/opt/skiff/venv/bin/python".into());
    let out = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/python/crd_test.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("run {python} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success() && stdout(&out).contains("python crd: OK"),
        "python crd_test.py failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn custom_resource_definitions() {
    let s = ServerProcess::start();
    crd_lifecycle(&s);
    objects(&s);
    verbs(&s);
    garbage_collection(&s);
    versions_and_scope(&s);
    realistic(&s);
    kube_rs(&s);
    python(&s);
    crd_deletion(&s);
}
