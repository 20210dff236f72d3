"""A call between services on a connection the server dropped is retried once, and only then."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from microbank.platform.service_http import post_idempotent


def post_through(failures: list[Exception]) -> tuple[httpx.Response | Exception, int]:
    """POST through a transport that raises `failures` in turn, then answers 200."""
    calls = 0

    def transport(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json={"ok": True})

    async def post() -> httpx.Response | Exception:
        async with httpx.AsyncClient(base_url="http://accounts", transport=httpx.MockTransport(transport)) as client:
            try:
                return await post_idempotent(client, "/internal/postings", json={})
            except httpx.HTTPError as exc:
                return exc

    return asyncio.run(post()), calls


@pytest.mark.parametrize("dropped", [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed")])
def test_a_connection_dropped_before_the_answer_is_tried_once_more(dropped):
    result, calls = post_through([dropped])

    assert isinstance(result, httpx.Response) and result.status_code == 200
    assert calls == 2


def test_a_second_drop_is_the_callers_to_handle():
    result, calls = post_through([httpx.ReadError("reset"), httpx.ReadError("reset again")])

    assert isinstance(result, httpx.ReadError)
    assert calls == 2


def test_a_timeout_is_not_retried_because_the_request_may_still_be_running():
    result, calls = post_through([httpx.ReadTimeout("slow")])

    assert isinstance(result, httpx.ReadTimeout)
    assert calls == 1
