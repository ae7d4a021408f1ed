"""Wire maps for the hot path: build a request or an ``_ok`` reply without an Envelope.

A runtime sends tens of thousands of calls a second; building a frozen
`Envelope` for each and converting it with `to_wire` would double the cost of
framing. These builders return the msgpack-ready map directly, with the keys
of envelope.py in the order the byte-level example of PROTOCOL.md section 1
shows. They trust their arguments (the sender's own values); anything that
came from a peer is checked by `Envelope.from_wire` or the compiled checks of
fastpath.py first.

`encode_frame` (framing.py) turns either map into bytes.
"""

from __future__ import annotations

from typing import Any

from .envelope import (
    KEY_BODY,
    KEY_DEST,
    KEY_IN_REPLY_TO,
    KEY_MSG_ID,
    KEY_SRC,
    KEY_TYPE,
    OK_SUFFIX,
    Envelope,
)

__all__ = ["Wire", "is_reply_wire", "ok_reply_wire", "request_wire"]

#: A decoded (or about to be encoded) envelope map, keyed by the one-letter wire keys.
Wire = dict[str, Any]


def request_wire(src: str, dest: str, msg_id: int, type_: str, body: dict[str, Any]) -> Wire:
    """The wire map of a request (no ``in_reply_to`` key)."""
    return {KEY_SRC: src, KEY_DEST: dest, KEY_MSG_ID: msg_id, KEY_TYPE: type_, KEY_BODY: body}


def ok_reply_wire(req: Envelope, body: dict[str, Any]) -> Wire:
    """The wire map of the ``_ok`` reply to ``req``, with its own ``msg_id`` 0.

    The same message as ``reply_ok(req, body).to_wire()``; the key order
    (``in_reply_to`` before ``type``) is the one replies have always had.
    """
    return {
        KEY_SRC: req.dest,
        KEY_DEST: req.src,
        KEY_MSG_ID: 0,
        KEY_IN_REPLY_TO: req.msg_id,
        KEY_TYPE: req.type + OK_SUFFIX,
        KEY_BODY: body,
    }


def is_reply_wire(obj: dict[Any, Any]) -> bool:
    """Does a decoded map claim to be a reply (it carries an ``in_reply_to`` key)?"""
    return KEY_IN_REPLY_TO in obj
