"""Deploy fixtures: the overlays rendered once per run, as kubectl renders them."""

from __future__ import annotations

import pytest

from tests.deploy.kube import OVERLAYS, Obj, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest, rendered: dict[str, list[Obj]]) -> list[Obj]:
    """Every object of one overlay (the test runs once per overlay)."""
    return rendered[request.param]
