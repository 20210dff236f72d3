"""A call between services, against a real server on loopback: a kept-alive connection the server
closed is tried once more on a fresh one, and a request that may have arrived is never resent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from microbank.drills.processes import free_port
from microbank.platform.service_http import ServiceClient, ServiceUnreachable

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@contextmanager
def server(behaviour: str) -> Iterator[dict[str, int]]:
    """A loopback server that answers each connection's first request and then closes it
    ("answer_then_close"), closes without answering ("drop"), or never answers ("silent")."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = {"connections": 0, "requests": 0}
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            seen["connections"] += 1
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
                chunk = connection.recv(65536)
                if not chunk:
                    break
                data += chunk
            seen["requests"] += 1
            if behaviour == "answer_then_close":
                connection.sendall(OK)
            if behaviour == "silent":
                held.append(connection)
                continue
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    seen["port"] = listener.getsockname()[1]
    try:
        yield seen
    finally:
        listener.close()
        for connection in held:
            connection.close()


def client(port: int, **kwargs) -> ServiceClient:
    return ServiceClient(f"http://127.0.0.1:{port}", **kwargs)


def test_a_kept_alive_connection_the_server_closed_is_tried_once_more_on_a_fresh_one():
    with server("answer_then_close") as seen:
        accounts = client(seen["port"])
        assert accounts.post_idempotent("/internal/postings", b"{}").status == 200
        assert accounts.post_idempotent("/internal/postings", b"{}").status == 200
    assert seen["requests"] == 2


def test_a_fresh_connection_dropped_without_an_answer_is_the_callers_to_handle():
    with server("drop") as seen, pytest.raises(ServiceUnreachable) as failed:
        client(seen["port"]).post_idempotent("/internal/postings", b"{}")
    assert failed.value.sent
    assert seen["requests"] == 1


def test_a_request_without_an_answer_is_not_sent_again_because_it_may_still_be_running():
    with server("silent") as seen, pytest.raises(ServiceUnreachable) as failed:
        client(seen["port"], read_timeout=0.2).post_idempotent("/internal/postings", b"{}")
    assert failed.value.sent
    assert seen["requests"] == 1


def test_a_service_that_is_not_there_was_certainly_not_reached():
    with pytest.raises(ServiceUnreachable) as failed:
        client(free_port()).post_idempotent("/internal/postings", b"{}")
    assert not failed.value.sent


@pytest.mark.parametrize("url", ["https://accounts:8002", "accounts:8002", "http://"])
def test_a_service_url_must_be_plain_http_with_a_host(url):
    with pytest.raises(ValueError, match="http://host:port"):
        ServiceClient(url)
