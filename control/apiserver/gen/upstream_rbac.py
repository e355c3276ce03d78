#!/usr/bin/env python3
"""Writes the default RBAC policy a running API server bootstrapped, as one JSON document:

    {"clusterroles": [...], "clusterrolebindings": [...], "roles": [...], "rolebindings": [...]}

Each object keeps only what defines the policy (name, namespace, labels, annotations, rules,
aggregationRule, roleRef, subjects). Aggregated roles keep their aggregationRule and no rules:
skiff's aggregation controller fills them, as upstream's does.

Run against upstream's kube-apiserver (built by ../shared/tools/build-anchors.sh, with
--authorization-mode=Node,RBAC, on etcd) to regenerate `upstream-rbac.json`, which skiff
bootstraps and reconciles on every start. Usage: upstream_rbac.py URL TOKEN > upstream-rbac.json
"""
import json
import ssl
import sys
import urllib.request

BASE = "/apis/rbac.authorization.k8s.io/v1/"


def get(base, token, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.load(r)


def trim(obj):
    meta = obj["metadata"]
    out = {"metadata": {"name": meta["name"]}}
    if "namespace" in meta:
        out["metadata"]["namespace"] = meta["namespace"]
    for k in ("labels", "annotations"):
        if meta.get(k):
            out["metadata"][k] = meta[k]
    if "aggregationRule" in obj:
        out["aggregationRule"] = obj["aggregationRule"]
        out["rules"] = []
    elif "rules" in obj:
        out["rules"] = obj["rules"] or []
    for k in ("roleRef", "subjects"):
        if k in obj:
            out[k] = obj[k]
    return out


def policy(base, token):
    doc = {}
    for kind in ("clusterroles", "clusterrolebindings", "roles", "rolebindings"):
        items = [trim(o) for o in get(base, token, BASE + kind)["items"]]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        doc[kind] = items
    return doc


if __name__ == "__main__":
    print(json.dumps(policy(sys.argv[1], sys.argv[2]), indent=1, sort_keys=True))
