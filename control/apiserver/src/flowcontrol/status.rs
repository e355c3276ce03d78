//! The configuration controller's status writes (upstream's `presyncFlowSchemaStatus`): every
//! FlowSchema gets a `Dangling` condition, `True` with reason `NotFound` when the
//! PriorityLevelConfiguration it names does not exist, `False` with reason `Found` when it
//! does, written through `/status` whenever it differs from what is stored. It runs whenever the
//! compiled configuration changes (checked each second).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::config::Reference;
use crate::handlers::{ApiServer, Target};
use crate::resources::{self, Sub};

/// Upstream's field manager for these writes.
pub const FIELD_MANAGER: &str = "api-priority-and-fairness-config-consumer-v1";

/// The condition as it should read: (status, reason, message).
pub fn desired(reference: &Reference) -> (&'static str, &'static str, String) {
    let level = &reference.level;
    if reference.dangling {
        (
            "True",
            "NotFound",
            format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} but there is no such object"),
        )
    } else {
        (
            "False",
            "Found",
            format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} and it exists"),
        )
    }
}

/// The schema with its `Dangling` condition set, or `None` when it already reads so.
pub fn updated(reference: &Reference, now: &str) -> Option<Value> {
    let (status, reason, message) = desired(reference);
    let mut object = (*reference.schema).clone();
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let current = conditions.iter().find(|c| c["type"] == "Dangling");
    if current.is_some_and(|c| {
        c["status"] == status && c["reason"] == reason && c["message"] == message.as_str()
    }) {
        return None;
    }
    let condition = json!({
        "type": "Dangling", "status": status, "lastTransitionTime": now,
        "reason": reason, "message": message,
    });
    let mut conditions: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != "Dangling")
        .collect();
    conditions.push(condition);
    object["status"] = json!({"conditions": conditions});
    Some(object)
}

/// Keeps the conditions current until the process ends.
pub async fn run(server: Arc<ApiServer>) {
    let Some(info) = resources::find("flowcontrol.apiserver.k8s.io", "v1", "flowschemas") else {
        return;
    };
    let mut last: Option<Arc<super::Config>> = None;
    loop {
        let config = server.flow_control.config(&server.caches).await;
        let seen = last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &config));
        if !seen {
            let mut all_written = true;
            for reference in &config.compiled.references {
                let Some(object) = updated(reference, &crate::timestamps::now_rfc3339()) else {
                    continue;
                };
                let name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let target = Target {
                    info,
                    namespace: None,
                    name: Some(name.clone()),
                    sub: Some(Sub::Status),
                };
                let mut ctx = crate::server::system_ctx();
                ctx.default_manager = FIELD_MANAGER.into();
                if let Err(e) = server.update(&target, &ctx, object).await {
                    // A conflict means the schema changed: the next configuration has it.
                    tracing::debug!(flowschema = %name, "writing the Dangling condition: {}", e.message);
                    all_written = false;
                }
            }
            if all_written {
                last = Some(config);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(dangling: bool, status: Value) -> Reference {
        Reference {
            schema: Arc::new(json!({"metadata": {"name": "s"}, "status": status})),
            level: "pl".into(),
            dangling,
        }
    }

    #[test]
    fn dangling_condition_as_upstream_words_it() {
        let r = reference(true, json!({}));
        let o = updated(&r, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            o["status"]["conditions"],
            json!([{"type": "Dangling", "status": "True", "reason": "NotFound",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "message": "This FlowSchema references the PriorityLevelConfiguration object named \"pl\" but there is no such object"}])
        );
        // Already so: nothing to write.
        let again = reference(true, o["status"].clone());
        assert!(updated(&again, "later").is_none());
        // The level appears: the condition turns False.
        let found = reference(false, o["status"].clone());
        let o = updated(&found, "2026-01-02T00:00:00Z").unwrap();
        assert_eq!(o["status"]["conditions"][0]["reason"], "Found");
        assert_eq!(o["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}
