#!/usr/bin/env bash
# Brings up skiff's control plane and drives it with the real kubectl: builds skiff, starts
# `skiff server` (store + API server + scheduler + controllers, state in /var/lib/skiff/server, HTTPS on
# 127.0.0.1:6443, store on 127.0.0.1:2379) and runs kubectl and etcdctl against it.
# The server keeps running afterwards; stop it with: kill "$(cat /run/skiff/server.pid)"
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -q
install -m 0755 target/release/skiff /usr/local/bin/skiff

mkdir -p /run/skiff /var/lib/skiff
pidfile=/run/skiff/server.pid
log=/var/lib/skiff/server.log
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "demo: skiff server already running (pid $(cat "$pidfile"))"
else
  skiff server --data-dir /var/lib/skiff/server --bind-address 127.0.0.1 >"$log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do grep -q "skiff server ready" "$log" && break; sleep 0.1; done
  grep "skiff server ready" "$log" || { cat "$log"; exit 1; }
fi
export KUBECONFIG=/var/lib/skiff/server/admin.kubeconfig
k() { echo "+ kubectl $*" >&2; kubectl "$@"; }

k version
k get namespaces
k create namespace demo --dry-run=client -o yaml > /tmp/skiff-demo-ns.yaml
k apply -f /tmp/skiff-demo-ns.yaml
cat > /tmp/skiff-demo-web.yaml <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
YAML
k apply -f /tmp/skiff-demo-web.yaml
k scale deployment web -n demo --replicas=3
k patch deployment web -n demo -p '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}'
k get all -n demo -o wide
k rollout history deployment web -n demo
k describe service web -n demo
# The scheduler: no kubelet runs yet, so a "hollow" node registered through the API stands in
# for one (as kubemark does); a pod too big for it stays Pending with upstream's reason, one that
# fits is bound to it.
cat > /tmp/skiff-demo-node.yaml <<'YAML'
apiVersion: v1
kind: Node
metadata:
  name: demo-hollow-node
  labels: {kubernetes.io/hostname: demo-hollow-node}
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
  allocatable: {cpu: "2", memory: 4Gi, pods: "110"}
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: hollow node}]
YAML
k apply -f /tmp/skiff-demo-node.yaml
k run small -n demo --image=busybox --overrides='{"spec":{"containers":[{"name":"small","image":"busybox","resources":{"requests":{"cpu":"500m"}}}]}}'
k run huge -n demo --image=busybox --overrides='{"spec":{"containers":[{"name":"huge","image":"busybox","resources":{"requests":{"cpu":"8"}}}]}}'
for _ in $(seq 1 50); do [ -n "$(kubectl get pod small -n demo -o jsonpath='{.spec.nodeName}')" ] && break; sleep 0.1; done
sleep 1
k get pods -n demo -o wide
k describe pod huge -n demo | sed -n '/^Events:/,$p'
k get lease -n kube-system
k explain deployment.spec.strategy
k auth can-i create pods
echo "+ etcdctl get --prefix /registry/apps/deployments/demo/ --keys-only   (the API server's storage)"
ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379 get --prefix /registry/apps/deployments/demo/ --keys-only
k get deploy,rs,pods -n demo -o wide
# No kubelet finishes a bound pod's graceful deletion yet: the workloads go first, then their
# pods are deleted at once.
k delete deployment web -n demo
k delete rs -n demo --all
k delete pods -n demo --all --force --grace-period=0
k delete namespace demo
k delete node demo-hollow-node
k get namespaces
echo
echo "skiff server is running (pid $(cat "$pidfile")): export KUBECONFIG=$KUBECONFIG"
echo "Stop it with: kill \$(cat $pidfile)"
