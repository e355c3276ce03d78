#!/usr/bin/env bash
# The main job: builds skiff, brings up a 3-node cluster on this machine with `skiff up`
# (network-namespace nodes laid out like the Vagrant cluster: skiff-host 192.168.56.1,
# skiff-control-plane .10, skiff-worker .11, skiff-worker2 .12), builds a small web image
# offline from busybox-static, runs a Deployment of 3 replicas across the workers and drives
# everything with the real kubectl. The cluster keeps running afterwards:
#   export KUBECONFIG=/var/lib/skiff/skiff/admin.kubeconfig     # then kubectl as usual
#   skiff down                                                 # removes everything
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --locked -q -p skiff -p skiff-runtime
install -m 0755 target/release/skiff target/release/skiff-runtime /usr/local/bin/

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
k() { echo "+ kubectl $*" >&2; kubectl "$@"; }

say "a web image made offline: busybox-static and a script that names its pod and node"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx/bin" "$work/ctx/tmp"
cp /bin/busybox "$work/ctx/bin/"
for applet in sh httpd hostname mkdir cat ls wget nc nslookup seq; do ln -s busybox "$work/ctx/bin/$applet"; done
cat > "$work/ctx/bin/web" <<'SH'
#!/bin/sh
mkdir -p /tmp/www
echo "hello from pod $(hostname) on node $NODE_NAME" > /tmp/www/index.html
exec httpd -f -p 8080 -h /tmp/www
SH
chmod 755 "$work/ctx/bin/web"
skiff image --root "$work/store" build skiff.local/web:1 --from "$work/ctx" --cmd /bin/web
skiff image --root "$work/store" export -o "$work/web.tar" skiff.local/web:1

say "skiff up: 1 control plane + 2 workers, each a network namespace"
skiff down --name skiff >/dev/null 2>&1 || true
# --publish: 127.0.0.1:18080 on this machine reaches NodePort 30080 on the nodes (k3d's -p).
skiff up --load "$work/web.tar" --publish 18080:30080 --metrics-server
export KUBECONFIG=/var/lib/skiff/skiff/admin.kubeconfig
skiff status

say "the nodes and the control plane's components"
k get nodes -o wide
k get pods -A
k get lease -n kube-system
k get lease -n kube-node-lease

say "namespaces: list, create from a dry run, make one the default"
k get namespaces
k create namespace demo --dry-run=client -o yaml > "$work/demo-ns.yaml"
cat "$work/demo-ns.yaml"
k create -f "$work/demo-ns.yaml"
k config set-context --current --namespace=demo

say "a Deployment of 3 replicas: scheduled over the workers (the control plane is tainted), run by their kubelets"
cat > "$work/web.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: skiff.local/web:1
        ports: [{containerPort: 8080}]
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
YAML
k apply -f "$work/web.yaml"
k rollout status deployment/web --timeout=120s
k get deploy,rs,pods -o wide

say "each pod answers from where a Vagrant host would sit (ip netns exec skiff-host curl <pod IP>)"
for ip in $(kubectl get pods -l app=web -o jsonpath='{.items[*].status.podIP}'); do
  echo "+ curl http://$ip:8080/"
  ip netns exec skiff-host curl -sS --max-time 5 "http://$ip:8080/"
done

say "a Service: a stable name and address in front of the pods (DNS addon + eBPF service proxy)"
k expose deployment web --port 80 --target-port 8080
k get svc web -o wide
k -n kube-system get deploy,svc,pods -l k8s-app=kube-dns -o wide
svc_ip=$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')
for i in $(seq 30); do
  kubectl exec deploy/web -- nslookup web.demo.svc.cluster.local 2>/dev/null | grep -q "$svc_ip" && break
  sleep 0.2
done
k exec deploy/web -- nslookup web.demo.svc.cluster.local
echo "+ kubectl exec deploy/web -- sh -c \"for i in 1 2 3 4 5 6; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc $svc_ip 80 | tail -1; done\""
kubectl exec deploy/web -- sh -c "for i in 1 2 3 4 5 6; do printf 'GET / HTTP/1.0\r\n\r\n' | nc $svc_ip 80 | tail -1; done"
echo "+ what the node's eBPF proxy programmed (skiff-worker, 127.0.0.1:10249/services)"
ip netns exec skiff-worker curl -sS http://127.0.0.1:10249/services

say "from outside the cluster: a NodePort on every node, and a LoadBalancer IP announced on the node network"
k expose deployment web --name web-lb --type LoadBalancer --port 80 --target-port 8080
for i in $(seq 50); do
  lb_ip=$(kubectl get svc web-lb -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$lb_ip" ] && break
  sleep 0.2
done
k get svc web-lb -o wide
node_port=$(kubectl get svc web-lb -o jsonpath='{.spec.ports[0].nodePort}')
for node_ip in $(kubectl get nodes -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}'); do
  echo "+ ip netns exec skiff-host curl http://$node_ip:$node_port/"
  ip netns exec skiff-host curl -sS --max-time 5 --retry 5 --retry-delay 1 --retry-all-errors "http://$node_ip:$node_port/"
done
for i in 1 2 3; do
  echo "+ ip netns exec skiff-host curl http://$lb_ip/"
  ip netns exec skiff-host curl -sS --max-time 5 --retry 10 --retry-delay 1 --retry-all-errors "http://$lb_ip/"
done
k describe svc web-lb | sed -n '/^Events:/,$p'
echo "+ a NodePort Service on 30080, published on this machine's loopback by skiff up --publish"
kubectl apply -f - <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
YAML
for i in 1 2 3; do
  echo "+ curl http://127.0.0.1:18080/"
  curl -sS --max-time 5 --retry 10 --retry-delay 1 --retry-all-errors http://127.0.0.1:18080/
done

say "inside a pod: kubectl exec, logs, describe"
pod=$(kubectl get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
k exec "$pod" -- sh -c 'echo "I am $(hostname) on $NODE_NAME"; cat /etc/resolv.conf'
k describe pod "$pod" | sed -n '/^Events:/,$p'

say "a rolling update and its history"
k set env deployment/web GREETING=v2
k rollout status deployment/web --timeout=120s
k rollout history deployment/web
k scale deployment web --replicas=4
k rollout status deployment/web --timeout=120s
k get pods -o wide

say "resource usage: the metrics server behind the aggregation layer (kubectl top)"
k get apiservice v1beta1.metrics.k8s.io
for _ in $(seq 1 60); do
  kubectl top pods >/dev/null 2>&1 && break
  sleep 2
done
k top nodes
k top pods

say "everything in every namespace, and what a Pod is"
k get pods --all-namespaces -o wide
k explain pods | head -20

k config set-context --current --namespace=default >/dev/null
echo
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG"
echo "Remove it with: skiff down"
