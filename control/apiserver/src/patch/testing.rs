//! Objects and shorthands shared by the patch tests.

use serde_json::{json, Value};

use super::strategic::is_directive_key;
use super::{apply_patch, PatchError, PatchType};

pub(super) const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
pub(super) const POD: &str = "io.k8s.api.core.v1.Pod";

pub(super) fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"note": "keep"},
            "finalizers": ["example.com/a", "example.com/c"],
            "resourceVersion": "7"
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "FOO", "value": "1"}, {"name": "BAR", "value": "2"}],
                        "resources": {"limits": {"cpu": "500m"}},
                        "terminationMessagePath": "/dev/termination-log"
                    }],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "restartPolicy": "Always"
                }
            }
        },
        "status": {"replicas": 1}
    })
}

pub(super) fn strategic(
    type_name: &str,
    original: &Value,
    patch: Value,
) -> Result<Value, PatchError> {
    apply_patch(
        type_name,
        original,
        PatchType::Strategic,
        patch.to_string().as_bytes(),
    )
}

pub(super) fn container(object: &Value, index: usize) -> &Value {
    &object["spec"]["template"]["spec"]["containers"][index]
}

pub(super) fn contains_directive(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, child)| is_directive_key(key) || contains_directive(child)),
        Value::Array(list) => list.iter().any(contains_directive),
        _ => false,
    }
}
