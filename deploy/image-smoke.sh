#!/usr/bin/env bash
# Build the one image from the Dockerfile with podman and run it as every role it knows, the way
# Kubernetes runs it: a read-only root filesystem with a writable /tmp, a non-root user, no
# capabilities, no privilege escalation. Each role must answer /readyz with 200 on a database made
# for this run (migrated by the image's own `microbank migrate`) and, where it publishes or consumes,
# on a RabbitMQ vhost of its own.
#
# No registry is reachable on the machines this runs on, so both bases are built here: Debian
# bookworm bootstrapped with python3 (BASE_IMAGE), and the same with this machine's Node.js and npm
# copied in (NODE_IMAGE) for the stage that builds ui/. The package indexes and the CA bundle this
# machine's pip and npm use are passed into the build.
#
#   deploy/image-smoke.sh              build, run every role, clean up
#   KEEP_IMAGE=1 deploy/image-smoke.sh keep localhost/microbank:smoke afterwards
#
# Needs root (debootstrap), podman with runc, debootstrap, PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust) and RabbitMQ on 127.0.0.1:5672 with rabbitmqctl.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/microbank:smoke}
CACHE=${SMOKE_CACHE:-/var/cache/microbank-image-smoke}
PYTHON_BASE=localhost/microbank-base:bookworm-python3
NODE_BASE=localhost/microbank-base:bookworm-node
POSTGRES_HOST=${POSTGRES_HOST:-127.0.0.1}
RABBIT_HOST=${RABBIT_HOST:-127.0.0.1}
RUN_ID=smoke$$
PODMAN=(podman --runtime runc)
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=20000:20000)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
started=$SECONDS

say() { printf '==> %s (%ds)\n' "$*" "$((SECONDS - started))"; }
die() { printf 'image-smoke: %s\n' "$*" >&2; exit 1; }

debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [[ -n $uri ]] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    printf '%s' "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

image_exists() { "${PODMAN[@]}" image exists "$1"; }

import_rootfs() {  # import_rootfs DIR IMAGE
    tar --numeric-owner -C "$1" -c . | "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$2" >/dev/null
}

bootstrap_bases() {
    local rootfs=$CACHE/bookworm-python3
    if ! image_exists "$PYTHON_BASE"; then
        say "bootstrapping Debian bookworm with python3 into $rootfs"
        rm -rf "$rootfs" && mkdir -p "$CACHE"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE/debootstrap.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        import_rootfs "$rootfs" "$PYTHON_BASE"
    fi
    if ! image_exists "$NODE_BASE"; then
        say "adding this machine's Node.js $(node --version) and npm to a copy of the base"
        local node_root=$CACHE/bookworm-node npm_dir
        npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
        rm -rf "$node_root" && cp -a "$rootfs" "$node_root"
        install -D -m 0755 "$(readlink -f "$(command -v node)")" "$node_root/usr/local/bin/node"
        mkdir -p "$node_root/usr/local/lib/node_modules"
        cp -a "$npm_dir" "$node_root/usr/local/lib/node_modules/npm"
        ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$node_root/usr/local/bin/npm"
        import_rootfs "$node_root" "$NODE_BASE"
        rm -rf "$node_root"
    fi
}

