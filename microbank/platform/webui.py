"""The web UI: the files `npm run build` leaves in ui/dist, served at / on the same origin as the
API, so the browser's only other origin is none. Hashed assets are cached for a year, index.html
never is (it names the hashes of the current build), and any other path that is not the API's gets
index.html: the app routes it in the browser."""

from __future__ import annotations

import html
import logging
import mimetypes
from pathlib import Path

from litestar import HttpMethod, Request, Response, route
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.params import FromPath

from microbank.platform.http import OPEN

log = logging.getLogger("microbank.webui")


# In a checkout, the build sits beside the package; the image points UI_DIST_DIR at its copy.
CHECKOUT_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"
BUILD_COMMAND = "cd ui && npm ci && npm run build"
# The API's paths, and the services' own (which no proxy routes): an unknown one is a JSON 404,
# never the app's page with a 200.
NOT_THE_APP = {"api", "internal"}

# Vite names every file under assets/ by the hash of its content: a new build is a new name.
ASSETS = "assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
# The app's scripts, styles and API calls all come from this origin; nothing inline, no eval,
# no frames, no plugins. Scripts cannot be injected as markup, and a stolen page cannot be framed.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

NOT_BUILT_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>microbank: the web UI is not built</title></head>
<body><h1>The web UI is not built</h1>
<p>The API is up under <a href="/api/schema">/api</a>. To use the bank in a browser, build the UI
(it needs Node.js and npm) and restart:</p>
<pre>{html.escape(BUILD_COMMAND)}</pre></body></html>
"""


def dist_dir(configured: Path | None) -> Path:
    return (configured or CHECKOUT_DIST).resolve()


def is_built(dist: Path) -> bool:
    return (dist / "index.html").is_file()


def route_handlers(configured: Path | None) -> list:
    """The handlers that serve the UI from `configured` (UI_DIST_DIR), else the checkout's build."""
    dist = dist_dir(configured)
    if not is_built(dist):
        log.warning("the web UI is not built in %s: %s", dist, BUILD_COMMAND)

    def answer(request: Request, relative: str) -> Response:
        if relative.split("/", 1)[0] in NOT_THE_APP:
            raise NotFoundException(f"no such path {request.url.path}")
        if request.method not in (HttpMethod.GET, HttpMethod.HEAD):
            raise MethodNotAllowedException(f"{request.method} is not served at {request.url.path}")
        return _serve(dist, relative)

    # Every method, so that a POST to an unknown /api path is a 404 like a GET, not a 405.
    @route("/", http_method=list(HttpMethod), sync_to_thread=True, opt=OPEN)
    def web_ui_root(request: Request) -> Response:
        return answer(request, "")

    @route("/{path:path}", http_method=list(HttpMethod), sync_to_thread=True, opt=OPEN)
    def web_ui(request: Request, path: FromPath[str]) -> Response:
        return answer(request, path.lstrip("/"))

    return [web_ui_root, web_ui]


def _serve(dist: Path, relative: str) -> Response:
    if not is_built(dist):
        return _page(NOT_BUILT_PAGE.encode(), "text/html", "no-cache", status=503)
    file = _file_in(dist, relative)
    if file is not None and relative != "index.html":
        cache = IMMUTABLE if relative.startswith(ASSETS) else "no-cache"
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        return _page(file.read_bytes(), media_type, cache)
    if relative.startswith(ASSETS):
        # An old page asking for an asset a newer build replaced: index.html in its place would
        # be cached as a script.
        raise NotFoundException(f"no asset {relative}")
    return _page((dist / "index.html").read_bytes(), "text/html", "no-cache")


def _file_in(dist: Path, relative: str) -> Path | None:
    """The file at `relative` if it is one inside `dist`; `..` and links out of it are nothing."""
    if not relative:
        return None
    candidate = (dist / relative).resolve()
    return candidate if candidate.is_relative_to(dist) and candidate.is_file() else None


def _page(content: bytes, media_type: str, cache: str, *, status: int = 200) -> Response:
    return Response(
        content,
        media_type=media_type,
        status_code=status,
        headers={**SECURITY_HEADERS, "Cache-Control": cache},
    )
