#!/usr/bin/env python3
"""Generate src/protobuf_messages.txt, the message table used by src/protobuf/.

The table describes every Kubernetes protobuf message: for each field its tag,
its JSON name, its wire kind and whether it is repeated or required.

Inputs (both read from the local cargo registry, nothing is downloaded):
  * k8s-pb 0.9.0: the prost-generated structs (tags, wire kinds, message types).
  * k8s-openapi 0.28.0, v1_32 (then v1_33..v1_36 for newer fields): the exact
    JSON field names ("podIP", "externalIPs", "$ref", "x-kubernetes-...") and
    which fields are required (not `Option<...>`, i.e. not `omitempty` in Go).

A field's JSON name comes from its message's k8s-openapi type (names compared
without case and punctuation); else, for messages k8s-openapi has no type for
(lists, old versions), from the same name in any k8s-openapi type; else it
falls back to lowerCamelCase, and the script prints how many did.

Usage (from the repository root):
  python3 control/apiserver/gen/proto_table.py            # writes the table
  python3 control/apiserver/gen/proto_table.py --check    # fails if it is stale
  python3 control/apiserver/gen/proto_table.py -v         # also lists the fallbacks

Table format, one record a line, tokens separated by one space:
  M <full message name>             starts a message, e.g. `M api.core.v1.Pod`
  F <tag> <json name> <kind> <flags>
      kind:  string | bytes | bool | int32 | int64 | uint32 | uint64 | double
             | float | msg:<full name> | map:<key kind>:<value kind>
             (a map value kind may itself be msg:<full name>)
      flags: `-` or any of r (repeated), q (required: not omitempty in Go),
             i (a Go embedded struct, `json:",inline"`: its fields go into the
             parent object; its JSON name is written as `-`)
  W <full message name>             the message wraps a Go named slice
      (`type ExtraValue []string`): its JSON form is the array in its
      `items` field, not an object
"""

from crates import find_crate
import glob
import os
import re
import sys

K8S_PB_VERSION = "0.9.0"
K8S_OPENAPI_VERSION = "0.28.0"
# The served version first; later versions only fill in types and fields
# that k8s-pb (generated from newer protos) has and v1_32 does not.
K8S_OPENAPI_FEATURES = ("v1_32", "v1_33", "v1_34", "v1_35", "v1_36")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "protobuf_messages.txt")

# Messages of a version newer than k8s-pb knows, whose wire form upstream carried over
# unchanged from the version before (k8s.io/api 0.37's admissionregistration/v1
# generated.proto has the same fields and tags as v1beta1's): (from package, to package,
# messages). The copies refer to the new package's messages wherever it has them.
PROMOTED = (
    ("api.admissionregistration.v1beta1", "api.admissionregistration.v1", (
        "ApplyConfiguration", "JSONPatch", "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding", "MutatingAdmissionPolicyBindingList",
        "MutatingAdmissionPolicyBindingSpec", "MutatingAdmissionPolicyList",
        "MutatingAdmissionPolicySpec", "Mutation",
    )),
)

# Test-only API group of apimachinery: never served.
SKIPPED_PACKAGES = ("apimachinery.pkg.apis.testapigroup",)




# ---------------------------------------------------------------------------
# k8s-pb (prost) parsing
# ---------------------------------------------------------------------------

PROST_ATTR = re.compile(r"#\[prost\((.*)\)\]\s*$")
STRUCT_START = re.compile(r"^pub struct (\w+) \{")
FIELD_DECL = re.compile(r"pub (?:r#)?(\w+):\s*(.*),\s*$", re.S)
TAG = re.compile(r'tag\s*=\s*"(\d+)"')
MAP_KINDS = re.compile(r'(?:btree_map|hash_map|map)\s*=\s*"(\w+),\s*(\w+)"')

SCALARS = {"string", "bytes", "bool", "int32", "int64", "uint32", "uint64",
           "sint32", "sint64", "double", "float", "fixed32", "fixed64",
           "sfixed32", "sfixed64"}


class PbField:
    def __init__(self, rust_name, tag, kind, repeated, type_text):
        self.rust_name = rust_name
        self.tag = tag
        self.kind = kind          # scalar name, "message" or ("map", k, v)
        self.repeated = repeated
        self.type_text = type_text
        self.message = None       # resolved full name for message kinds