# pip's and npm's own view of where packages come from, handed to the build as its variables; a
# file:// index is mounted read-only at the same path, with the folder beside it that its links reach.
BUILD_ARGS=()
MOUNTS=(-v "$CA_BUNDLE:/run/host-ca.pem:ro")
pip_setting() { python3 -m pip config list 2>/dev/null | sed -n "s/^[a-z]*\.$1='\(.*\)'$/\1/p" | tail -n1; }
index_args() {
    local index extra location
    index=${PIP_INDEX_URL:-$(pip_setting index-url)}
    extra=${PIP_EXTRA_INDEX_URL:-$(pip_setting extra-index-url)}
    [[ -n $index ]] && BUILD_ARGS+=(--build-arg "PIP_INDEX_URL=$index")
    [[ -n $extra ]] && BUILD_ARGS+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
    for location in $index $extra; do
        location=${location#file://}
        if [[ -d $location && $location == /* ]]; then
            location=$(dirname "$location")
            MOUNTS+=(-v "$location:$location:ro")
        fi
    done
    BUILD_ARGS+=(--build-arg PIP_CERT=/run/host-ca.pem --build-arg NPM_CONFIG_CAFILE=/run/host-ca.pem)
    local registry
    registry=$(npm config get registry 2>/dev/null || true)
    [[ -n $registry ]] && BUILD_ARGS+=(--build-arg "NPM_CONFIG_REGISTRY=$registry")
    return 0
}

build_image() {
    index_args
    say "building $IMAGE"
    "${PODMAN[@]}" build --network host "${ULIMITS[@]}" "${MOUNTS[@]}" "${BUILD_ARGS[@]}" \
        --build-arg "BASE_IMAGE=$PYTHON_BASE" --build-arg "NODE_IMAGE=$NODE_BASE" \
        --build-arg "REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --tag "$IMAGE" --file Dockerfile . >"$CACHE/build.log" 2>&1 \
        || { tail -n 40 "$CACHE/build.log" >&2; die "podman build failed; see $CACHE/build.log"; }
    say "built $IMAGE ($("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) uncompressed)"
}

CONTAINERS=()
cleanup() {
    local name domain
    for name in "${CONTAINERS[@]}"; do "${PODMAN[@]}" rm --force --time 5 "$name" >/dev/null 2>&1 || true; done
    for domain in users accounts transactions notifications; do
        psql -q -h "$POSTGRES_HOST" -U postgres -c "DROP DATABASE IF EXISTS ${RUN_ID}_$domain WITH (FORCE)" \
            >/dev/null 2>&1 || true
    done
    rabbitmqctl -q delete_vhost "$RUN_ID" >/dev/null 2>&1 || true
    rm -rf "${KEYS:-}"
    [[ -n ${KEEP_IMAGE:-} ]] || "${PODMAN[@]}" rmi --force "$IMAGE" >/dev/null 2>&1 || true
}

# The image as Kubernetes runs it: read-only root, writable /tmp only, numeric non-root user.
run_locked_down() {  # run_locked_down NAME ARGS...
    local name=$1
    shift
    "${PODMAN[@]}" run --name "$name" --network host "${ULIMITS[@]}" --read-only --tmpfs /tmp:rw,size=64m \
        --user 10001:10001 --cap-drop ALL --security-opt no-new-privileges "$@"
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() {  # wait_ready ROLE PORT
    local deadline=$((SECONDS + 60)) status
    until status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/readyz") && [[ $status == 200 ]]; do
        if ((SECONDS > deadline)) || [[ $("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$RUN_ID-$1") != true ]]; then
            "${PODMAN[@]}" logs "$RUN_ID-$1" >&2 || true
            die "role $1 did not become ready on port $2 (last status ${status:-none})"
        fi
        sleep 0.5
    done
}

domain_of() { [[ $1 == notifier ]] && echo notifications || echo "$1"; }

main() {
    [[ $(id -u) == 0 ]] || die "run as root: debootstrap and podman's runc need it"
    mkdir -p "$CACHE"
    bootstrap_bases
    build_image
    trap cleanup EXIT

    [[ $("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE") == 10001:10001 ]] \
        || die "the image does not run as user 10001:10001"
    local found
    # shellcheck disable=SC2016 # $tool is the image's shell's to expand
    found=$("${PODMAN[@]}" run --rm "${ULIMITS[@]}" --entrypoint sh "$IMAGE" -c \
        'for tool in gcc cc c++ make pip pip3; do command -v "$tool" || true; done') \
        || die "could not run a shell in the image"
    [[ -z $found ]] || die "the runtime image holds build tools: $found"

    local roles
    # The image names its roles when asked for one it does not know (and exits 2).
    roles=$({ "${PODMAN[@]}" run --rm "${ULIMITS[@]}" -e ROLE=none "$IMAGE" serve 2>&1 || true; } \
        | sed -n 's/.*ROLE must be one of: \([^(]*\).*/\1/p' | tr -d ',')
    [[ -n $roles ]] || die "could not read the valid roles from the image"
    say "roles in the image: $roles"

    KEYS=$(mktemp -d)
    chmod 1777 "$KEYS"  # the image's user writes the keys, 0600, and the roles read them as that user
    run_locked_down "$RUN_ID-keys" --rm -v "$KEYS:/keys" "$IMAGE" keys --output-dir /keys/tokens >/dev/null

    local domain
    rabbitmqctl -q add_vhost "$RUN_ID"
    rabbitmqctl -q set_permissions -p "$RUN_ID" guest '.*' '.*' '.*'
    for domain in users accounts transactions notifications; do
        psql -q -h "$POSTGRES_HOST" -U postgres -c "CREATE DATABASE ${RUN_ID}_$domain" >/dev/null
    done

    local role port env
    for role in $roles; do
        [[ $role == all ]] && continue
        env=(-v "$KEYS/tokens:/run/secrets/microbank:ro" -e "ROLE=$role"
            -e JWT_PUBLIC_KEY_FILE=/run/secrets/microbank/jwt-public-key.pem
            -e SERVICE_TOKEN_FILE=/run/secrets/microbank/service-token
            -e "RABBIT_URL=amqp://guest:guest@$RABBIT_HOST:5672/$RUN_ID")
        [[ $role == users ]] && env+=(-e JWT_PRIVATE_KEY_FILE=/run/secrets/microbank/jwt-private-key.pem)
        if [[ $role != ui ]]; then
            domain=$(domain_of "$role")
            env+=(-e "DATABASE_URL=postgresql+psycopg2://postgres@$POSTGRES_HOST:5432/${RUN_ID}_$domain")
            run_locked_down "$RUN_ID-migrate-$role" --rm "${env[@]}" "$IMAGE" migrate >/dev/null
        fi
        port=$(free_port)
        CONTAINERS+=("$RUN_ID-$role")
        run_locked_down "$RUN_ID-$role" --detach "${env[@]}" -e "PORT=$port" "$IMAGE" >/dev/null
        wait_ready "$role" "$port"
        if [[ $role == ui ]]; then
            [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/") == 200 ]] || die "ui does not serve /"
        fi
        say "$role is ready on :$port, read-only, as 10001"
    done
    say "image smoke passed"
}

main "$@"
