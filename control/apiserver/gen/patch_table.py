#!/usr/bin/env python3
"""Generate src/patch_strategies.txt, the strategic-merge-patch table used by src/patch/.

For every Kubernetes type it lists the JSON fields that hold an object, a list
or a map, with the type nested in them and, for lists, the strategic merge
patch strategy (merge by key, merge as a set of primitives, or replace).

Input (read from the local cargo registry, nothing is downloaded):
  * k8s-openapi 0.28.0, v1_32. Each generated type file has the struct (Rust
    field types reveal nested types), a Deserialize impl (JSON name ->
    Rust field) and a DeepMerge impl that spells out the list strategies
    (`crate::merge_strategies::list::map(.., &[|lhs, rhs| lhs.name == rhs.name], ..)`,
    `list::set`, `list::atomic`).

k8s-openapi derives those strategies from the OpenAPI document: when a list
has `x-kubernetes-patch-strategy: merge` (the Go `patchStrategy:"merge"` tag)
its merge key / set-ness comes from the patch tags, which is exactly what
upstream's strategic merge patch uses. Otherwise it falls back to
`x-kubernetes-list-type` (a server-side-apply notion), which strategic merge
patch ignores: such lists are replaced as a whole by SMP. OVERRIDES below
corrects those cases (checked against the Go struct tags in k8s.io/api).

Usage (from the repository root):
  python3 control/apiserver/gen/patch_table.py            # writes the table
  python3 control/apiserver/gen/patch_table.py --check    # fails if it is stale

Table format: `#` starts a comment line; otherwise one field a line, five
tokens separated by one space:
  <type> <json field> <shape> <strategy> <nested type>
    type:       OpenAPI definition name, e.g. io.k8s.api.core.v1.PodSpec
    shape:      object | list | map   (map = JSON object with arbitrary keys)
    strategy:   for lists: merge:<merge key> | merge (primitive set) | atomic;
                `-` for objects and maps (always merged key by key)
    nested:     definition name of the object, of the list element or of
                the map value; `-` when it is a primitive or opaque type
"""

from crates import find_crate
import glob
import os
import re
import sys

K8S_OPENAPI_VERSION = "0.28.0"
K8S_OPENAPI_FEATURE = "v1_32"

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "patch_strategies.txt")

# Where k8s-openapi (i.e. x-kubernetes-list-type) and upstream's strategic
# merge patch (the Go patchStrategy/patchMergeKey struct tags, k8s.io/api
# v1.32) disagree. Key: (definition, json field); value: the SMP strategy.
#
# Every entry here is a list that k8s-openapi marks `list::map` with one key
# or `list::set` only because of `+listType=map|set`, while the Go field has
# no `patchStrategy:"merge"` tag, so SMP replaces it as a whole. (The lists
# that do carry the tag come out of k8s-openapi right: it prefers the patch
# merge key over the list-map keys, e.g. Container.ports -> containerPort,
# ServiceSpec.ports -> port, PodSpec.topologySpreadConstraints -> topologyKey.)
OVERRIDES = {
    # `+listType=set` only.
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpec", "validationActions"): "atomic",
    ("io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicyBindingSpec", "validationActions"): "atomic",
    ("io.k8s.api.apiserverinternal.v1alpha1.ServerStorageVersion", "decodableVersions"): "atomic",
    ("io.k8s.api.apiserverinternal.v1alpha1.ServerStorageVersion", "servedVersions"): "atomic",
    ("io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement", "values"): "atomic",
    ("io.k8s.api.batch.v1.UncountedTerminatedPods", "failed"): "atomic",
    ("io.k8s.api.batch.v1.UncountedTerminatedPods", "succeeded"): "atomic",
    ("io.k8s.api.discovery.v1.Endpoint", "addresses"): "atomic",
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "nonResourceURLs"): "atomic",
    ("io.k8s.api.flowcontrol.v1.NonResourcePolicyRule", "verbs"): "atomic",
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "apiGroups"): "atomic",
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "namespaces"): "atomic",
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "resources"): "atomic",
    ("io.k8s.api.flowcontrol.v1.ResourcePolicyRule", "verbs"): "atomic",
    ("io.k8s.api.storage.v1.CSIDriverSpec", "volumeLifecycleModes"): "atomic",
    # `+listType=map` only: condition lists of the newer APIs (the core,
    # apps, batch, autoscaling, policy, networking, storagemigration and
    # apiregistration ones do carry patchMergeKey:"type").
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyStatus", "conditions"): "atomic",
    ("io.k8s.api.admissionregistration.v1beta1.ValidatingAdmissionPolicyStatus", "conditions"): "atomic",
    ("io.k8s.api.apiserverinternal.v1alpha1.StorageVersionStatus", "conditions"): "atomic",
    ("io.k8s.api.certificates.v1.CertificateSigningRequestStatus", "conditions"): "atomic",
    ("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions"): "atomic",
    ("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions"): "atomic",
    ("io.k8s.api.resource.v1alpha3.AllocatedDeviceStatus", "conditions"): "atomic",
    ("io.k8s.api.resource.v1beta1.AllocatedDeviceStatus", "conditions"): "atomic",
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus", "conditions"): "atomic",
    # `+listType=map` only: other lists.
    ("io.k8s.api.apiserverinternal.v1alpha1.StorageVersionStatus", "storageVersions"): "atomic",
    ("io.k8s.api.core.v1.ResourceRequirements", "claims"): "atomic",
    ("io.k8s.api.core.v1.ResourceStatus", "resources"): "atomic",
}




