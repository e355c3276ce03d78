"""Where the generators find the crate sources they read: the cargo registry, filled from
gen/sources/Cargo.toml (which pins them) with `cargo fetch` when a crate is missing there."""

import glob
import os
import subprocess
import sys

SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sources", "Cargo.toml")


def _registry():
    cargo_home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    return os.path.join(cargo_home, "registry", "src")


def _hits(name, version):
    return sorted(glob.glob(os.path.join(_registry(), "*", "%s-%s" % (name, version))))


def find_crate(name, version):
    """The unpacked source of `name` `version`, fetched first if this machine lacks it."""
    if not _hits(name, version):
        fetched = subprocess.run(
            ["cargo", "fetch", "--manifest-path", SOURCES],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if fetched.returncode != 0:
            sys.exit("%s %s is not in %s and `cargo fetch --manifest-path %s` failed:\n%s"
                     % (name, version, _registry(), SOURCES, fetched.stderr))
    hits = _hits(name, version)
    if not hits:
        sys.exit("%s %s not found under %s even after fetching %s (is it pinned there?)"
                 % (name, version, _registry(), SOURCES))
    return hits[0]
