"""The HTTP/1.1 server under every role: uvicorn's httptools protocol, with the request head
bounded and every refusal of the protocol layer answered in the bank's JSON error shape.

httptools buffers a header until its end arrives and has no limit of its own, so one 50 MB header
or thousands of small ones would be read into memory before the app could refuse them."""

from __future__ import annotations

from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from microbank.platform.http import error_body

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100


class _HeadRefused(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """A head over MAX_HEAD_BYTES, or with over MAX_HEADERS headers, is a 431 and the connection
    closes; a head the parser cannot read (a NUL or DEL in a header, both Content-Length and
    Transfer-Encoding) is a 400. The limit is checked as bytes arrive, so at most one read of the
    socket past it is ever held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = False
        self._head_bytes = 0
        self._refusal: _HeadRefused | None = None

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            # Raised inside the parser, which stops and reports it through send_400_response.
            self._refusal = _HeadRefused(f"the request has more than {MAX_HEADERS} headers")
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(431, self._refusal.detail)
        else:
            self._refuse(400, "the HTTP request is malformed")

    def _refuse(self, status: int, detail: str) -> None:
        code = "request_header_fields_too_large" if status == 431 else "invalid_request"
        body = msgspec.json.encode(error_body(status, code, detail))
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
