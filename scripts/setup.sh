#!/usr/bin/env bash
# Installs what building, running and testing skiff needs on Debian 12 (run as root).
# Idempotent; the other scripts call it first.
set -euo pipefail

packages=(
  build-essential pkg-config ca-certificates curl
  protobuf-compiler   # etcd-client's build-server feature compiles etcd's protos
  etcd-server         # real etcd 3.4: benchmark anchor, HA storage path
  etcd-client         # etcdctl 3.4: the real client the store is tested with
  python3-venv        # the Python `kubernetes` client (from PyPI) tests the API server
  docker-registry     # a real OCI registry on loopback for the image service tests
  skopeo              # pushes test images into it
  busybox-static      # the content of the test images
  runc                # the anchor OCI runtime: runs bundles in tests and benchmarks
  libseccomp-dev      # skiff-runtime (libcontainer) links libseccomp (its static archive: the binary is static)
  libelf-dev zlib1g-dev # libbpf (vendored by libbpf-sys): the cgroup v2 device filter is an eBPF program; static archives too
  procps              # ps(1): skiff-runtime ps prints its table, as runc does
  containernetworking-plugins # the reference CNI plugins (bridge, host-local, portmap) the kubelet runs pods with
  iptables            # the bridge and portmap plugins program NAT rules (inside node namespaces only)
  iproute2            # ip netns: the node namespaces of tests and `skiff up`
  util-linux          # nsenter: runs a node's processes in its network namespace
  nftables            # nft: skiff netd's egress masquerade table (inside node namespaces only)
  iperf3              # skiff netd bench: pod-to-pod throughput against node-to-node
  clang               # compiles the service proxy's eBPF programs (ebpf/*.c, C by design)
  libbpf-dev          # bpf_helpers.h for those programs
  bind9-dnsutils      # dig: the real DNS client the cluster DNS (skiff dns) is tested with
  dnsperf             # the DNS load generator of skiff dns bench (CoreDNS's published numbers use it)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts an etcd service on 127.0.0.1:2379 after installing etcd-server; skiff only
  # needs the binary, and its store uses that port.
  if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    echo "setup: stopping and disabling Debian's etcd.service (skiff store serves 127.0.0.1:2379)"
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
  # Likewise Debian's docker-registry.service on :5000: tests start their own registries.
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing the Rust toolchain with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
  }
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

# The test command checks formatting and lints: rustfmt and clippy (a minimal rustup profile
# has neither).
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
    echo "setup: adding the $component component"
    rustup component add "$component" >/dev/null
  fi
done

# The Python `kubernetes` client, from PyPI, in a venv of its own (Debian's pip refuses system
# installs). Tests find it at $SKIFF_PYTHON.
SKIFF_VENV=${SKIFF_VENV:-/opt/skiff/venv}
if ! "$SKIFF_VENV/bin/python" -c 'import kubernetes' 2>/dev/null; then
  echo "setup: installing the Python kubernetes client into $SKIFF_VENV"
  python3 -m venv "$SKIFF_VENV"
  "$SKIFF_VENV/bin/pip" install -q 'kubernetes>=30'
fi
export SKIFF_PYTHON="$SKIFF_VENV/bin/python"

# kubectl 1.32 comes with the machine (Google Cloud SDK's apt repository, not reachable here).
command -v kubectl >/dev/null || echo "setup: WARNING: kubectl is not installed; the API server tests need kubectl 1.32" >&2
