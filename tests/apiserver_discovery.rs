//! skiff's discovery against upstream's: every group, version, resource, subresource, kind,
//! scope, verb, short name and category that kube-apiserver 1.37 serves with default flags
//! (`control/apiserver/gen/upstream-discovery.tsv`, generated from the upstream binary by
//! `control/apiserver/gen/upstream_discovery.py`), read through kubectl from a running
//! `skiff server`. What skiff does not serve yet is listed below with the issue that builds it;
//! the test fails when a listed gap closes without the list shrinking, when a new gap appears,
//! and when skiff serves something upstream does not.

mod common;

use std::collections::BTreeMap;

use common::ServerProcess;
use serde_json::Value;

/// Resources (`group/version<TAB>resource`) upstream serves that skiff does not yet, and why.
const NOT_SERVED: &[(&str, &str)] = &[];

fn get_json(s: &ServerProcess, path: &str) -> Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "--raw", path])).expect("discovery JSON")
}

/// The discovery of `s` in the generator's line format, keyed by `group/version<TAB>resource`.
fn served(s: &ServerProcess) -> BTreeMap<String, String> {
    let mut versions = vec![(String::from("v1"), String::from("/api/v1"))];
    for group in get_json(s, "/apis")["groups"].as_array().expect("groups") {
        for v in group["versions"].as_array().expect("versions") {
            let gv = v["groupVersion"].as_str().expect("groupVersion");
            versions.push((gv.to_string(), format!("/apis/{gv}")));
        }
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for (gv, path) in versions {
        for r in get_json(s, &path)["resources"]
            .as_array()
            .expect("resources")
        {
            let name = r["name"].as_str().expect("name");
            let mut verbs = strings(&r["verbs"]);
            verbs.sort();
            let line = [
                gv.clone(),
                name.to_string(),
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["namespaced"].as_bool().unwrap_or(false).to_string(),
                verbs.join(","),
                strings(&r["shortNames"]).join(","),
                strings(&r["categories"]).join(","),
            ]
            .join("\t");
            out.insert(format!("{gv}\t{name}"), line);
        }
    }
    out
}

#[test]
fn discovery_matches_upstream() {
    let upstream: BTreeMap<String, String> =
        include_str!("../control/apiserver/gen/upstream-discovery.tsv")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut f = l.splitn(3, '\t');
                let key = format!(
                    "{}\t{}",
                    f.next().unwrap_or_default(),
                    f.next().unwrap_or_default()
                );
                (key, l.to_string())
            })
            .collect();
    let s = ServerProcess::start();
    let skiff = served(&s);
    let mut problems = Vec::new();
    for (key, want) in &upstream {
        let gap = NOT_SERVED.iter().find(|(k, _)| k == key);
        match (skiff.get(key), gap) {
            (Some(got), None) if got != want => {
                problems.push(format!("differs:\n  upstream {want}\n  skiff    {got}"))
            }
            (Some(_), Some(_)) => {
                problems.push(format!("served now, drop it from NOT_SERVED: {key}"))
            }
            (None, None) => problems.push(format!("not served: {want}")),
            _ => {}
        }
    }
    for key in skiff.keys().filter(|k| !upstream.contains_key(*k)) {
        problems.push(format!("upstream does not serve: {key}"));
    }
    for (key, _) in NOT_SERVED
        .iter()
        .filter(|(k, _)| !upstream.contains_key(*k))
    {
        problems.push(format!(
            "NOT_SERVED names what upstream does not serve: {key}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
