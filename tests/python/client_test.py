"""The Python `kubernetes` client (PyPI), unchanged, against skiff's API server.

Run by tests/apiserver_clients.rs with KUBECONFIG pointing at a fresh server. Exits non-zero on
the first failed check.
"""
import os
import sys
import tempfile

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

config.load_kube_config(os.environ["KUBECONFIG"])
core = client.CoreV1Api()
apps = client.AppsV1Api()
NS = "py"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


# Typed calls send no Content-Type and no kind/apiVersion.
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "c1"}, "data": {"a": "1"}})
check(cm.metadata.resource_version and cm.metadata.uid, "create returns server metadata")
got = core.read_namespaced_config_map("c1", NS)
check(got.data == {"a": "1"}, "read back")

got.data["b"] = "2"
updated = core.replace_namespaced_config_map("c1", NS, got)
check(updated.data == {"a": "1", "b": "2"}, "replace")
try:
    got.data["c"] = "3"  # still carries the old resourceVersion
    core.replace_namespaced_config_map("c1", NS, got)
    check(False, "stale replace must conflict")
except ApiException as e:
    check(e.status == 409, f"stale replace is 409, got {e.status}")

patched = core.patch_namespaced_config_map("c1", NS, {"data": {"d": "4"}})
check(patched.data == {"a": "1", "b": "2", "d": "4"}, "strategic merge patch from a dict")

# Lists: label selectors, limit and continue.
for i in range(5):
    core.create_namespaced_config_map(NS, {"metadata": {"name": f"l{i}", "labels": {"batch": "x"}}})
page = core.list_namespaced_config_map(NS, label_selector="batch=x", limit=2)
check(len(page.items) == 2 and page.metadata._continue, "first page")
names = [c.metadata.name for c in page.items]
while page.metadata._continue:
    page = core.list_namespaced_config_map(NS, label_selector="batch=x", limit=2, _continue=page.metadata._continue)
    names += [c.metadata.name for c in page.items]
check(names == [f"l{i}" for i in range(5)], f"paged list: {names}")
check(len(core.list_namespaced_config_map(NS, label_selector="batch!=x").items) >= 1, "!= selector")

# Deployments and the scale subresource (strategic merge patch on /scale).
apps.create_namespaced_deployment(NS, {
    "metadata": {"name": "web"},
    "spec": {"selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})
scale = apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
check(scale.spec.replicas == 4, "scale patch")
check(apps.read_namespaced_deployment("web", NS).spec.replicas == 4, "scale reaches the deployment")

# Watch, then resume from a resourceVersion.
rv = core.list_namespaced_config_map(NS).metadata.resource_version
core.create_namespaced_config_map(NS, {"metadata": {"name": "w1"}})
w = watch.Watch()
seen = []
for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=10):
    if ev["object"].metadata.name == "kube-root-ca.crt":
        continue  # the root CA publisher's, whenever it gets to the new namespace
    seen.append((ev["type"], ev["object"].metadata.name))
    if ev["object"].metadata.name == "w1":
        resume_from = ev["object"].metadata.resource_version
        w.stop()
check(seen == [("ADDED", "w1")], f"watch from list RV: {seen}")
core.create_namespaced_config_map(NS, {"metadata": {"name": "w2"}})
core.delete_namespaced_config_map("w2", NS)
seen = []
for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=resume_from, timeout_seconds=10):
    seen.append((ev["type"], ev["object"].metadata.name))
    if ev["type"] == "DELETED":
        w.stop()
check(seen == [("ADDED", "w2"), ("DELETED", "w2")], f"resumed watch: {seen}")

# Delete, then NotFound.
core.delete_namespaced_config_map("c1", NS)
try:
    core.read_namespaced_config_map("c1", NS)
    check(False, "deleted configmap is gone")
except ApiException as e:
    check(e.status == 404, "404 after delete")

# The dynamic client walks legacy discovery. Its discovery cache goes to a directory of this
# run's own (by default it writes /tmp/osrcp-<hash>.json and never removes it).
with tempfile.TemporaryDirectory() as cache_dir:
    dyn = DynamicClient(client.ApiClient(), cache_file=os.path.join(cache_dir, "discovery.json"))
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap").get(namespace=NS)
    ours = [c for c in cms.items if c.metadata.name != "kube-root-ca.crt"]
    check(len(ours) == 6, f"dynamic list: {len(ours)}")
    deploys = dyn.resources.get(api_version="apps/v1", kind="Deployment").get(namespace=NS)
    check(deploys.items[0].metadata.name == "web", "dynamic deployments")

# The OpenAPI documents through the client's own ApiClient: v2 (one Swagger 2.0 document, the
# kinds under their upstream definition names) and a v3 group version whose paths declare their
# path parameters.
import json

api = client.ApiClient()


def raw_get(path):
    request = api.param_serialize(method="GET", resource_path=path, auth_settings=["BearerToken"])
    response = api.call_api(*request)
    response.read()
    return response


r = raw_get("/openapi/v2")
v2 = json.loads(r.data)
check(r.status == 200 and v2["swagger"] == "2.0", "openapi v2")
check((r.getheader("ETag") or "").startswith('"'), "openapi v2 ETag")
pod = v2["definitions"]["io.k8s.api.core.v1.Pod"]
check(pod["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}], "v2 Pod kind")
check(v2["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"] == "listCoreV1NamespacedPod", "v2 operation id")
v3 = json.loads(raw_get("/openapi/v3/apis/apps/v1").data)
item = v3["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
declared = sorted(p["name"] for p in item["parameters"] if p["in"] == "path")
check(declared == ["name", "namespace"], f"v3 path parameters: {declared}")
# The typed calls above wrote as the client's user agent names it.
managers = [m.manager for m in core.read_namespaced_config_map("l0", NS).metadata.managed_fields or []]
check(managers and all(m == "OpenAPI-Generator" for m in managers), f"managers: {managers}")
print("python kubernetes client: OK")
