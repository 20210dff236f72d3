"""What the server itself refuses before the app sees a request: oversized or malformed heads,
answered in the bank's JSON error shape, with the process not growing."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from microbank.drills.stack import BankStack
from microbank.platform.server import MAX_HEAD_BYTES, MAX_HEADERS

HEAD = b"GET /healthz HTTP/1.1\r\nHost: bank\r\n"


def exchange(port: int, request: bytes) -> bytes:
    """Send `request` (as far as the server reads it) and return everything it answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        try:
            for start in range(0, len(request), 1 << 16):
                connection.sendall(request[start : start + (1 << 16)])
        except OSError:
            pass  # the server refused and closed before the whole request was sent
        answer = b""
        while chunk := connection.recv(1 << 16):
            answer += chunk
    return answer


def resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


REFUSED = {
    "one-50-MB-header": (HEAD + b"X-Big: " + b"a" * (50 << 20) + b"\r\n\r\n", 431),
    "2000-headers": (HEAD + b"".join(b"X-%d: 1\r\n" % n for n in range(2000)) + b"\r\n", 431),
    "NUL-in-a-header": (HEAD + b"X-A: a\x00b\r\n\r\n", 400),
    "DEL-in-a-header": (HEAD + b"X-A: a\x7fb\r\n\r\n", 400),
    "VT-in-a-header": (HEAD + b"X-A: a\x0bb\r\n\r\n", 400),
    "content-length-and-chunked": (
        b"POST /api/users HTTP/1.1\r\nHost: bank\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), list(REFUSED.values()), ids=list(REFUSED))
def test_the_server_refuses_a_head_it_should_not_read(split_bank: BankStack, request_bytes, status):
    role = split_bank.roles["accounts"]
    before = resident_kib(role.pid)

    answer = exchange(role.port, request_bytes)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert body.startswith(b'{"status":%d,' % status), body
    assert resident_kib(role.pid) - before < 8 * 1024, "the process grew by more than 8 MiB"


def test_a_head_within_the_limits_is_served(split_bank: BankStack):
    headers = b"".join(b"X-%d: 1\r\n" % n for n in range(MAX_HEADERS - 3))
    padding = b"X-Pad: " + b"a" * (MAX_HEAD_BYTES - len(HEAD) - len(headers) - 100) + b"\r\n"
    request = HEAD + headers + padding + b"Connection: close\r\n\r\n"
    assert len(request) < MAX_HEAD_BYTES

    answer = exchange(split_bank.roles["accounts"].port, request)

    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
