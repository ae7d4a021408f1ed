"""Declarative message schemas and the registry that validates bodies against them.

A `MessageSchema` names a request type, the fields of its body and the
fields of its `<type>_ok` reply body. The registry is generic on purpose: this
module declares only the service-level messages every service answers
(`hello`, `ping`, `statistics`); the services layer registers one schema per
kernel-model primitive (e.g. `swap_duplicate {entry:int} -> {ret:int}`).

Validation is strict: a missing required field, a value of the wrong kind and
an unknown field are all `MalformedMessage` errors naming the field, so that
a typo in a sender fails loudly at the receiver's door instead of becoming a
default value deep in the kernel model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from .envelope import ERROR_TYPE, MAX_TYPE_CHARS, OK_SUFFIX, Envelope
from .errors import MalformedMessage, UnknownMessageType

__all__ = [
    "ERROR_FIELDS",
    "GENERIC_MESSAGES",
    "PROTOCOL_VERSION",
    "Field",
    "Kind",
    "MessageSchema",
    "Registry",
    "default_registry",
    "parse_fields",
    "render_markdown",
]

# Bumped on any change a peer of the previous version would reject or
# misread; `hello` refuses a peer whose version differs.
PROTOCOL_VERSION: Final = 1

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


class Kind(StrEnum):
    """The kinds of value a body field may hold."""

    INT = "int"
    STR = "str"
    BOOL = "bool"
    FLOAT = "float"
    LIST_INT = "list_int"
    MAP = "map"


# Exact type checks: bool is an int subclass, and True is no page number.
_CHECKS: Mapping[Kind, Callable[[Any], bool]] = {
    Kind.INT: lambda v: type(v) is int,
    Kind.STR: lambda v: type(v) is str,
    Kind.BOOL: lambda v: type(v) is bool,
    # msgpack keeps ints and floats apart, but senders write 0 for 0.0.
    Kind.FLOAT: lambda v: type(v) is float or type(v) is int,
    Kind.LIST_INT: lambda v: type(v) is list and all(type(x) is int for x in v),
    Kind.MAP: lambda v: type(v) is dict and all(type(k) is str for k in v),
}


@dataclass(frozen=True, slots=True)
class Field:
    """One body field. An optional field may be absent or nil."""

    name: str
    kind: Kind
    optional: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"field name {self.name!r} must match [a-z][a-z0-9_]*")
        if not isinstance(self.kind, Kind):
            raise ValueError(f"field {self.name!r}: kind must be a Kind, got {self.kind!r}")

    @property
    def spec(self) -> str:
        """The `name:kind[?]` form parse_fields reads."""
        return f"{self.name}:{self.kind.value}{'?' if self.optional else ''}"


def parse_fields(*specs: str) -> tuple[Field, ...]:
    """Build fields from `name:kind` specs, `?` marking optional: ("entry:int", "token:str?")."""
    fields = []
    for spec in specs:
        name, sep, kind = spec.partition(":")
        if not sep:
            raise ValueError(f"field spec {spec!r} must look like name:kind")
        optional = kind.endswith("?")
        fields.append(Field(name, Kind(kind.removesuffix("?")), optional))
    return tuple(fields)


@dataclass(frozen=True, slots=True)
class MessageSchema:
    """A request type, its body fields, and the body fields of its `_ok` reply."""

    type: str
    fields: tuple[Field, ...] = ()
    reply_fields: tuple[Field, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        limit = MAX_TYPE_CHARS - len(OK_SUFFIX)
        if not _NAME.match(self.type) or len(self.type) > limit:
            raise ValueError(f"type {self.type!r} must match [a-z][a-z0-9_]*, <= {limit} chars")
        # Keeps the reply namespace unambiguous: `x_ok` and `error` are replies.
        if self.type.endswith(OK_SUFFIX) or self.type == ERROR_TYPE:
            raise ValueError(f"type {self.type!r} is reserved for replies")
        for label, fields in (("fields", self.fields), ("reply_fields", self.reply_fields)):
            names = [f.name for f in fields]
            if len(set(names)) != len(names):
                raise ValueError(f"{self.type}: duplicate names in {label}: {names}")

    @property
    def reply_type(self) -> str:
        return self.type + OK_SUFFIX


# The body of every `error` reply (see errors.py for the codes).
ERROR_FIELDS: Final = parse_fields("code:int", "text:str", "definite:bool", "errno:int?")


# A field as the validation loop wants it: name, exact type for the simple
# kinds (None otherwise), checker for the rest, optional flag, kind. Built
# once per schema, because attribute and enum lookups per field add up.
_Check = tuple[str, type | None, Callable[[Any], bool], bool, Kind]
_EXACT_TYPES: Mapping[Kind, type] = {Kind.INT: int, Kind.STR: str, Kind.BOOL: bool}


def _compile(fields: tuple[Field, ...]) -> tuple[_Check, ...]:
    return tuple(
        (f.name, _EXACT_TYPES.get(f.kind), _CHECKS[f.kind], f.optional, f.kind) for f in fields
    )


def _check_body(body: dict[str, Any], checks: tuple[_Check, ...], what: str) -> None:
    present = 0
    for name, exact, check, optional, kind in checks:
        value = body.get(name)
        if value is None:
            if name in body:
                present += 1
            if optional:
                continue
            raise MalformedMessage(f"{what}: required field {name!r} is missing or nil")
        present += 1
        if type(value) is not exact and (exact is not None or not check(value)):
            raise MalformedMessage(
                f"{what}: field {name!r} must be {kind.value}, got {type(value).__name__}"
            )
    if present != len(body):
        known = {c[0] for c in checks}
        unknown = sorted(k for k in body if k not in known)
        raise MalformedMessage(f"{what}: unknown field(s) {unknown}")


_ERROR_CHECKS: Final = _compile(ERROR_FIELDS)


class Registry:
    """The message types one endpoint understands, keyed by request type."""

    __slots__ = ("_checks", "_schemas")

    def __init__(self, schemas: Iterable[MessageSchema] = ()) -> None:
        self._schemas: dict[str, MessageSchema] = {}
        # Per type: compiled checks of the request and of the reply body.
        self._checks: dict[str, tuple[tuple[_Check, ...], tuple[_Check, ...]]] = {}
        for schema in schemas:
            self.register(schema)

    def register(self, schema: MessageSchema) -> MessageSchema:
        """Add a schema; a second schema for the same type is a programming error."""
        if schema.type in self._schemas:
            raise ValueError(f"message type {schema.type!r} is already registered")
        self._schemas[schema.type] = schema
        self._checks[schema.type] = (_compile(schema.fields), _compile(schema.reply_fields))
        return schema

    def __contains__(self, type_: object) -> bool:
        return type_ in self._schemas

    def __iter__(self) -> Iterator[MessageSchema]:
        return iter(self._schemas.values())

    def __len__(self) -> int:
        return len(self._schemas)

    def schema(self, type_: str) -> MessageSchema:
        """The schema of request type `type_`, or UnknownMessageType (code 10)."""
        schema = self._schemas.get(type_)
        if schema is None:
            raise UnknownMessageType(f"unknown message type {type_!r}")
        return schema

    def validate_request(self, env: Envelope) -> MessageSchema:
        """Check a request's type and body; return its schema."""
        if env.in_reply_to is not None:
            raise MalformedMessage(f"{env.type}: a request must not carry in_reply_to")
        schema = self.schema(env.type)
        _check_body(env.body, self._checks[env.type][0], env.type)
        return schema

    def validate_reply(self, env: Envelope) -> MessageSchema | None:
        """Check a reply's type and body; return the request's schema (None for `error`)."""
        if env.in_reply_to is None:
            raise MalformedMessage(f"{env.type}: a reply must carry in_reply_to")
        if env.type == ERROR_TYPE:
            _check_body(env.body, _ERROR_CHECKS, ERROR_TYPE)
            return None
        if not env.type.endswith(OK_SUFFIX):
            raise UnknownMessageType(f"{env.type!r} is neither an _ok reply nor an error")
        schema = self.schema(env.type.removesuffix(OK_SUFFIX))
        _check_body(env.body, self._checks[schema.type][1], env.type)
        return schema


GENERIC_MESSAGES: Final = (
    MessageSchema(
        "hello",
        parse_fields("service:str", "version:int", "token:str?"),
        parse_fields("service:str", "version:int"),
        "Handshake: the first message on every connection, sent by the connecting side.",
    ),
    MessageSchema("ping", (), (), "Liveness and round-trip probe; no effect."),
    MessageSchema(
        "statistics",
        (),
        parse_fields("stats:map"),
        "The service's counters, as a map of name to value.",
    ),
)


def default_registry() -> Registry:
    """A fresh registry holding the generic messages, ready for more schemas."""
    return Registry(GENERIC_MESSAGES)


def _specs(fields: tuple[Field, ...]) -> str:
    return "{" + ", ".join(f.spec for f in fields) + "}"


def render_markdown(schemas: Iterable[MessageSchema]) -> str:
    """A markdown table of schemas, as PROTOCOL.md shows them."""
    lines = ["| type | request body | `_ok` reply body | purpose |", "|---|---|---|---|"]
    for s in schemas:
        lines.append(
            f"| `{s.type}` | `{_specs(s.fields)}` | `{_specs(s.reply_fields)}` | {s.doc} |"
        )
    return "\n".join(lines) + "\n"
