"""The `hello` handshake as pure functions, so both ends apply the same rules.

The connecting side sends `hello` first; the accepting side answers
`hello_ok` with its own service name and version, or refuses with error 15
and closes. Versions must be equal: all services ship together, so a
mismatch means a stale process, and refusing it beats misreading its bodies.
The token is an optional shared secret compared in constant time, so that
a stray client on the same host cannot drive the kernel model.
"""

from __future__ import annotations

import hmac
from typing import Any

from .envelope import ERROR_TYPE, Envelope, error_from_reply, reply_ok
from .errors import HandshakeRefused
from .messages import PROTOCOL_VERSION

__all__ = ["accept_hello", "check_hello_ok", "make_hello"]


def make_hello(
    src: str, dest: str, *, msg_id: int, service: str, token: str | None = None
) -> Envelope:
    """The `hello` request a connecting `service` sends first."""
    body: dict[str, Any] = {"service": service, "version": PROTOCOL_VERSION}
    if token is not None:
        body["token"] = token
    return Envelope(src, dest, msg_id, None, "hello", body)


def accept_hello(
    req: Envelope, *, service: str, token: str | None = None, msg_id: int = 0
) -> Envelope:
    """Answer a validated `hello`, or raise HandshakeRefused (the caller then closes).

    `token` is the secret this side expects; None accepts any or no token.
    """
    if req.type != "hello":
        raise HandshakeRefused(f"expected hello as the first message, got {req.type!r}")
    version = req.body["version"]
    if version != PROTOCOL_VERSION:
        raise HandshakeRefused(f"protocol version {version} != {PROTOCOL_VERSION}")
    if token is not None and not _same_secret(req.body.get("token"), token):
        raise HandshakeRefused("bad or missing token")
    return reply_ok(req, {"service": service, "version": PROTOCOL_VERSION}, msg_id=msg_id)


def check_hello_ok(reply: Envelope) -> str:
    """Check a validated reply to `hello` and return the peer's service name.

    An `error` reply is raised as the exception it reports.
    """
    if reply.type == ERROR_TYPE:
        raise error_from_reply(reply)
    if reply.type != "hello_ok":
        raise HandshakeRefused(f"expected hello_ok, got {reply.type!r}")
    version = reply.body["version"]
    if version != PROTOCOL_VERSION:
        raise HandshakeRefused(f"peer speaks protocol version {version}, we {PROTOCOL_VERSION}")
    service: str = reply.body["service"]
    return service


def _same_secret(given: object, expected: str) -> bool:
    if type(given) is not str:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
