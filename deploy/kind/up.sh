#!/usr/bin/env bash
# microbank on a local kind cluster, from nothing, in one command; run it again to converge.
#
#   deploy/kind/up.sh
#
# Creates the cluster (1 control plane + 2 workers, ports 80 and 443 mapped), installs
# ingress-nginx, builds the image and loads it into the nodes, generates the Secrets once (never
# again: the databases keep the passwords they were created with), applies the kind overlay,
# waits for every rollout and prints where the bank is.
#
# Needs kind, kubectl, helm (kube-prometheus-stack: Prometheus, Grafana and the CRDs the monitoring
# objects are), and docker (or podman: CONTAINER_ENGINE=podman).
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-microbank}
NAMESPACE=microbank
IMAGE=localhost/microbank:dev
ENGINE=${CONTAINER_ENGINE:-docker}
INGRESS_NGINX_VERSION=${INGRESS_NGINX_VERSION:-v1.12.1}
INGRESS_NGINX_MANIFEST=https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml
KUBECTL=(kubectl --context "kind-$CLUSTER")
KUBE_PROMETHEUS_STACK_VERSION=${KUBE_PROMETHEUS_STACK_VERSION:-65.1.0}

say() { printf '==> %s\n' "$*"; }
die() { printf 'up.sh: %s\n' "$*" >&2; exit 1; }

for tool in kind kubectl helm "$ENGINE"; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ $ENGINE == podman ]] && export KIND_EXPERIMENTAL_PROVIDER=podman

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "cluster $CLUSTER exists"
else
    say "creating cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml --wait 120s
fi

say "ingress-nginx $INGRESS_NGINX_VERSION"
"${KUBECTL[@]}" apply -f "$INGRESS_NGINX_MANIFEST" >/dev/null
"${KUBECTL[@]}" -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s

# The release name is the label deploy/monitoring's ServiceMonitors and rules carry; the sidecar
# loads the dashboards' ConfigMaps from the microbank namespace too.
say "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (Prometheus, Grafana, kube-state-metrics)"
helm --kube-context "kind-$CLUSTER" upgrade --install kube-prometheus-stack kube-prometheus-stack \
    --repo https://prometheus-community.github.io/helm-charts --version "$KUBE_PROMETHEUS_STACK_VERSION" \
    --namespace monitoring --create-namespace --wait --timeout 600s \
    --set alertmanager.enabled=false --set grafana.sidecar.dashboards.searchNamespace=ALL >/dev/null

image_id() { "$ENGINE" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true; }
before=$(image_id)
say "building $IMAGE"
"$ENGINE" build --tag "$IMAGE" --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" .
after=$(image_id)
say "loading $IMAGE into the nodes"
if [[ $ENGINE == podman ]]; then
    archive=$(mktemp --suffix=.tar)
    trap 'rm -f "$archive"' EXIT
    podman save --format docker-archive --output "$archive" "$IMAGE" >/dev/null
    kind load image-archive "$archive" --name "$CLUSTER"
else
    kind load docker-image "$IMAGE" --name "$CLUSTER"
fi

"${KUBECTL[@]}" apply -f deploy/k8s/base/namespace.yaml >/dev/null
if "${KUBECTL[@]}" -n "$NAMESPACE" get secret service-token >/dev/null 2>&1; then
    say "the Secrets exist; keeping them"
else
    say "generating the Secrets (microbank keys, run from the image)"
    "$ENGINE" run --rm "$IMAGE" keys --namespace "$NAMESPACE" | "${KUBECTL[@]}" apply -f - >/dev/null
fi

say "applying deploy/k8s/overlays/kind"
"${KUBECTL[@]}" apply -k deploy/k8s/overlays/kind
if [[ -n $before && $before != "$after" ]]; then
    say "the image changed: rolling the roles over to it"
    "${KUBECTL[@]}" -n "$NAMESPACE" rollout restart deployment
fi

say "waiting for every rollout"
for statefulset in rabbitmq users-db accounts-db transactions-db notifications-db; do
    "${KUBECTL[@]}" -n "$NAMESPACE" rollout status "statefulset/$statefulset" --timeout=600s
done
for deployment in users accounts transactions notifications notifier ui; do
    "${KUBECTL[@]}" -n "$NAMESPACE" rollout status "deployment/$deployment" --timeout=600s
done

cat <<DONE

microbank is up at http://microbank.local/ once this machine resolves the name:
    echo '127.0.0.1 microbank.local' | sudo tee -a /etc/hosts

Next:
    curl -s http://microbank.local/api/users -H 'Content-Type: application/json' \\
      -d '{"name": "Ann Lee", "email": "ann@example.com", "password": "correct horse battery staple"}'
    kubectl -n $NAMESPACE get pods -o wide
    kubectl -n $NAMESPACE logs deployment/transactions --tail=20
    kubectl -n $NAMESPACE port-forward svc/rabbitmq 15672   # management UI; login: see the README
    kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80   # dashboards: see the README
    deploy/kind/down.sh                                   # removes it all
DONE
