use serde_json::json;

use crate::patch::testing::{
    container, contains_directive, deployment, strategic, DEPLOYMENT, POD,
};
use crate::patch::{apply_patch, PatchError, PatchType};

// --- kubectl apply (client-side) ---------------------------------------

#[test]
fn kubectl_apply_changes_image_and_keeps_other_fields() {
    let original = deployment();
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}\n"}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.26", "name": "nginx"}]
            }}
        }
    });
    let patched = strategic(DEPLOYMENT, &original, patch).unwrap();
    assert_eq!(patched["spec"]["replicas"], json!(3));
    assert_eq!(
        patched["metadata"]["annotations"],
        json!({"note": "keep", "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\"}\n"})
    );
    let containers = patched["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    let mut expected = container(&original, 0).clone();
    expected["image"] = json!("nginx:1.26");
    assert_eq!(containers[0], expected);
    // Untouched parts stay exactly as they were, nulls included.
    assert_eq!(
        patched["spec"]["template"]["metadata"],
        original["spec"]["template"]["metadata"]
    );
    assert_eq!(patched["status"], original["status"]);
    assert!(!contains_directive(&patched));
}

#[test]
fn kubectl_apply_adds_and_removes_a_container() {
    let original = deployment();
    let add = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [{"image": "busybox", "name": "sidecar", "args": ["sleep", "3600"]}]
    }}}});
    let with_sidecar = strategic(DEPLOYMENT, &original, add).unwrap();
    let names: Vec<&str> = with_sidecar["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nginx", "sidecar"]);
    assert_eq!(container(&with_sidecar, 0), container(&original, 0));
    assert_eq!(
        container(&with_sidecar, 1),
        &json!({"image": "busybox", "name": "sidecar", "args": ["sleep", "3600"]})
    );

    let remove = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]
    }}}});
    let without = strategic(DEPLOYMENT, &with_sidecar, remove).unwrap();
    assert_eq!(
        without["spec"]["template"]["spec"]["containers"],
        original["spec"]["template"]["spec"]["containers"]
    );
    assert!(!contains_directive(&without));
}

#[test]
fn kubectl_patch_new_container_goes_first_without_order_directive() {
    // As in the upstream "kubectl patch" task page: a container the
    // server does not have yet is placed before the existing ones.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis"}]}}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    assert_eq!(container(&patched, 0)["name"], json!("redis"));
    assert_eq!(container(&patched, 1)["name"], json!("nginx"));
}

#[test]
fn delete_env_var_by_merge_key() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "nginx",
        "$setElementOrder/env": [{"name": "BAR"}],
        "env": [{"$patch": "delete", "name": "FOO"}]
    }]}}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    assert_eq!(
        container(&patched, 0)["env"],
        json!([{"name": "BAR", "value": "2"}])
    );
    assert_eq!(container(&patched, 0)["image"], json!("nginx:1.25"));

    // Without the order directive too.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "nginx", "env": [{"$patch": "delete", "name": "BAR"}, {"name": "FOO", "value": "9"}]
    }]}}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    assert_eq!(
        container(&patched, 0)["env"],
        json!([{"name": "FOO", "value": "9"}])
    );
}

#[test]
fn null_removes_a_label() {
    let patched = strategic(
        DEPLOYMENT,
        &deployment(),
        json!({"metadata": {"labels": {"tier": null, "missing": null}}}),
    )
    .unwrap();
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn finalizers_are_a_set() {
    let patched = strategic(
        DEPLOYMENT,
        &deployment(),
        json!({"metadata": {"finalizers": ["example.com/b", "example.com/a"]}}),
    )
    .unwrap();
    // Upstream's order: patch items in patch order, new ones ahead of the
    // server-only ones.
    assert_eq!(
        patched["metadata"]["finalizers"],
        json!(["example.com/b", "example.com/a", "example.com/c"])
    );

    let deleted = strategic(
        DEPLOYMENT,
        &deployment(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}),
    )
    .unwrap();
    assert_eq!(deleted["metadata"]["finalizers"], json!(["example.com/c"]));

    // kubectl apply removing one finalizer and adding another.
    let both = strategic(
        DEPLOYMENT,
        &deployment(),
        json!({"metadata": {
            "$setElementOrder/finalizers": ["example.com/c", "example.com/d"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "finalizers": ["example.com/d"]
        }}),
    )
    .unwrap();
    assert_eq!(
        both["metadata"]["finalizers"],
        json!(["example.com/c", "example.com/d"])
    );
    assert!(!contains_directive(&both));
}

#[test]
fn retain_keys_on_strategy() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));

    let bad =
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}});
    let err = strategic(DEPLOYMENT, &deployment(), bad).unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of retainKeys");
    assert_eq!(err.http_code(), 400);
}

