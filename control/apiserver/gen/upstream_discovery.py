#!/usr/bin/env python3
"""Writes the discovery of a running API server as one line per resource, sorted:

    group/version <TAB> resource <TAB> kind <TAB> namespaced <TAB> verbs <TAB> short names <TAB> categories

Run against upstream's kube-apiserver (built by ../shared/tools/build-anchors.sh, default flags,
on etcd) to regenerate `upstream-discovery.tsv`, which tests/apiserver_discovery.rs compares with
skiff's discovery. Usage: upstream_discovery.py URL TOKEN > upstream-discovery.tsv
"""
import json
import ssl
import sys
import urllib.request


def get(base, token, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.load(r)


def lines(base, token):
    versions = [("", "v1", "/api/v1")]
    for g in get(base, token, "/apis")["groups"]:
        for v in g["versions"]:
            versions.append((g["name"], v["version"], "/apis/" + v["groupVersion"]))
    out = []
    for group, version, path in versions:
        gv = f"{group}/{version}" if group else version
        for r in get(base, token, path)["resources"]:
            out.append("\t".join([
                gv,
                r["name"],
                r.get("kind", ""),
                str(r.get("namespaced", False)).lower(),
                ",".join(sorted(r.get("verbs") or [])),
                ",".join(r.get("shortNames") or []),
                ",".join(r.get("categories") or []),
            ]))
    return sorted(out)


if __name__ == "__main__":
    print("\n".join(lines(sys.argv[1], sys.argv[2])))
