"""The static checkers a platform team runs, clean, with every skip justified where it is made:
checkov over the rendered overlays and the Dockerfile, hadolint over the Dockerfile, shellcheck
over the deploy scripts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.kube import K8S, OVERLAYS, ROOT, kubectl

VENV_BIN = Path(sys.executable).parent
SCRIPTS = sorted((ROOT / "deploy").rglob("*.sh"))


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}:/usr/bin:/bin") or shutil.which(name)
    assert found, f"{name} is not installed (pip install -e '.[dev]', or apt-get install {name})"
    return found


def test_checkov_passes_on_every_overlay_and_the_dockerfile(tmp_path: Path) -> None:
    files = []
    for overlay in OVERLAYS:
        rendered = subprocess.run(
            [kubectl(), "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
        )
        assert rendered.returncode == 0, rendered.stderr
        files += ["-f", str(tmp_path / f"{overlay}.yaml")]
        (tmp_path / f"{overlay}.yaml").write_text(rendered.stdout)
    command = [tool("checkov"), "--skip-download", "--quiet", "--compact", "--framework", "kubernetes", "dockerfile"]

    result = subprocess.run(
        [*command, *files, "-f", str(ROOT / "Dockerfile"), "-o", "json"], capture_output=True, text=True, timeout=600
    )

    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['resource']}" for r in reports for c in r["results"]["failed_checks"]]
    assert failed == [], failed
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    assert all(r["summary"]["passed"] > 50 for r in reports)
    assert result.returncode == 0, result.stderr


def test_every_checkov_skip_says_why() -> None:
    skips = []
    for path in [*K8S.rglob("*.yaml"), ROOT / "Dockerfile"]:
        skips += re.findall(r"checkov(?:\.io/skip\d+:|:skip=)\s*(\S+?)[=:]\s*(.*)", path.read_text())
    assert skips, "the skips were expected here"
    for check, reason in skips:
        assert len(reason.split()) >= 5, f"{check}: say why it is skipped"


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(ROOT)) for s in SCRIPTS])
def test_shellcheck_passes_on_the_deploy_scripts(script: Path) -> None:
    result = subprocess.run([tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_scripts_to_check() -> None:
    assert {s.name for s in SCRIPTS} >= {"up.sh", "down.sh", "image-smoke.sh"}
