"""The Kubernetes manifests as the cluster would take them: every overlay renders and validates,
every pod is locked down and probed, Services and the Ingress point at things that exist, and the
network policies allow exactly the paths of the design."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from microbank.keys import generate, kubernetes_secrets
from microbank.roles import ROLES
from microbank.routes import ROUTES, STREAM_READ_TIMEOUT_SECONDS
from tests.deploy.kube import (
    K8S,
    NAMESPACE,
    OVERLAYS,
    ROOT,
    WORKLOAD_KINDS,
    Obj,
    Peer,
    allowed_paths,
    containers,
    env_of,
    kubectl,
    named,
    of_kind,
    pod_template,
    selects,
    yaml_files,
)

APP_IMAGE = {"kind": "localhost/microbank:dev", "prod": "registry.example.com/microbank:0.1.0"}
INFRASTRUCTURE_IMAGES = {"rabbitmq:3.13.7-management", "postgres:16.6-bookworm"}
ROLE_NAMES = ("users", "accounts", "transactions", "notifications", "notifier", "ui")
API_ROLES = ("users", "accounts", "transactions", "notifications", "ui")
OWN_DATABASE = {"users": "users", "accounts": "accounts", "transactions": "transactions"} | {
    "notifications": "notifications",
    "notifier": "notifications",
}
PORT = {"users": 8001, "accounts": 8002, "transactions": 8003, "notifications": 8004, "notifier": 8005, "ui": 8080}
MANAGED_DATABASE_ADDRESS = {"users": "192.0.2.11", "accounts": "192.0.2.12", "transactions": "192.0.2.13"} | {
    "notifications": "192.0.2.14"
}


def workloads(objects: list[Obj]) -> list[Obj]:
    return of_kind(objects, *WORKLOAD_KINDS)


def role_deployments(objects: list[Obj]) -> list[Obj]:
    return [
        d for d in of_kind(objects, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/name"] == "microbank"
    ]


def main_container(workload: Obj) -> Obj:
    return containers(workload, init=False)[0]


# --- rendering and schema ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.31.0", "1.37.0"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_and_validates_strictly(overlay: str, version: str, tmp_path) -> None:
    manifest = tmp_path / f"{overlay}.yaml"
    result = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest.write_text(result.stdout)

    validate = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "passed" not in validate.stdout or "did not validate" not in validate.stdout


def test_every_object_is_in_the_namespace(objects: list[Obj]) -> None:
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_namespace_enforces_the_restricted_pod_security_standard(objects: list[Obj]) -> None:
    labels = named(objects, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_no_secret_is_committed(objects: list[Obj]) -> None:
    assert of_kind(objects, "Secret") == []


# --- the roles -------------------------------------------------------------------------------


def test_each_role_has_one_deployment_of_the_one_image(objects: list[Obj], request) -> None:
    overlay = request.node.callspec.params["objects"]
    deployments = {d["metadata"]["name"]: d for d in role_deployments(objects)}
    assert set(deployments) == set(ROLE_NAMES)
    for name, deployment in deployments.items():
        for container in containers(deployment):
            assert container["image"] == APP_IMAGE[overlay], f"{name}/{container['name']}"
            assert env_of(container)["ROLE"] == name
    for workload in workloads(objects):
        for container in containers(workload):
            assert container["image"] in {APP_IMAGE[overlay], *INFRASTRUCTURE_IMAGES}


def _assert_served(deployment: Obj) -> None:
    role = env_of(main_container(deployment))["ROLE"]
    assert role in ROLES, f"ROLE={role} is not a role of microbank.roles"
    assert main_container(deployment)["ports"][0]["containerPort"] == ROLES[role].port


def test_every_role_is_one_the_package_serves(objects: list[Obj]) -> None:
    for deployment in role_deployments(objects):
        if deployment["metadata"]["name"] != "ui":
            _assert_served(deployment)


@pytest.mark.skipif("ui" not in ROLES, reason="ROLE=ui arrives with the UI (issue 10)")
def test_the_ui_deployment_is_the_packages_ui_role(objects: list[Obj]) -> None:
    _assert_served(named(objects, "Deployment", "ui"))


def test_deploy_names_no_other_application_image() -> None:
    images = set()
    for path in yaml_files(ROOT / "deploy"):
        images |= set(re.findall(r"^\s*(?:-\s*)?image:\s*(\S+)", path.read_text(), re.MULTILINE))
    assert images == {"microbank", *INFRASTRUCTURE_IMAGES}


def test_the_api_roles_run_two_replicas_or_autoscale(objects: list[Obj]) -> None:
    autoscaled = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    for deployment in role_deployments(objects):
        name = deployment["metadata"]["name"]
        if name in autoscaled:
            assert "replicas" not in deployment["spec"], f"{name}: an apply would fight its autoscaler"
            assert autoscaled[name]["spec"]["minReplicas"] >= 2
        else:
            assert deployment["spec"]["replicas"] >= 2, name


def test_prod_autoscales_the_roles_behind_the_ingress(rendered: dict[str, list[Obj]]) -> None:
    hpas = of_kind(rendered["prod"], "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas} == set(API_ROLES)
    assert of_kind(rendered["kind"], "HorizontalPodAutoscaler") == []


def test_every_role_migrates_its_database_before_it_serves(objects: list[Obj]) -> None:
    for deployment in role_deployments(objects):
        name = deployment["metadata"]["name"]
        init = pod_template(deployment)["spec"].get("initContainers", [])
        if name not in OWN_DATABASE:
            assert init == [], name
            continue
        assert [c["name"] for c in init] == ["migrate"], name
        assert init[0]["args"] == ["migrate"]
        assert init[0]["image"] == main_container(deployment)["image"]
        assert env_of(init[0]).items() <= env_of(main_container(deployment)).items()
        assert {"ROLE", "DATABASE_URL_FILE"} <= set(env_of(init[0]))


# --- pods locked down, probed, sized ---------------------------------------------------------


def test_every_pod_runs_as_non_root_with_the_default_seccomp_profile(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        spec = pod_template(workload)["spec"]
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name


def test_every_container_is_locked_down(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        for container in containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["runAsNonRoot"] is True, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_every_container_has_a_writable_tmp_and_nothing_else_of_the_root(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        volumes = {v["name"]: v for v in pod_template(workload)["spec"].get("volumes", [])}
        for container in containers(workload):
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], f"{workload['metadata']['name']}: /tmp"


def test_every_container_has_requests_and_limits(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        for container in containers(workload):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{workload['metadata']['name']}: {kind}"


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def test_role_memory_leaves_room_over_the_measured_peak(objects: list[Obj]) -> None:
    """124 MiB is the highest VmRSS measured for a role (users, under load): requests cover it with
    room to spare, and limits stay well above it."""
    for deployment in role_deployments(objects):
        resources = main_container(deployment)["resources"]
        assert _mebibytes(resources["requests"]["memory"]) >= 124 * 1.25
        assert _mebibytes(resources["limits"]["memory"]) >= 124 * 2


def test_every_long_running_container_has_startup_readiness_and_liveness_probes(objects: list[Obj]) -> None:
    for workload in workloads(objects):
        for container in containers(workload, init=False):
            where = workload["metadata"]["name"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{where}: no {probe}"


def test_the_roles_probe_readyz_for_readiness_and_healthz_for_liveness(objects: list[Obj]) -> None:
    for deployment in role_deployments(objects):
        container = main_container(deployment)
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert {p["name"] for p in container["ports"]} == {"http"}


def test_replicas_spread_over_nodes_and_survive_a_drain(objects: list[Obj]) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in role_deployments(objects):
        labels = pod_template(deployment)["metadata"]["labels"]
        spread = pod_template(deployment)["spec"]["topologySpreadConstraints"][0]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert "app.kubernetes.io/component" in spread["matchLabelKeys"]
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["minAvailable"] == 1


def test_every_workload_has_its_own_service_account_without_a_token(objects: list[Obj]) -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind(objects, "ServiceAccount")}
    for deployment in [*role_deployments(objects), named(objects, "StatefulSet", "rabbitmq")]:
        account = pod_template(deployment)["spec"]["serviceAccountName"]
        assert account == deployment["metadata"]["name"]
        assert accounts[account]["automountServiceAccountToken"] is False


# --- what the pods mount: exactly what `microbank keys` makes --------------------------------


def _mounted_secrets(objects: list[Obj]) -> dict[str, set[str]]:
    mounted: dict[str, set[str]] = {}
    for workload in workloads(objects):
        for volume in pod_template(workload)["spec"].get("volumes", []):
            sources = volume.get("projected", {}).get("sources", [])
            refs = [s["secret"] for s in sources if "secret" in s]
            if "secret" in volume:
                refs.append({"name": volume["secret"]["secretName"], "items": None})
            for ref in refs:
                keys = {i["key"] for i in ref["items"]} if ref.get("items") else {"*"}
                mounted.setdefault(ref["name"], set()).update(keys)
    return mounted


def test_every_mounted_secret_is_one_microbank_keys_makes(rendered: dict[str, list[Obj]]) -> None:
    urls = {d: f"postgresql+psycopg2://{d}:pw@{d}.db.example.com:5432/{d}" for d in OWN_DATABASE.values()}
    for overlay, database_urls in (("kind", None), ("prod", urls)):
        made = kubernetes_secrets(generate(), database_urls=database_urls)["items"]
        keys = {s["metadata"]["name"]: set(s["stringData"]) for s in made}
        for name, used in _mounted_secrets(rendered[overlay]).items():
            assert name in keys, f"{overlay} mounts Secret {name}, which microbank keys does not make"
            assert used - {"*"} <= keys[name], f"{overlay}: {name} lacks {used - keys[name]}"


def test_every_credential_a_role_reads_is_a_file_from_a_secret(objects: list[Obj]) -> None:
    for deployment in role_deployments(objects):
        container = main_container(deployment)
        env = env_of(container)
        for variable in ("DATABASE_URL", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "SERVICE_TOKEN", "RABBIT_URL"):
            assert variable not in env, f"{deployment['metadata']['name']}: {variable} in plain env"
        assert all("valueFrom" not in e for e in container.get("env", [])), "secrets come as files"


def test_each_role_gets_only_the_credentials_it_needs(objects: list[Obj]) -> None:
    wanted = {
        "users": {"DATABASE_URL_FILE", "JWT_PRIVATE_KEY_FILE", "RABBIT_URL_FILE"},
        "accounts": {"DATABASE_URL_FILE", "JWT_PUBLIC_KEY_FILE", "SERVICE_TOKEN_FILE", "RABBIT_URL_FILE"},
        "transactions": {"DATABASE_URL_FILE", "JWT_PUBLIC_KEY_FILE", "SERVICE_TOKEN_FILE", "RABBIT_URL_FILE"},
        "notifications": {"DATABASE_URL_FILE", "JWT_PUBLIC_KEY_FILE"},
        "notifier": {"DATABASE_URL_FILE", "JWT_PUBLIC_KEY_FILE", "RABBIT_URL_FILE"},
        "ui": set(),
    }
    for deployment in role_deployments(objects):
        files = {name for name in env_of(main_container(deployment)) if name.endswith("_FILE")}
        assert files == wanted[deployment["metadata"]["name"]], deployment["metadata"]["name"]


SECRET_LOOKING = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),  # a URL carrying a password
    re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key)\w*[\"']?\s*[=:]\s*\S+"),  # key = value, "key": value
    # A long random-looking string, base64 or URL-safe; a snake_case name (a metric's, in a dashboard) is not.
    re.compile(r"(?![a-z_]+\b)[A-Za-z0-9+/_=-]{32,}"),
]


def test_no_configmap_value_looks_like_a_secret(objects: list[Obj]) -> None:
    for config in of_kind(objects, "ConfigMap"):
        for key, value in config.get("data", {}).items():
            for pattern in SECRET_LOOKING:
                assert not pattern.search(value), f"ConfigMap {config['metadata']['name']}/{key}: {pattern.pattern}"


def test_the_secret_pattern_catches_what_microbank_keys_makes() -> None:
    for secret in kubernetes_secrets(generate())["items"]:
        for key, value in secret["stringData"].items():
            if key not in ("username", "database"):  # names, not secrets
                assert any(p.search(value) for p in SECRET_LOOKING), f"{secret['metadata']['name']}/{key}"


# --- Services and the Ingress ----------------------------------------------------------------


def test_every_service_selects_pods_that_exist_on_ports_they_open(objects: list[Obj]) -> None:
    for service in of_kind(objects, "Service"):
        name = service["metadata"]["name"]
        selector = {"matchLabels": service["spec"]["selector"]}
        matching = [w for w in workloads(objects) if selects(selector, pod_template(w)["metadata"]["labels"])]
        assert matching, f"Service {name} selects no pod"
        for workload in matching:
            ports = [p for c in containers(workload, init=False) for p in c.get("ports", [])]
            for port in service["spec"]["ports"]:
                target = port["targetPort"]
                assert any(target in (p.get("name"), p["containerPort"]) for p in ports), f"{name}:{target}"


def _service_port(objects: list[Obj], backend: Obj) -> int:
    service = named(objects, "Service", backend["service"]["name"])
    wanted = backend["service"]["port"]
    ports = [
        p for p in service["spec"]["ports"] if wanted.get("name") == p["name"] or wanted.get("number") == p["port"]
    ]
    assert len(ports) == 1, f"Service {service['metadata']['name']} has no port {wanted}"
    return ports[0]["port"]


def ingress_paths(objects: list[Obj]) -> list[tuple[str, str, Obj]]:
    """(path, service, the Ingress) for every path of every Ingress."""
    return [
        (path["path"], path["backend"]["service"]["name"], ingress)
        for ingress in of_kind(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def test_every_ingress_backend_is_a_service_port_that_exists(objects: list[Obj]) -> None:
    for ingress in of_kind(objects, "Ingress"):
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "Prefix"
                _service_port(objects, path["backend"])


def test_the_ingress_routes_exactly_the_route_table(objects: list[Obj]) -> None:
    routed = {(path, service) for path, service, _ in ingress_paths(objects)}
    assert routed == {(route.prefix, route.role) for route in ROUTES}
    for prefix in ("/api/users", "/api/auth", "/api/accounts", "/api/transactions", "/api/notifications", "/"):
        assert prefix in {path for path, _ in routed}
    assert not any(path.startswith("/internal") for path, _ in routed)


def test_kind_serves_microbank_local(rendered: dict[str, list[Obj]]) -> None:
    hosts = {rule["host"] for ingress in of_kind(rendered["kind"], "Ingress") for rule in ingress["spec"]["rules"]}
    assert hosts == {"microbank.local"}


def test_prod_serves_its_host_over_tls_only(rendered: dict[str, list[Obj]]) -> None:
    for ingress in of_kind(rendered["prod"], "Ingress"):
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"


def test_the_stream_is_unbuffered_with_a_long_read_timeout_and_nothing_else_is(objects: list[Obj]) -> None:
    streams = {route.prefix for route in ROUTES if route.streams}
    for path, _, ingress in ingress_paths(objects):
        annotations = ingress["metadata"].get("annotations", {})
        timeout = int(annotations.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "60"))
        if path in streams:
            assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
            assert timeout >= STREAM_READ_TIMEOUT_SECONDS
        else:
            assert annotations.get("nginx.ingress.kubernetes.io/proxy-buffering", "on") == "on"
            assert timeout <= 60, path


# --- network policies: exactly the paths of the design ---------------------------------------

INGRESS_NGINX = Peer(
    "ingress-nginx",
    "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    ports=(80, 443),
)
PROMETHEUS = Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, ports=(9090,))
KUBE_DNS = Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, ports=(53,))
ANOTHER_NAMESPACE = Peer("a pod elsewhere", "default", {"app.kubernetes.io/name": "microbank"}, ports=(8080,))
THE_INTERNET = Peer("the internet", address="203.0.113.7", ports=(80, 443, 5432, 5672))
MANAGED_DATABASES = [
    Peer(f"{domain} database", address=address, ports=(5432,)) for domain, address in MANAGED_DATABASE_ADDRESS.items()
]


def expected_paths(overlay: str, pods: list[str]) -> set[tuple[str, str, int]]:
    """The design's table, line by line."""
    paths = {("ingress-nginx", role, PORT[role]) for role in API_ROLES}
    paths |= {("prometheus", role, PORT[role]) for role in ROLE_NAMES} | {("prometheus", "rabbitmq", 15692)}
    paths |= {("transactions", "accounts", 8002), ("accounts", "transactions", 8003)}
    if overlay == "kind":
        paths |= {(role, f"{domain}-db", 5432) for role, domain in OWN_DATABASE.items()}
    else:
        paths |= {(role, f"{domain} database", 5432) for role, domain in OWN_DATABASE.items()}
    paths |= {(role, "rabbitmq", 5672) for role in ("users", "accounts", "transactions", "notifier")}
    paths |= {(pod, "kube-dns", 53) for pod in pods}
    return paths