# Rust module root -> OpenAPI definition prefix.
MODULE_PREFIXES = (
    ("api", "io.k8s.api"),
    ("apimachinery", "io.k8s.apimachinery"),
    ("apiextensions_apiserver", "io.k8s.apiextensions-apiserver"),
    ("kube_aggregator", "io.k8s.kube-aggregator"),
)

HEADER = re.compile(r"^// Generated from definition (\S+)")
STRUCT_START = re.compile(r"^pub struct (\w+) \{\s*$")
STRUCT_FIELD = re.compile(r"^    pub (?:r#)?(\w+): (.+),\s*$")
JSON_NAME = re.compile(r'^\s*"([^"]+)" => Field::Key_(\w+),\s*$')
LIST_CALL = re.compile(
    r"crate::merge_strategies::list::(map|set|atomic)\(\s*&mut self\.(?:r#)?(\w+),"
    r"(?:\s*other\.(?:r#)?\w+,\s*&\[([^\]]*)\])?",
    re.S)
KEY_CLOSURE = re.compile(r"lhs\.(?:r#)?(\w+) == rhs\.")


def definition_for_module(module_parts, struct_name):
    """crate::api::core::v1::PodSpec -> io.k8s.api.core.v1.PodSpec."""
    root = module_parts[0]
    for rust_root, prefix in MODULE_PREFIXES:
        if root == rust_root:
            return ".".join([prefix] + module_parts[1:] + [struct_name])
    return None