class PbMessage:
    def __init__(self, package, name):
        self.package = package    # "api.core.v1"
        self.name = name          # prost name, "JsonSchemaProps"
        self.fields = []


def compact(text):
    """Type text without whitespace and without rustfmt's trailing `,` in `<...,>`."""
    return re.sub(r"\s+", "", text).replace(",>", ">")


def strip_wrappers(text):
    """`::core::option::Option<::prost::alloc::boxed::Box<Foo>>` -> `Foo`."""
    text = compact(text)
    wrappers = ("::core::option::Option<", "::prost::alloc::vec::Vec<",
                "::prost::alloc::boxed::Box<")
    changed = True
    while changed:
        changed = False
        for w in wrappers:
            if text.startswith(w) and text.endswith(">"):
                text = text[len(w):-1]
                changed = True
    return text


def map_value_type(text):
    """The value type of a `BTreeMap<K, V>` type text."""
    text = compact(text)
    inner = text[text.index("<") + 1:-1]
    depth = 0
    for i, c in enumerate(inner):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "," and depth == 0:
            return inner[i + 1:]
    raise ValueError("not a map type: " + text)


def resolve(package, path):
    """Resolve a Rust type path used in module `package` to a full name."""
    parts = path.split("::")
    if parts[0] == "":
        raise ValueError("absolute path not expected: " + path)
    module = package.split(".")
    if parts[0] == "crate":
        module = []
        parts = parts[1:]
    while parts and parts[0] == "super":
        module = module[:-1]
        parts = parts[1:]
    return ".".join(module + parts)


def parse_pb(root):
    messages = {}
    for path in sorted(glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True)):
        rel = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        package = rel.replace(os.sep, ".")
        if package.startswith(SKIPPED_PACKAGES):
            continue
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        current = None
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            start = STRUCT_START.match(line)
            if start:
                current = PbMessage(package, start.group(1))
                messages[package + "." + current.name] = current
                if line.endswith("{}"):
                    current = None
                i += 1
                continue
            if current is not None and line == "}":
                current = None
                i += 1
                continue
            attr = PROST_ATTR.search(line)
            if current is not None and attr:
                args = attr.group(1)
                # The declaration may be split over several lines.
                decl = ""
                i += 1
                while i < len(lines):
                    decl += " " + lines[i].strip()
                    i += 1
                    # Done at the comma that closes the declaration, not at
                    # one inside `Vec<\n Foo,\n >`.
                    if decl.rstrip().endswith(",") and decl.count("<") == decl.count(">"):
                        break
                m = FIELD_DECL.search(decl.strip())
                if not m:
                    raise ValueError("cannot parse field in %s: %r" % (path, decl))
                rust_name, type_text = m.group(1), m.group(2)
                tag = int(TAG.search(args).group(1))
                head = args.split(",")[0].strip()
                repeated = re.search(r"\brepeated\b", args) is not None
                mk = MAP_KINDS.search(args)
                if mk:
                    kind = ("map", mk.group(1), mk.group(2))
                else:
                    word = head.split("=")[0].strip()
                    if word == "message":
                        kind = "message"
                    elif word in SCALARS:
                        kind = word
                    elif word == "enumeration":
                        # Enums travel as varints; Kubernetes has none today.
                        kind = "int32"
                    else:
                        raise ValueError("unknown prost kind %r in %s" % (args, path))
                fld = PbField(rust_name, tag, kind, repeated, type_text)
                if kind == "message":
                    fld.message = resolve(package, strip_wrappers(type_text))
                elif isinstance(kind, tuple) and kind[2] == "message":
                    fld.message = resolve(package, map_value_type(type_text))
                current.fields.append(fld)
                continue
            i += 1
    return messages


# ---------------------------------------------------------------------------
# k8s-openapi parsing
# ---------------------------------------------------------------------------

OA_STRUCT = re.compile(r"^pub struct (\w+) \{\s*$")
OA_FIELD = re.compile(r"^    pub (\w+): (.*),\s*$")
OA_KEY = re.compile(r'^\s*"([^"]+)" => Field::Key_(\w+),\s*$')


