"""The Python `kubernetes` client (PyPI), unchanged, on CustomResourceDefinitions and custom objects:
ApiextensionsV1Api for the CRD, CustomObjectsApi for its objects (create, get, list with selectors,
replace, merge patch, status and scale, watch, delete), the DynamicClient's discovery of the new
resource, and a CRD deleted with its objects.

Run by tests/apiserver_crd.rs with KUBECONFIG pointing at a fresh server. Exits non-zero on the
first failed check.
"""
import os
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

config.load_kube_config(os.environ["KUBECONFIG"])
ext = client.ApiextensionsV1Api()
objects = client.CustomObjectsApi()
core = client.CoreV1Api()
G, V, P, NS = "py.example.com", "v1", "gizmos", "py-crd"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def wait(what, f, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f():
            return
        time.sleep(0.2)
    check(False, f"timed out waiting for {what}")


core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
crd = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{P}.{G}"},
    "spec": {
        "group": G,
        "scope": "Namespaced",
        "names": {"plural": P, "singular": "gizmo", "kind": "Gizmo", "shortNames": ["gz"]},
        "versions": [{
            "name": V, "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "size": {"type": "integer", "minimum": 0, "default": 1},
                    "note": {"type": "string"},
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "integer"}}},
            }}},
            "subresources": {"status": {}, "scale": {
                "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready"}},
        }],
    },
}
created = ext.create_custom_resource_definition(crd)
check(created.status.stored_versions == [V], "storedVersions starts with the storage version")


def established():
    got = ext.read_custom_resource_definition(f"{P}.{G}")
    return any(c.type == "Established" and c.status == "True" for c in (got.status.conditions or []))


wait("Established", established)
got = ext.read_custom_resource_definition(f"{P}.{G}")
check(got.status.accepted_names.short_names == ["gz"], "accepted names")

# Objects: defaulting, pruning (the server drops unknown fields), selectors.
obj = objects.create_namespaced_custom_object(G, V, NS, P, {
    "apiVersion": f"{G}/{V}", "kind": "Gizmo",
    "metadata": {"name": "g1", "labels": {"color": "red"}},
    "spec": {"note": "hello", "unknown": "dropped"},
})
check(obj["spec"] == {"note": "hello", "size": 1}, f"defaulted and pruned: {obj['spec']}")
check(obj["metadata"]["generation"] == 1, "generation 1")
objects.create_namespaced_custom_object(G, V, NS, P, {
    "apiVersion": f"{G}/{V}", "kind": "Gizmo", "metadata": {"name": "g2"}, "spec": {"size": 2}})
listed = objects.list_namespaced_custom_object(G, V, NS, P, label_selector="color=red")
check([i["metadata"]["name"] for i in listed["items"]] == ["g1"], "label selector")
listed = objects.list_cluster_custom_object(G, V, P, field_selector="metadata.name=g2")
check([i["metadata"]["name"] for i in listed["items"]] == ["g2"], "field selector")
page = objects.list_namespaced_custom_object(G, V, NS, P, limit=1)
check(len(page["items"]) == 1 and page["metadata"].get("continue"), "first page")
rest = objects.list_namespaced_custom_object(G, V, NS, P, limit=1, _continue=page["metadata"]["continue"])
check([i["metadata"]["name"] for i in rest["items"]] == ["g2"], "second page")

# Invalid objects are 422 with upstream's message.
try:
    objects.create_namespaced_custom_object(G, V, NS, P, {
        "apiVersion": f"{G}/{V}", "kind": "Gizmo", "metadata": {"name": "bad"}, "spec": {"size": -1}})
    check(False, "negative size must be refused")
except ApiException as e:
    check(e.status == 422, f"422, got {e.status}")
    check("spec.size in body should be greater than or equal to 0" in e.body, e.body)

# Replace, merge patch, status, scale.
g1 = objects.get_namespaced_custom_object(G, V, NS, P, "g1")
g1["spec"]["note"] = "replaced"
g1 = objects.replace_namespaced_custom_object(G, V, NS, P, "g1", g1)
check(g1["spec"]["note"] == "replaced" and g1["metadata"]["generation"] == 2, "replace bumps generation")
g1 = objects.patch_namespaced_custom_object(G, V, NS, P, "g1", {"spec": {"size": 3}})
check(g1["spec"]["size"] == 3, "merge patch")
st = objects.patch_namespaced_custom_object_status(G, V, NS, P, "g1", {"status": {"ready": 2}, "spec": {"size": 9}})
check(st["status"] == {"ready": 2} and st["spec"]["size"] == 3, "status patch changes status only")
check(st["metadata"]["generation"] == 3, "status does not bump generation")
scale = objects.get_namespaced_custom_object_scale(G, V, NS, P, "g1")
check(scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 2, f"scale: {scale}")
objects.patch_namespaced_custom_object_scale(G, V, NS, P, "g1", {"spec": {"replicas": 5}})
check(objects.get_namespaced_custom_object(G, V, NS, P, "g1")["spec"]["size"] == 5, "scaled")

# Watch from a list's resourceVersion.
rv = objects.list_namespaced_custom_object(G, V, NS, P)["metadata"]["resourceVersion"]
objects.delete_namespaced_custom_object(G, V, NS, P, "g2")
w = watch.Watch()
seen = []
for event in w.stream(objects.list_namespaced_custom_object, G, V, NS, P, resource_version=rv, timeout_seconds=5):
    seen.append((event["type"], event["object"]["metadata"]["name"]))
    if event["type"] == "DELETED":
        w.stop()
check(("DELETED", "g2") in seen, f"watch saw the deletion: {seen}")

# The DynamicClient finds the new resource through discovery.
dyn = DynamicClient(client.ApiClient())
gizmos = dyn.resources.get(api_version=f"{G}/{V}", kind="Gizmo")
check(gizmos.namespaced and [i.metadata.name for i in gizmos.get(namespace=NS).items] == ["g1"], "dynamic client")

# Deleting the CRD deletes its objects first.
ext.delete_custom_resource_definition(f"{P}.{G}")


def crd_gone():
    try:
        ext.read_custom_resource_definition(f"{P}.{G}")
        return False
    except ApiException as e:
        return e.status == 404


wait("the CRD to go", crd_gone)
try:
    objects.list_namespaced_custom_object(G, V, NS, P)
    check(False, "the resource is no longer served")
except ApiException as e:
    check(e.status == 404, f"404 once the CRD is gone, got {e.status}")
core.delete_namespace(NS)
print("python crd: OK")