def test_network_policies_allow_exactly_the_designed_paths(rendered: dict[str, list[Obj]]) -> None:
    for overlay, objects in rendered.items():
        outside = [INGRESS_NGINX, PROMETHEUS, KUBE_DNS, ANOTHER_NAMESPACE, THE_INTERNET]
        if overlay == "prod":
            outside += MANAGED_DATABASES
        pods = [w["metadata"]["name"] for w in workloads(objects)]

        allowed = allowed_paths(objects, outside)

        expected = expected_paths(overlay, pods)
        assert allowed - expected == set(), f"{overlay} allows more than the design"
        assert expected - allowed == set(), f"{overlay} blocks a path of the design"


def test_every_pod_is_isolated_both_ways_by_default(objects: list[Obj]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    for workload in workloads(objects):
        labels = pod_template(workload)["metadata"]["labels"]
        for direction in ("Ingress", "Egress"):
            isolating = [
                p
                for p in policies
                if selects(p["spec"]["podSelector"], labels) and direction in p["spec"]["policyTypes"]
            ]
            assert isolating, f"{workload['metadata']['name']} is not isolated for {direction}"
    deny = named(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_evaluator_sees_a_path_a_policy_opens(rendered: dict[str, list[Obj]]) -> None:
    """The table test is only as good as its reading of policies: one extra rule must show."""
    objects = [o for o in rendered["kind"] if o["kind"] != "NetworkPolicy" or o["metadata"]["name"] != "dns"]
    opened = json.loads(json.dumps(named(rendered["kind"], "NetworkPolicy", "transactions-to-accounts")))
    opened["spec"]["egress"][0]["to"].append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": "users"}}})
    objects = [o for o in objects if o["metadata"]["name"] != "transactions-to-accounts"] + [opened]
    policy = opened["metadata"]["name"]

    allowed = allowed_paths(objects, [KUBE_DNS])

    assert ("transactions", "kube-dns", 53) not in allowed, "without the dns policy, no DNS"
    assert ("transactions", "users", 8001) not in allowed, f"{policy} opens egress, users' ingress still refuses"
    assert ("transactions", "accounts", 8002) in allowed
