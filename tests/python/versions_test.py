"""The Python `kubernetes` client (PyPI), unchanged, on resources served in two versions: an
events.k8s.io/v1 Event written with EventsV1Api and read with CoreV1Api (and the reverse), and an
autoscaling/v1 HorizontalPodAutoscaler written with AutoscalingV1Api and read with
AutoscalingV2Api.

Run by tests/apiserver_versions.rs with KUBECONFIG pointing at a server. Exits non-zero on the
first failed check.
"""
import datetime
import json
import os
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(os.environ["KUBECONFIG"])
core = client.CoreV1Api()
events = client.EventsV1Api()
hpa_v1 = client.AutoscalingV1Api()
hpa_v2 = client.AutoscalingV2Api()
NS = "default"


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


now = datetime.datetime.now(datetime.timezone.utc)
ev = client.EventsV1Event(
    metadata=client.V1ObjectMeta(name="py-new"),
    event_time=now,
    reporting_controller="example.com/py",
    reporting_instance="py-1",
    action="Check",
    reason="Checked",
    note="written through events.k8s.io",
    type="Normal",
    regarding=client.V1ObjectReference(kind="Pod", name="web-0", namespace=NS),
)
events.create_namespaced_event(NS, ev)
got = core.read_namespaced_event("py-new", NS)
check(got.message == "written through events.k8s.io", f"core message: {got.message}")
check(got.involved_object.name == "web-0", "core involvedObject")
check(got.reporting_component == "example.com/py", "core reportingComponent")

core.create_namespaced_event(NS, client.CoreV1Event(
    metadata=client.V1ObjectMeta(name="py-old"),
    involved_object=client.V1ObjectReference(kind="Pod", name="web-1", namespace=NS),
    reason="Old", message="written through v1", type="Warning", count=3,
    source=client.V1EventSource(component="py"),
    first_timestamp=now, last_timestamp=now,
))
# A core event has no eventTime, which the client's EventsV1Event model requires (it fails the
# same way on upstream's server): read the JSON as the server sends it.
got = json.loads(events.read_namespaced_event("py-old", NS, _preload_content=False).data)
check(got["apiVersion"] == "events.k8s.io/v1", f"apiVersion: {got['apiVersion']}")
check(got["note"] == "written through v1", f"events.k8s.io note: {got.get('note')}")
check(got["regarding"]["name"] == "web-1", "events.k8s.io regarding")
check(got["deprecatedCount"] == 3, "events.k8s.io deprecatedCount")
check(got["deprecatedSource"]["component"] == "py", "events.k8s.io deprecatedSource")
listed = json.loads(events.list_namespaced_event(
    NS, field_selector="regarding.name=web-1", _preload_content=False).data)
check([e["metadata"]["name"] for e in listed["items"]] == ["py-old"], "field selector regarding.name")
listed = events.list_namespaced_event(NS, field_selector="reportingController=example.com/py")
check([e.metadata.name for e in listed.items] == ["py-new"], "field selector reportingController")

try:
    events.create_namespaced_event(NS, client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="py-bad"), event_time=now, type="Normal",
        reporting_controller="c", reporting_instance="i", action="A", reason="R"))
    check(True, "")
except ApiException as e:
    check(False, f"a complete event refused: {e.body}")
# (A refused events.k8s.io event is checked with kubectl: this client refuses it locally.)

hpa_v1.create_namespaced_horizontal_pod_autoscaler(NS, client.V1HorizontalPodAutoscaler(
    metadata=client.V1ObjectMeta(name="py-hpa"),
    spec=client.V1HorizontalPodAutoscalerSpec(
        scale_target_ref=client.V1CrossVersionObjectReference(
            api_version="apps/v1", kind="Deployment", name="web"),
        min_replicas=1, max_replicas=4, target_cpu_utilization_percentage=60)))
v2 = hpa_v2.read_namespaced_horizontal_pod_autoscaler("py-hpa", NS)
check(len(v2.spec.metrics) == 1, "one metric")
check(v2.spec.metrics[0].resource.name == "cpu", "cpu metric")
check(v2.spec.metrics[0].resource.target.average_utilization == 60, "60% in v2")
v1 = hpa_v1.read_namespaced_horizontal_pod_autoscaler("py-hpa", NS)
check(v1.spec.target_cpu_utilization_percentage == 60, "60% in v1")
# Only what v1 cannot hold of the spec travels in annotations; the controller manager's
# autoscaler may have written status conditions meanwhile (those are v1 annotations too).
spec_annotations = [k for k in (v1.metadata.annotations or {})
                    if k in ("autoscaling.alpha.kubernetes.io/metrics",
                             "autoscaling.alpha.kubernetes.io/behavior",
                             "autoscaling.alpha.kubernetes.io/scale-down-tolerance",
                             "autoscaling.alpha.kubernetes.io/scale-up-tolerance")]
check(not spec_annotations, "no round-trip annotations for a CPU-only HPA")

print("python versions: OK")