class OaType:
    def __init__(self, name):
        self.name = name
        self.fields = {}     # rust name -> rust type text
        self.json = {}       # rust name -> json name

    def lookup(self, prost_name):
        """(json name, required) of the field prost calls `prost_name`, or None."""
        want = normalize(prost_name)
        for rust, json in self.json.items():
            if normalize(json) == want:
                return json, self.required(rust)
        # k8s-openapi's own Rust name may match where the JSON name does not
        # (proto `ref` vs JSON `$ref`, Rust `ref_path`).
        for rust, json in self.json.items():
            if normalize(rust) == want:
                return json, self.required(rust)
        return None

    def required(self, rust):
        return not self.fields.get(rust, "Option<").startswith("Option<")


def parse_openapi(root, feature):
    """{package: {lowercase type name: OaType}} for every struct with named fields."""
    base = os.path.join(root, "src", feature)
    types = {}
    for path in sorted(glob.glob(os.path.join(base, "**", "*.rs"), recursive=True)):
        if os.path.basename(path) in ("mod.rs", "list.rs"):
            continue
        package = os.path.relpath(os.path.dirname(path), base).replace(os.sep, ".")
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        current = None
        in_struct = False
        for line in lines:
            m = OA_STRUCT.match(line)
            if m and current is None:
                current = OaType(m.group(1))
                in_struct = True
                continue
            if in_struct:
                if line.startswith("}"):
                    in_struct = False
                    continue
                fm = OA_FIELD.match(line)
                if fm:
                    current.fields[fm.group(1)] = fm.group(2)
                continue
            if current is not None:
                km = OA_KEY.match(line)
                if km:
                    current.json[km.group(2)] = km.group(1)
        if current is not None:
            types.setdefault(package, {})[current.name.lower()] = current
    return types


# ---------------------------------------------------------------------------
# Joining the two
# ---------------------------------------------------------------------------

