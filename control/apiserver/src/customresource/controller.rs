//! The CRD controllers upstream's apiextensions server runs beside its handler, as one loop in
//! the API server fed by the CRD watch cache:
//!
//! - **names** (`status/naming_controller.go`): a CRD's plural, singular, short names, kind and
//!   list kind are accepted unless another CRD of the same group already holds them
//!   (`NamesAccepted` False with reason `PluralConflict`, `SingularConflict`,
//!   `ShortNamesConflict`, `KindConflict` or `ListKindConflict` and the message `"x" is already
//!   in use`); accepted names go to `status.acceptedNames`, and the resource is served under
//!   those, not under `spec.names`;
//! - **establishing** (`establish/establishing_controller.go`): once the names are accepted the
//!   CRD is `Established` (reason `InitialNamesAccepted`) and served — discovery and the REST
//!   paths change at once (the [`Registry`](super::Registry) is rebuilt in the same pass);
//! - **cleanup** (`finalizer/crd_finalizer.go`): a CRD marked for deletion keeps being served
//!   while every custom object is deleted (through the normal DELETE, so their own finalizers
//!   hold them); when none is left the `customresourcecleanup.apiextensions.k8s.io` finalizer
//!   is removed and the CRD goes.
//!
//! Each pass looks at every CRD (there are tens, not thousands). A pass runs on every CRD
//! event, and every two seconds while a deletion waits for objects to go.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::handlers::{Shared, Target};
use crate::registry::apiextensions::{condition, is_true, set_condition, CLEANUP_FINALIZER};
use crate::resources::{self, ResourceInfo, Sub};

fn crds() -> &'static ResourceInfo {
    resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("customresourcedefinitions are served")
}

/// Runs the controllers for as long as the server runs.
pub async fn run(server: Shared) {
    let info = crds();
    let prefix = info.key_prefix();
    loop {
        let cacher = match server.caches.get(info).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("CRD controller: {}", e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut rx = match cacher.start_watch(None, &prefix) {
            Ok(start) => start.rx,
            Err(e) => {
                tracing::warn!("CRD controller: {}", e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let (objects, _) = cacher.snapshot(&prefix);
            let waiting = reconcile(&server, objects.iter().map(|o| (**o).clone()).collect()).await;
            let tick = if waiting {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(60)
            };
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        // Take whatever else arrived: one pass covers it all.
                        while rx.try_recv().is_ok() {}
                    }
                    Err(RecvError::Closed) => break,
                },
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }
}

/// One pass over every CRD; returns whether a deletion is waiting for objects to go.
async fn reconcile(server: &Shared, mut all: Vec<Value>) -> bool {
    all.sort_by(|a, b| {
        let created = |v: &Value| {
            v.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        created(a).cmp(&created(b)).then(name(a).cmp(name(b)))
    });
    let mut waiting = false;
    for i in 0..all.len() {
        let crd = all[i].clone();
        let deleting = crd.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            if has_cleanup_finalizer(&crd) {
                match cleanup(server, &crd).await {
                    Ok(true) => {}
                    Ok(false) => waiting = true,
                    Err(e) => {
                        tracing::warn!(crd = name(&crd), "deleting custom objects: {e}");
                        waiting = true;
                    }
                }
            }
            continue;
        }
        let others: Vec<&Value> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, v)| v)
            .collect();
        let mut next = crd.clone();
        names_and_conditions(&mut next, &others);
        if next != crd {
            match write_status(server, &next).await {
                Ok(stored) => all[i] = stored,
                Err(e) => tracing::debug!(crd = name(&crd), "CRD status: {e}"),
            }
        }
    }
    // Serve what is established (a CRD being deleted stays served until it is gone, so its
    // objects can be read and deleted).
    let serve: Vec<Value> = all
        .into_iter()
        .filter(|c| is_true(c, "Established"))
        .collect();
    server.custom.set(&serve);
    waiting
}