#[test]
fn atomic_lists_are_replaced_and_maps_merged() {
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "b", "operator": "Exists"}],
        "containers": [{"name": "nginx", "args": ["-v"], "resources": {"limits": {"memory": "1Gi"}}}]
    }}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    assert_eq!(
        patched["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
    assert_eq!(container(&patched, 0)["args"], json!(["-v"]));
    assert_eq!(
        container(&patched, 0)["resources"],
        json!({"limits": {"cpu": "500m", "memory": "1Gi"}})
    );
}

#[test]
fn patch_replace_and_delete_directives() {
    let replace = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "x"}
    ]}}}});
    let patched = strategic(DEPLOYMENT, &deployment(), replace).unwrap();
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );

    let replace_map = json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}});
    let patched = strategic(DEPLOYMENT, &deployment(), replace_map).unwrap();
    assert_eq!(patched["metadata"]["labels"], json!({"new": "1"}));

    let delete_map = json!({"spec": {"strategy": {"$patch": "delete"}}});
    let patched = strategic(DEPLOYMENT, &deployment(), delete_map).unwrap();
    assert_eq!(patched["spec"]["strategy"], json!({}));

    let merge_map_directive = json!({"metadata": {"labels": {"$patch": "merge", "new": "1"}}});
    let patched = strategic(DEPLOYMENT, &deployment(), merge_map_directive).unwrap();
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "tier": "frontend", "new": "1"})
    );

    let unknown = json!({"metadata": {"labels": {"$patch": "explode"}}});
    let err = strategic(DEPLOYMENT, &deployment(), unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown patch type: explode in map: map[$patch:explode]"
    );
    assert_eq!(err.http_code(), 500);
}

#[test]
fn new_values_lose_directives_and_nulls() {
    let patch = json!({"spec": {"template": {"spec": {
        "volumes": [{"name": "data", "emptyDir": {"medium": null}, "$retainKeys": ["name", "emptyDir"]}],
        "securityContext": {"runAsUser": 1000, "fsGroup": null, "$setElementOrder/sysctls": []},
        "nodeSelector": {"$patch": "delete"}
    }}}});
    let patched = strategic(DEPLOYMENT, &deployment(), patch).unwrap();
    let spec = &patched["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"], json!([{"name": "data", "emptyDir": {}}]));
    assert_eq!(spec["securityContext"], json!({"runAsUser": 1000}));
    assert!(spec.get("nodeSelector").is_none());
}

#[test]
fn merge_errors_look_like_upstream() {
    let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    let err = strategic(DEPLOYMENT, &deployment(), missing_key).unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[image:x] does not contain declared merge key: name"
    );
    assert_eq!(err.http_code(), 500);

    let mixed = json!({"metadata": {"finalizers": [1]}});
    let err = strategic(DEPLOYMENT, &deployment(), mixed).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("list element types are not identical"),
        "{err}"
    );

    let lists = json!({"metadata": {"finalizers": [["a"]]}});
    let original = json!({"metadata": {"finalizers": []}});
    let err = strategic(DEPLOYMENT, &original, lists).unwrap_err();
    assert!(matches!(err, PatchError::ListOfLists));
    assert_eq!(err.http_code(), 422);

    let bad_order = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"name": "other", "image": "x"}]
    }}}});
    let err = strategic(DEPLOYMENT, &deployment(), bad_order).unwrap_err();
    assert!(
        err.to_string().starts_with("the order in patch list:"),
        "{err}"
    );

    let bad_prefix = json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}});
    let err = strategic(DEPLOYMENT, &deployment(), bad_prefix).unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of primitive list");

    let err = apply_patch(DEPLOYMENT, &deployment(), PatchType::Strategic, b"[1]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert_eq!(err.http_code(), 400);
    let err = apply_patch(DEPLOYMENT, &deployment(), PatchType::Strategic, b"{\"a\":").unwrap_err();
    assert_eq!(err.http_code(), 400);
}

#[test]
fn unknown_types_merge_maps_and_replace_lists() {
    let original = json!({"spec": {"items": [{"name": "a"}], "map": {"x": 1}}});
    let patched = strategic(
        "com.example.v1.Widget",
        &original,
        json!({"spec": {"items": [{"name": "b"}], "map": {"y": 2}}}),
    )
    .unwrap();
    assert_eq!(
        patched,
        json!({"spec": {"items": [{"name": "b"}], "map": {"x": 1, "y": 2}}})
    );
}

#[test]
fn scale_patch_from_python_client() {
    let scale = json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1},
        "status": {"replicas": 1, "selector": "app=web"}
    });
    for patch_type in [PatchType::Strategic, PatchType::Merge] {
        let patched = apply_patch(
            "io.k8s.api.autoscaling.v1.Scale",
            &scale,
            patch_type,
            br#"{"spec": {"replicas": 5}}"#,
        )
        .unwrap();
        assert_eq!(patched["spec"], json!({"replicas": 5}));
        assert_eq!(patched["status"], scale["status"]);
    }
}

#[test]
fn pod_conditions_merge_by_type() {
    let pod = json!({
        "metadata": {"name": "p"},
        "status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ]}
    });
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let patched = strategic(POD, &pod, patch).unwrap();
    assert_eq!(
        patched["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
    );
}