def block_after(text, marker):
    """The text of the `{ ... }` block that follows `marker`, or ''."""
    start = text.find(marker)
    if start < 0:
        return ""
    open_at = text.find("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at:i + 1]
    return ""


def strip_wrappers(ty):
    """Remove Option<..> and Box<..> around a Rust type."""
    changed = True
    while changed:
        changed = False
        for wrapper in ("Option<", "std::boxed::Box<"):
            if ty.startswith(wrapper) and ty.endswith(">"):
                ty = ty[len(wrapper):-1]
                changed = True
    return ty


def classify(ty):
    """(shape, inner rust type) for a Rust field type.

    shape is 'list', 'map' or 'value'; inner is the element / map value / the
    type itself.
    """
    ty = strip_wrappers(ty)
    if ty.startswith("std::vec::Vec<") and ty.endswith(">"):
        return "list", strip_wrappers(ty[len("std::vec::Vec<"):-1])
    prefix = "std::collections::BTreeMap<std::string::String, "
    if ty.startswith(prefix) and ty.endswith(">"):
        return "map", strip_wrappers(ty[len(prefix):-1])
    return "value", ty


class TypeInfo:
    def __init__(self, definition, rust_path):
        self.definition = definition
        self.rust_path = rust_path
        self.fields = []          # [(rust field, rust type)]
        self.json_names = {}      # rust field -> json name
        self.list_strategies = {}  # rust field -> ('map', [rust keys]) | ('set',) | ('atomic',)


def parse_file(path, src_root):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    header = HEADER.match(text)
    if not header:
        return None
    rel = os.path.relpath(path, src_root)
    module_parts = rel[:-len(".rs")].split(os.sep)[:-1]

    lines = text.split("\n")
    struct_name = None
    info = None
    in_struct = False
    for line in lines:
        if not in_struct:
            m = STRUCT_START.match(line)
            if m:
                struct_name = m.group(1)
                in_struct = True
                definition = definition_for_module(module_parts, struct_name)
                if definition != header.group(1):
                    sys.exit("%s: module path gives %s but the header says %s"
                             % (rel, definition, header.group(1)))
                info = TypeInfo(definition, "crate::" + "::".join(module_parts + [struct_name]))
            continue
        if line.startswith("}"):
            break
        m = STRUCT_FIELD.match(line)
        if m:
            info.fields.append((m.group(1), m.group(2)))
    if info is None:
        # Enums (IntOrString, JSONSchemaPropsOr*) and newtypes (Quantity,
        # Time, RawExtension): opaque for patching.
        return None

    deserialize = block_after(text, "impl<'de> crate::serde::Deserialize<'de> for %s" % struct_name)
    for line in deserialize.split("\n"):
        m = JSON_NAME.match(line)
        if m:
            info.json_names[m.group(2)] = m.group(1)

    merge = block_after(text, "impl crate::DeepMerge for %s" % struct_name)
    for m in LIST_CALL.finditer(merge):
        kind, field, keys = m.group(1), m.group(2), m.group(3)
        if kind == "map":
            info.list_strategies[field] = ("map", KEY_CLOSURE.findall(keys or ""))
        else:
            info.list_strategies[field] = (kind,)
    return info


def build_table(src_root):
    types = {}
    for path in sorted(glob.glob(os.path.join(src_root, "**", "*.rs"), recursive=True)):
        if os.path.basename(path) == "mod.rs":
            continue
        info = parse_file(path, src_root)
        if info is not None:
            types[info.rust_path] = info

    rows = []
    notes = []
    for info in sorted(types.values(), key=lambda t: t.definition):
        for rust_field, rust_type in info.fields:
            json_name = info.json_names.get(rust_field)
            if json_name is None:
                sys.exit("%s.%s: no JSON name in the Deserialize impl" % (info.definition, rust_field))
            shape, inner = classify(rust_type)
            nested_info = types.get(inner)
            nested = nested_info.definition if nested_info else "-"
            if shape == "value":
                if nested_info is None:
                    continue  # scalar or opaque: nothing to look up
                rows.append((info.definition, json_name, "object", "-", nested))
                continue
            if shape == "map":
                rows.append((info.definition, json_name, "map", "-", nested))
                continue

            # A list. Lists of lists (none in v1_32 besides opaque types) stay atomic.
            if inner.startswith("std::vec::Vec<"):
                nested = "-"
            strategy = info.list_strategies.get(rust_field, ("atomic",))
            if strategy[0] == "map":
                rust_keys = strategy[1]
                if len(rust_keys) != 1:
                    # k8s-openapi takes the patch merge key when there is
                    # one, so several keys means `+listType=map` without
                    # patch tags: SMP replaces the list. No key we can read
                    # means a k8s-openapi fixup on a nested field
                    # (StatefulSetSpec.volumeClaimTemplates by metadata.name,
                    # `+listType=atomic` upstream): also replaced by SMP.
                    smp = "atomic"
                    notes.append("%s.%s: k8s-openapi list-map keys [%s], no patchMergeKey: SMP atomic"
                                 % (info.definition, json_name, "+".join(rust_keys)))
                else:
                    if nested_info is None:
                        sys.exit("%s.%s: merge key on a list of non-objects" % (info.definition, json_name))
                    key = nested_info.json_names.get(rust_keys[0])
                    if key is None:
                        sys.exit("%s.%s: merge key field %s unknown in %s"
                                 % (info.definition, json_name, rust_keys[0], nested_info.definition))
                    smp = "merge:" + key
            elif strategy[0] == "set":
                smp = "merge"
            else:
                smp = "atomic"

            override_key = (info.definition, json_name)
            if override_key in OVERRIDES:
                if OVERRIDES[override_key] == smp:
                    sys.exit("override for %s.%s is a no-op: drop it" % override_key)
                notes.append("%s.%s: k8s-openapi %s, SMP %s (override)"
                             % (info.definition, json_name, smp, OVERRIDES[override_key]))
                smp = OVERRIDES[override_key]
            rows.append((info.definition, json_name, "list", smp, nested))

    for key in OVERRIDES:
        if not any((r[0], r[1]) == key for r in rows):
            sys.exit("override for %s.%s matches no list field" % key)
    return rows, notes


def render(rows, notes):
    out = [
        "# Generated by control/apiserver/gen/patch_table.py from k8s-openapi %s (%s). Do not edit."
        % (K8S_OPENAPI_VERSION, K8S_OPENAPI_FEATURE),
        "# <type> <json field> <object|list|map> <merge:<key>|merge|atomic|-> <nested type|->",
    ]
    for note in notes:
        out.append("# " + note)
    for row in rows:
        out.append(" ".join(row))
    return "\n".join(out) + "\n"


def main():
    src_root = os.path.join(find_crate("k8s-openapi", K8S_OPENAPI_VERSION), "src", K8S_OPENAPI_FEATURE)
    rows, notes = build_table(src_root)
    text = render(rows, notes)
    if "--check" in sys.argv[1:]:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("%s is stale: rerun %s" % (OUT, sys.argv[0]))
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %d fields to %s" % (len(rows), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