fn name(crd: &Value) -> &str {
    crd.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn has_cleanup_finalizer(crd: &Value) -> bool {
    crd.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER))
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn list(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's `equalToAcceptedOrFresh`.
fn fresh(requested: &str, accepted: &str, used: &HashSet<String>) -> Result<(), String> {
    if requested == accepted || !used.contains(requested) {
        Ok(())
    } else {
        Err(format!("{requested:?} is already in use"))
    }
}

/// The naming controller's and establishing controller's decision for one CRD.
fn names_and_conditions(crd: &mut Value, others: &[&Value]) {
    let group = text(crd, "/spec/group").to_string();
    let mut resources_used = HashSet::new();
    let mut kinds_used = HashSet::new();
    for other in others.iter().filter(|o| text(o, "/spec/group") == group) {
        let names = other
            .pointer("/status/acceptedNames")
            .cloned()
            .unwrap_or_default();
        for key in ["plural", "singular"] {
            if let Some(n) = names[key].as_str().filter(|n| !n.is_empty()) {
                resources_used.insert(n.to_string());
            }
        }
        resources_used.extend(list(&names, "/shortNames"));
        for key in ["kind", "listKind"] {
            if let Some(n) = names[key].as_str().filter(|n| !n.is_empty()) {
                kinds_used.insert(n.to_string());
            }
        }
    }
    let requested = crd["spec"]["names"].clone();
    let accepted = crd
        .pointer("/status/acceptedNames")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut new_names = accepted.clone();
    let mut problem: Option<(&str, String)> = None;
    for (key, reason, used) in [
        ("plural", "PluralConflict", &resources_used),
        ("singular", "SingularConflict", &resources_used),
    ] {
        match fresh(
            text(&requested, &format!("/{key}")),
            text(&accepted, &format!("/{key}")),
            used,
        ) {
            Ok(()) => new_names[key] = requested[key].clone(),
            Err(e) => problem = Some((reason, e)),
        }
    }
    let short_requested = list(&requested, "/shortNames");
    let short_accepted = list(&accepted, "/shortNames");
    if short_requested != short_accepted {
        let errors: Vec<String> = short_requested
            .iter()
            .filter(|s| !short_accepted.contains(s))
            .filter_map(|s| fresh(s, "", &resources_used).err())
            .collect();
        if errors.is_empty() {
            if short_requested.is_empty() {
                if let Some(o) = new_names.as_object_mut() {
                    o.remove("shortNames");
                }
            } else {
                new_names["shortNames"] = json!(short_requested);
            }
        } else {
            let message = if errors.len() == 1 {
                errors[0].clone()
            } else {
                format!("[{}]", errors.join(", "))
            };
            problem = Some(("ShortNamesConflict", message));
        }
    }
    for (key, reason) in [("kind", "KindConflict"), ("listKind", "ListKindConflict")] {
        match fresh(
            text(&requested, &format!("/{key}")),
            text(&accepted, &format!("/{key}")),
            &kinds_used,
        ) {
            Ok(()) => new_names[key] = requested[key].clone(),
            Err(e) => problem = Some((reason, e)),
        }
    }
    match requested.get("categories") {
        Some(c) if c.as_array().is_some_and(|a| !a.is_empty()) => {
            new_names["categories"] = c.clone()
        }
        _ => {
            if let Some(o) = new_names.as_object_mut() {
                o.remove("categories");
            }
        }
    }
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    crd["status"]["acceptedNames"] = new_names;
    match &problem {
        Some((reason, message)) => set_condition(crd, "NamesAccepted", "False", reason, message),
        None => set_condition(
            crd,
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
        ),
    }
    let established = is_true(crd, "Established");
    if !established {
        if problem.is_none() {
            set_condition(
                crd,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            );
        } else if condition(crd, "Established").is_none() {
            set_condition(
                crd,
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            );
        }
    }
}

async fn write_status(server: &Shared, crd: &Value) -> Result<Value, String> {
    let target = Target {
        info: crds(),
        namespace: None,
        name: Some(name(crd).to_string()),
        sub: Some(Sub::Status),
    };
    server
        .update(&target, &crate::server::system_ctx(), crd.clone())
        .await
        .map(|(_, v)| v)
        .map_err(|e| e.message)
}

/// Deletes the CRD's objects; when none is left, lifts the finalizer. `Ok(true)`: done.
async fn cleanup(server: &Shared, crd: &Value) -> Result<bool, String> {
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/status/acceptedNames/plural");
    let info = match server.custom.find_any(group, plural) {
        Some(info) if !plural.is_empty() => Some(info),
        _ => None,
    };
    if let Some(info) = info {
        if text(
            condition(crd, "Terminating").unwrap_or(&Value::Null),
            "/reason",
        ) != "InstanceDeletionInProgress"
        {
            let mut next = crd.clone();
            set_condition(
                &mut next,
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            );
            write_status(server, &next).await?;
            // The write is a new event: the next pass carries on with the new version.
            return Ok(false);
        }
        let page = server
            .storage
            .list(&info.key_prefix(), None, 0, 0)
            .await
            .map_err(|e| e.message)?;
        if !page.items.is_empty() {
            for item in page.items {
                if item.object.pointer("/metadata/deletionTimestamp").is_some() {
                    continue;
                }
                let target = Target {
                    info,
                    namespace: item
                        .object
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    name: item
                        .object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    sub: None,
                };
                if let Err(e) = server
                    .delete(&target, &crate::server::system_ctx(), &json!({}))
                    .await
                {
                    if e.code != 404 {
                        return Err(e.message);
                    }
                }
            }
            // Objects without finalizers are gone already; others wait for theirs.
            let left = server
                .storage
                .list(&info.key_prefix(), None, 0, 1)
                .await
                .map_err(|e| e.message)?;
            if !left.items.is_empty() {
                return Ok(false);
            }
        }
    }
    // Nothing left: lift the finalizer; the CRD goes with it.
    let mut next = crd.clone();
    let finalizers: Vec<Value> = next["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != CLEANUP_FINALIZER)
        .collect();
    next["metadata"]["finalizers"] = json!(finalizers);
    let target = Target {
        info: crds(),
        namespace: None,
        name: Some(name(crd).to_string()),
        sub: None,
    };
    server
        .update(&target, &crate::server::system_ctx(), next)
        .await
        .map_err(|e| e.message)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str, short: &[&str]) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": "example.com", "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind, "listKind": format!("{kind}List"), "shortNames": short}}})
    }

    #[test]
    fn names_are_accepted_unless_taken() {
        let mut first = crd("widgets.example.com", "widgets", "Widget", &["wd"]);
        names_and_conditions(&mut first, &[]);
        assert_eq!(
            condition(&first, "NamesAccepted").unwrap()["reason"],
            "NoConflicts"
        );
        assert_eq!(
            condition(&first, "Established").unwrap()["reason"],
            "InitialNamesAccepted"
        );
        assert_eq!(
            first["status"]["acceptedNames"]["shortNames"],
            json!(["wd"])
        );
        let mut second = crd("gadgets.example.com", "gadgets", "Widget", &["wd"]);
        names_and_conditions(&mut second, &[&first]);
        let c = condition(&second, "NamesAccepted").unwrap();
        assert_eq!(c["status"], "False");
        // Every name is checked; the last conflict found is the one reported, as upstream's.
        assert_eq!(c["reason"], "ListKindConflict");
        assert_eq!(c["message"], "\"WidgetList\" is already in use");
        assert_eq!(
            condition(&second, "Established").unwrap()["reason"],
            "NotAccepted"
        );
        assert_eq!(second["status"]["acceptedNames"]["plural"], "gadgets");
        assert!(second["status"]["acceptedNames"].get("kind").is_none());
        assert!(!is_true(&second, "Established"));
    }
}
