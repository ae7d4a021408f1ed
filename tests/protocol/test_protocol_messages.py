"""Message schemas, the registry's validation, and the hello handshake."""

from typing import Any

import pytest
from kernsim.protocol import (
    GENERIC_MESSAGES,
    PROTOCOL_VERSION,
    Envelope,
    Field,
    HandshakeRefused,
    Kind,
    MalformedMessage,
    MessageSchema,
    Registry,
    TemporarilyUnavailable,
    UnknownMessageType,
    accept_hello,
    check_hello_ok,
    default_registry,
    make_hello,
    parse_fields,
    reply_error,
    reply_ok,
)

SWAP_DUPLICATE = MessageSchema(
    "swap_duplicate", parse_fields("entry:int"), parse_fields("ret:int"), "swap_duplicate()"
)
KINDS = MessageSchema(
    "kinds",
    parse_fields("i:int", "s:str", "b:bool", "f:float", "l:list_int", "m:map", "o:int?"),
)


def registry() -> Registry:
    reg = default_registry()
    reg.register(SWAP_DUPLICATE)
    reg.register(KINDS)
    return reg


def request(type_: str, body: dict[str, Any]) -> Envelope:
    return Envelope("cpu0", "mm", 5, None, type_, body)


GOOD_KINDS: dict[str, Any] = {"i": -3, "s": "", "b": False, "f": 0.5, "l": [1, 2], "m": {"k": []}}


def test_parse_fields_reads_kinds_and_optional_marks() -> None:
    assert parse_fields("entry:int", "token:str?") == (
        Field("entry", Kind.INT),
        Field("token", Kind.STR, optional=True),
    )
    assert [f.spec for f in parse_fields("a:list_int?", "b:map")] == ["a:list_int?", "b:map"]


@pytest.mark.parametrize("spec", ["entry", "entry:integer", "Entry:int", "1x:int", ":int"])
def test_parse_fields_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_fields(spec)


@pytest.mark.parametrize("name", ["ping_ok", "error", "Bad", "", "x" * 62, "a-b"])
def test_schema_rejects_reserved_or_bad_type_names(name: str) -> None:
    with pytest.raises(ValueError):
        MessageSchema(name)


def test_schema_rejects_duplicate_field_names() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        MessageSchema("x", parse_fields("a:int", "a:str"))


def test_registry_refuses_a_second_schema_for_a_type() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="already registered"):
        reg.register(MessageSchema("swap_duplicate"))


def test_default_registry_holds_only_the_generic_messages() -> None:
    reg = default_registry()
    assert [s.type for s in reg] == ["hello", "ping", "statistics"]
    assert len(reg) == len(GENERIC_MESSAGES)
    assert "swap_duplicate" not in reg
    # Fresh each time, so one service's primitives never leak into another's.
    reg.register(SWAP_DUPLICATE)
    assert "swap_duplicate" not in default_registry()


def test_valid_request_returns_its_schema() -> None:
    assert registry().validate_request(request("swap_duplicate", {"entry": 9})) is SWAP_DUPLICATE
    assert registry().validate_request(request("kinds", GOOD_KINDS)) is KINDS


def test_optional_field_may_be_nil_and_float_accepts_int() -> None:
    body = GOOD_KINDS | {"o": None, "f": 2}
    assert registry().validate_request(request("kinds", body)) is KINDS


def test_unknown_type_is_code_10() -> None:
    with pytest.raises(UnknownMessageType) as info:
        registry().validate_request(request("swap_triplicate", {}))
    assert info.value.code == 10
    assert "swap_triplicate" in info.value.text


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("i", True, "field 'i' must be int, got bool"),
        ("i", 1.0, "field 'i' must be int, got float"),
        ("s", b"x", "field 's' must be str, got bytes"),
        ("b", 1, "field 'b' must be bool, got int"),
        ("f", "1.0", "field 'f' must be float, got str"),
        ("f", True, "field 'f' must be float, got bool"),
        ("l", [1, "2"], "field 'l' must be list_int"),
        ("l", [True], "field 'l' must be list_int"),
        ("l", {}, "field 'l' must be list_int"),
        ("m", {b"k": 1}, "field 'm' must be map"),
        ("m", [], "field 'm' must be map"),
        ("o", "7", "field 'o' must be int"),
        ("i", None, "required field 'i' is missing or nil"),
    ],
)
def test_wrong_kinds_name_the_field(field: str, value: Any, needle: str) -> None:
    with pytest.raises(MalformedMessage) as info:
        registry().validate_request(request("kinds", GOOD_KINDS | {field: value}))
    assert needle in info.value.text