def normalize(name):
    """Compare names without case and punctuation: pod_ip == podIP, ref == $ref."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def lower_camel(rust_name):
    parts = rust_name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def kind_text(kind, message_names, fld):
    if kind == "message":
        return "msg:" + message_names[fld.message]
    if isinstance(kind, tuple):
        _, k, v = kind
        if v == "message":
            v = "msg:" + message_names[fld.message]
        return "map:%s:%s" % (k, v)
    return kind


def is_items_wrapper(msg):
    return (len(msg.fields) == 1 and msg.fields[0].rust_name == "items"
            and msg.fields[0].repeated)


class Joiner:
    """Finds the JSON name of every prost field."""

    def __init__(self, pb, openapi_versions):
        self.pb = pb
        self.versions = openapi_versions
        # normalized name -> the JSON names any k8s-openapi type uses for it;
        # used for messages k8s-openapi has no type for (lists, old versions).
        self.global_names = {}
        for types in openapi_versions:
            for package in types.values():
                for oa_type in package.values():
                    for json in oa_type.json.values():
                        self.global_names.setdefault(normalize(json), set()).add(json)
        # (message short name, prost field name) pairs that are Go embedded
        # structs (`json:",inline"`), learned from messages that have a type
        # and applied to the same embedding in older, untyped versions.
        self.inline_pairs = set()

    def types_for(self, msg):
        found = []
        for types in self.versions:
            t = types.get(msg.package, {}).get(msg.name.lower())
            if t is not None:
                found.append(t)
        return found

    def json_names_of(self, full):
        """Every JSON name a message contributes to its parent when inlined."""
        msg = self.pb[full]
        names = set()
        for fld in msg.fields:
            resolved = self.field(msg, fld)
            if resolved[2] == "inline":
                names |= self.json_names_of(fld.message)
            else:
                names.add(resolved[0])
        return names

    def field(self, msg, fld):
        """(json name, required, how) with how in openapi/inline/global/fallback."""
        types = self.types_for(msg)
        for t in types:
            hit = t.lookup(fld.rust_name)
            if hit is not None:
                return hit[0], hit[1], "openapi"
        if fld.kind == "message" and not fld.repeated:
            if types:
                parent_names = set()
                for t in types:
                    parent_names |= set(t.json.values())
                child = self.json_names_of(fld.message)
                if child and child <= parent_names:
                    self.inline_pairs.add((self.pb[fld.message].name, fld.rust_name))
                    return "", False, "inline"
            elif (self.pb[fld.message].name, fld.rust_name) in self.inline_pairs:
                return "", False, "inline"
        known = self.global_names.get(normalize(fld.rust_name), set())
        if len(known) == 1:
            return next(iter(known)), False, "global"
        if lower_camel(fld.rust_name) in known:
            # `port` vs DaemonEndpoint's odd `Port`: the usual spelling wins.
            return lower_camel(fld.rust_name), False, "global"
        return lower_camel(fld.rust_name), False, "fallback"


def main():
    check = "--check" in sys.argv[1:]
    pb = parse_pb(find_crate("k8s-pb", K8S_PB_VERSION))
    openapi_root = find_crate("k8s-openapi", K8S_OPENAPI_VERSION)
    versions = [parse_openapi(openapi_root, v) for v in K8S_OPENAPI_FEATURES]
    joiner = Joiner(pb, versions)

    # Canonical message names: prost renames `JSONSchemaProps` to
    # `JsonSchemaProps`; k8s-openapi keeps the Go name, which is also the
    # Kind sent in the envelope. Prefer it where the type exists there.
    names = {}
    for full, msg in pb.items():
        types = joiner.types_for(msg)
        go_name = types[0].name if types else msg.name
        names[full] = msg.package + "." + go_name

    # Messages that stand for a Go named slice (`type ExtraValue []string`):
    # k8s-openapi has no type for them and their JSON is a bare array.
    wrappers = set()
    for full, msg in pb.items():
        if is_items_wrapper(msg) and not joiner.types_for(msg):
            wrappers.add(full)

    # Typed messages first, so that inline embeddings are learned before the
    # untyped messages (old versions, lists) that reuse them are written.
    order = sorted(pb, key=lambda n: (not joiner.types_for(pb[n]), names[n]))
    records = {}
    counts = {"openapi": 0, "inline": 0, "global": 0, "fallback": 0}
    fallback = []
    for full in order:
        msg = pb[full]
        lines = ["M " + names[full]]
        if full in wrappers:
            lines.append("W " + names[full])
        for fld in sorted(msg.fields, key=lambda f: f.tag):
            json_name, required, how = joiner.field(msg, fld)
            counts[how] += 1
            if how == "fallback":
                fallback.append("%s.%s -> %s" % (names[full], fld.rust_name, json_name))
            flags = ""
            if fld.repeated:
                flags += "r"
            if required:
                flags += "q"
            if how == "inline":
                # The embedded message's fields appear in the parent object.
                json_name = "-"
                flags += "i"
            lines.append("F %d %s %s %s" % (fld.tag, json_name,
                                            kind_text(fld.kind, names, fld), flags or "-"))
        records[names[full]] = lines

    for source, target, messages in PROMOTED:
        for name in messages:
            new = target + "." + name
            assert new not in records, "%s is in k8s-pb now: drop it from PROMOTED" % new
            copied = []
            for line in records[source + "." + name]:
                if line.startswith(("M ", "W ")):
                    line = line.replace(source + ".", target + ".", 1)
                else:
                    def local(m):
                        renamed = target + "." + m.group(1)
                        promoted = m.group(1) in messages
                        return "msg:" + (renamed if promoted or renamed in records else m.group(0)[4:])
                    line = re.sub(re.escape("msg:" + source + ".") + r"(\w+)", local, line)
                copied.append(line)
            records[new] = copied

    out = ["# Generated by control/apiserver/gen/proto_table.py from k8s-pb %s and "
           "k8s-openapi %s (%s). Do not edit." % (K8S_PB_VERSION, K8S_OPENAPI_VERSION,
                                                 ", ".join(K8S_OPENAPI_FEATURES))]
    for name in sorted(records):
        out.extend(records[name])
    text = "\n".join(out) + "\n"

    untyped = sum(1 for m in pb.values() if not joiner.types_for(m))
    print("messages: %d (%d without a k8s-openapi type), fields: %d" % (
        len(pb), untyped, sum(counts.values())), file=sys.stderr)
    print("JSON names: %d from k8s-openapi types, %d inline embeddings, %d from the same "
          "name in another k8s-openapi type" % (counts["openapi"], counts["inline"],
                                                counts["global"]), file=sys.stderr)
    print("fields that fell back to lowerCamelCase: %d" % counts["fallback"], file=sys.stderr)
    if "-v" in sys.argv[1:]:
        for f in fallback:
            print("  " + f, file=sys.stderr)

    if check:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit("%s is stale: rerun gen/proto_table.py" % OUT)
        return
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote " + os.path.normpath(OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
