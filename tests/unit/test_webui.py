"""ROLE=ui: the built web app from UI_DIST_DIR, with no database and no token key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from microbank.platform.settings import load_settings
from microbank.platform.webui import IMMUTABLE
from microbank.roles import create_app

INDEX = '<!doctype html><html><head><script type="module" src="/assets/index-Ab12.js"></script></head></html>'
SCRIPT = "console.log('bank');"

UiClient = Callable[[Path], TestClient]


@pytest.fixture
def built_ui(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-Ab12.js").write_text(SCRIPT)
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("not for the web")
    return dist


@pytest.fixture
def ui_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[UiClient]:
    """A client of the ROLE=ui app serving a given dist directory, as the pod runs it: ROLE only."""
    for name in ("JWT_PUBLIC_KEY", "JWT_PRIVATE_KEY", "SERVICE_TOKEN", "DATABASE_URL", "RABBIT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROLE", "ui")
    clients: list[TestClient] = []

    def make(dist: Path) -> TestClient:
        monkeypatch.setenv("UI_DIST_DIR", str(dist))
        clients.append(TestClient(create_app(load_settings())).__enter__())
        return clients[-1]

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_the_root_is_the_app_never_cached_and_same_origin_only(ui_client: UiClient, built_ui: Path) -> None:
    response = ui_client(built_ui).get("/")

    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == policy["script-src"] == policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_hashed_assets_are_cached_for_a_year(ui_client: UiClient, built_ui: Path) -> None:
    response = ui_client(built_ui).get("/assets/index-Ab12.js")

    assert response.status_code == 200
    assert response.text == SCRIPT
    assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert response.headers["cache-control"] == IMMUTABLE


def test_an_unhashed_file_is_served_but_revalidated(ui_client: UiClient, built_ui: Path) -> None:
    response = ui_client(built_ui).get("/favicon.svg")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/accounts", "/accounts/12", "/notifications?x=1", "/index.html"])
def test_an_app_path_gets_index_html_for_the_browser_to_route(ui_client: UiClient, built_ui: Path, path: str) -> None:
    response = ui_client(built_ui).get(path)

    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/accounts/1", "/internal/postings"])
def test_an_unknown_api_path_stays_a_json_404(ui_client: UiClient, built_ui: Path, path: str) -> None:
    for method in ("GET", "POST"):
        response = ui_client(built_ui).request(method, path)

        assert response.status_code == 404, method
        assert response.json()["error"] == "not_found"


def test_a_missing_asset_is_a_404_not_the_page(ui_client: UiClient, built_ui: Path) -> None:
    response = ui_client(built_ui).get("/assets/index-Old1.js")

    assert response.status_code == 404
    assert "<html" not in response.text


def test_nothing_outside_the_build_is_served(ui_client: UiClient, built_ui: Path) -> None:
    client = ui_client(built_ui)
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        assert "not for the web" not in client.get(path).text, path


def test_a_post_to_an_app_path_is_refused(ui_client: UiClient, built_ui: Path) -> None:
    assert ui_client(built_ui).post("/accounts").status_code == 405


def test_the_ui_role_is_probed_and_scraped_like_the_others(ui_client: UiClient, built_ui: Path) -> None:
    client = ui_client(built_ui)
    client.get("/accounts")

    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text


def test_without_a_build_the_root_says_how_to_build_it(
    ui_client: UiClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="microbank.webui"):
        client = ui_client(tmp_path / "nothing-built")

    for path in ("/", "/accounts"):
        response = client.get(path)
        assert response.status_code == 503
        assert "cd ui &amp;&amp; npm ci &amp;&amp; npm run build" in response.text
    assert "cd ui && npm ci && npm run build" in caplog.text