def test_missing_and_unknown_fields_are_named() -> None:
    reg = registry()
    with pytest.raises(MalformedMessage, match="required field 'entry' is missing"):
        reg.validate_request(request("swap_duplicate", {}))
    with pytest.raises(MalformedMessage, match=r"unknown field\(s\) \['entyr'\]"):
        reg.validate_request(request("swap_duplicate", {"entry": 1, "entyr": 1}))


def test_request_must_not_be_a_reply() -> None:
    env = Envelope("cpu0", "mm", 5, 4, "ping", {})
    with pytest.raises(MalformedMessage, match="must not carry in_reply_to"):
        registry().validate_request(env)


def test_ok_reply_validated_against_reply_fields() -> None:
    reg = registry()
    req = request("swap_duplicate", {"entry": 1})
    assert reg.validate_reply(reply_ok(req, {"ret": -12})) is SWAP_DUPLICATE
    with pytest.raises(MalformedMessage, match="swap_duplicate_ok: required field 'ret'"):
        reg.validate_reply(reply_ok(req, {}))


def test_error_reply_validated_against_error_fields() -> None:
    reg = registry()
    req = request("swap_duplicate", {"entry": 1})
    assert reg.validate_reply(reply_error(req, 20, "no slot", errno=22)) is None
    bad = Envelope("mm", "cpu0", 1, 5, "error", {"code": "12", "text": "", "definite": True})
    with pytest.raises(MalformedMessage, match="field 'code' must be int"):
        reg.validate_reply(bad)


def test_reply_type_must_be_ok_or_error_and_carry_in_reply_to() -> None:
    reg = registry()
    with pytest.raises(UnknownMessageType):
        reg.validate_reply(Envelope("mm", "cpu0", 1, 5, "swap_duplicate", {"ret": 0}))
    with pytest.raises(UnknownMessageType):
        reg.validate_reply(Envelope("mm", "cpu0", 1, 5, "nothing_ok", {}))
    with pytest.raises(MalformedMessage, match="must carry in_reply_to"):
        reg.validate_reply(Envelope("mm", "cpu0", 1, None, "ping_ok", {}))


def test_generic_messages_validate() -> None:
    reg = default_registry()
    hello = make_hello("cpu0", "mm", msg_id=1, service="tasks", token="s3cret")
    reg.validate_request(hello)
    reg.validate_request(request("ping", {}))
    stats = reply_ok(request("statistics", {}), {"stats": {"frames": 3}})
    assert reg.validate_reply(stats) is not None


def test_handshake_accepts_same_version_and_token() -> None:
    hello = make_hello("cpu0", "mm", msg_id=1, service="tasks", token="s3cret")
    reply = accept_hello(hello, service="mm", token="s3cret", msg_id=8)
    default_registry().validate_reply(reply)
    assert reply.body == {"service": "mm", "version": PROTOCOL_VERSION}
    assert check_hello_ok(reply) == "mm"


def test_handshake_without_expected_token_accepts_any() -> None:
    hello = make_hello("cpu0", "mm", msg_id=1, service="tasks")
    assert "token" not in hello.body
    assert accept_hello(hello, service="mm").type == "hello_ok"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (make_hello("a", "b", msg_id=1, service="x"), "bad or missing token"),
        (make_hello("a", "b", msg_id=1, service="x", token="wrong"), "bad or missing token"),
        (
            Envelope("a", "b", 1, None, "hello", {"service": "x", "version": 0, "token": "t"}),
            "protocol version 0",
        ),
        (Envelope("a", "b", 1, None, "ping", {}), "expected hello"),
    ],
)
def test_handshake_refusals_are_code_15(env: Envelope, needle: str) -> None:
    with pytest.raises(HandshakeRefused) as info:
        accept_hello(env, service="mm", token="t")
    assert needle in info.value.text
    assert info.value.code == 15 and info.value.definite


def test_check_hello_ok_raises_peer_errors_and_mismatches() -> None:
    hello = make_hello("cpu0", "mm", msg_id=1, service="tasks")
    with pytest.raises(TemporarilyUnavailable):
        check_hello_ok(reply_error(hello, 11, "paused"))
    with pytest.raises(HandshakeRefused, match="version 2"):
        check_hello_ok(reply_ok(hello, {"service": "mm", "version": 2}))
    with pytest.raises(HandshakeRefused, match="expected hello_ok"):
        check_hello_ok(reply_ok(request("ping", {}), {}))
