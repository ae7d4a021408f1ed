"""The error table and the exception hierarchy."""

import pytest
from kernsim.protocol import (
    ERROR_TABLE,
    ErrorCode,
    FrameTooLarge,
    InvalidArgument,
    MalformedFrame,
    MalformedMessage,
    ProtocolError,
    RequestTimeout,
    UnknownMessageType,
    error_from_code,
    is_definite,
)


def test_every_error_code_has_a_table_row() -> None:
    assert set(ERROR_TABLE) == {int(code) for code in ErrorCode}
    for code, info in ERROR_TABLE.items():
        assert info.code == code
        assert ErrorCode(code).name.lower() == info.name


@pytest.mark.parametrize(
    ("code", "definite"),
    [
        (0, False),
        (1, True),
        (10, True),
        (11, True),
        (12, True),
        (13, False),
        (14, True),
        (15, True),
        (20, True),
    ],
)
def test_definiteness_follows_the_table(code: int, definite: bool) -> None:
    assert is_definite(code) is definite
    assert error_from_code(code, "x").definite is definite


def test_unknown_code_is_indefinite_and_keeps_its_number() -> None:
    exc = error_from_code(99, "from a newer peer")
    assert type(exc) is ProtocolError
    assert exc.code == 99
    assert exc.definite is False
    assert exc.name == "unknown_99"
    assert exc.text == "from a newer peer"


@pytest.mark.parametrize("code", [int(c) for c in ErrorCode])
def test_error_from_code_round_trips_every_known_code(code: int) -> None:
    exc = error_from_code(code, "text")
    assert exc.code == code
    assert isinstance(exc, ProtocolError)
    assert type(exc) is not ProtocolError
    assert str(exc) == "text"


def test_specific_classes_for_specific_codes() -> None:
    assert isinstance(error_from_code(0, ""), RequestTimeout)
    assert isinstance(error_from_code(10, ""), UnknownMessageType)
    assert isinstance(error_from_code(12, ""), MalformedMessage)
    assert isinstance(error_from_code(14, ""), FrameTooLarge)


def test_invalid_argument_carries_errno() -> None:
    exc = error_from_code(20, "slot not in use", errno=22)
    assert isinstance(exc, InvalidArgument)
    assert exc.errno == 22
    assert "errno=22" in repr(exc)


def test_malformed_frame_shares_code_but_not_class_with_malformed_message() -> None:
    # Different actions (close vs reply) must be catchable apart.
    assert MalformedFrame.code == MalformedMessage.code == 12
    assert not issubclass(MalformedFrame, MalformedMessage)
    assert not issubclass(MalformedMessage, MalformedFrame)
