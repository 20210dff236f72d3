#!/usr/bin/env bash
# Remove what deploy/kind/up.sh made: the kind cluster (its volumes and Secrets with it) and the
# image it built. Safe to run when there is nothing left.
set -euo pipefail

CLUSTER=${CLUSTER:-microbank}
IMAGE=localhost/microbank:dev
ENGINE=${CONTAINER_ENGINE:-docker}
[[ $ENGINE == podman ]] && export KIND_EXPERIMENTAL_PROVIDER=podman

if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    kind delete cluster --name "$CLUSTER"
else
    echo "no kind cluster $CLUSTER"
fi
if command -v "$ENGINE" >/dev/null && "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
    "$ENGINE" image rm "$IMAGE" >/dev/null
    echo "removed $IMAGE"
fi
