"""The message catalogue: one schema per kernel primitive, plus the service requests.

Theory of operation
-------------------
The kernel model registers its primitives in ``kernsim.model.port.PRIMITIVES``;
this module turns each one into a ``MessageSchema`` from its signature, so the
wire contract can never drift from the model.  A primitive's parameters
(after the state owner) become named body fields, e.g. ``swap_duplicate
{entry:int} -> {r:int}``.  Named fields rather than one positional list: the
protocol's field kinds have no "list of anything", and names make
PROTOCOL.md readable beside the kernel source.

Results travel as:
- nothing (``None``): ``{}``;
- a scalar or a ``list[int]``: ``{r: ...}``;
- a plain tuple: ``{r0: ..., r1: ...}``, rebuilt as a tuple;
- a NamedTuple (``PageFlags``, ``FreeSwapLocked``): its own field names,
  rebuilt as the NamedTuple, so code paths can write ``flags.swapcache``.

``Codec`` is the table that does both directions for one primitive.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernsim.protocol import Field, Kind, MessageSchema, Registry, default_registry, parse_fields

# Importing the two packages registers every primitive: the model's, then the variants'.
import kernsim.model
import kernsim.variants  # noqa: F401
from kernsim.model.port import PRIMITIVES, PrimitiveInfo, WouldBlock

_KINDS: dict[Any, Kind] = {int: Kind.INT, bool: Kind.BOOL, str: Kind.STR, float: Kind.FLOAT}


def wire_name(name: str) -> str:
    """The message type of primitive ``name``: the protocol forbids a leading underscore."""
    return name.lstrip("_")


def _kind(tp: Any, where: str) -> Kind:
    if tp in _KINDS:
        return _KINDS[tp]
    if typing.get_origin(tp) is list and typing.get_args(tp) == (int,):
        return Kind.LIST_INT
    raise TypeError(f"{where}: no wire kind for {tp!r}")


def _strip_wouldblock(tp: Any) -> Any:
    """``bool | WouldBlock`` travels as ``bool``: the owner parks, it never replies WouldBlock."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        rest = [a for a in typing.get_args(tp) if a is not WouldBlock]
        if len(rest) == 1:
            return rest[0]
    return tp


@dataclass(frozen=True, slots=True)
class Codec:
    """How one primitive's arguments and result map to message bodies."""

    info: PrimitiveInfo
    type: str
    params: tuple[str, ...]
    result_fields: tuple[str, ...]  # () for None, ("r",) for one value
    rebuild: Callable[..., Any] | None  # tuple or NamedTuple class for several fields
    schema: MessageSchema

    def encode_args(self, args: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(self.params, args, strict=True))

    def decode_args(self, body: dict[str, Any]) -> list[Any]:
        return [body[p] for p in self.params]

    def encode_result(self, result: Any) -> dict[str, Any]:
        fields = self.result_fields
        if not fields:
            return {}
        if self.rebuild is None:
            return {"r": result}
        return dict(zip(fields, result, strict=True))

    def decode_result(self, body: dict[str, Any]) -> Any:
        fields = self.result_fields
        if not fields:
            return None
        if self.rebuild is None:
            return body.get("r")
        return self.rebuild(*[body[f] for f in fields])


def _optional(tp: Any) -> Any:
    """``X | None`` -> X (None when ``tp`` is no such union)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = typing.get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return rest[0]
    return None


def _result_shape(ret: Any, where: str) -> tuple[tuple[Field, ...], Callable[..., Any] | None]:
    ret = _strip_wouldblock(ret)
    if ret is type(None) or ret is None:
        return (), None
    if (inner := _optional(ret)) is not None:  # e.g. reuse_swap_page_check's bool | None
        return (Field("r", _kind(inner, where), optional=True),), None
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields"):
        hints = typing.get_type_hints(ret)
        fields = tuple(Field(n, _kind(hints[n], f"{where}.{n}")) for n in ret._fields)
        return fields, ret
    if typing.get_origin(ret) is tuple:
        parts = typing.get_args(ret)
        fields = tuple(Field(f"r{i}", _kind(t, f"{where}[{i}]")) for i, t in enumerate(parts))
        return fields, _as_tuple
    return (Field("r", _kind(ret, where)),), None


def _as_tuple(*values: Any) -> tuple[Any, ...]:
    return values


def make_codec(info: PrimitiveInfo) -> Codec:
    hints = typing.get_type_hints(info.fn)
    names = list(hints)
    names.remove("return")
    params = names[1:]  # the first parameter is the state owner
    fields = tuple(Field(p, _kind(hints[p], f"{info.name}({p})")) for p in params)
    reply, rebuild = _result_shape(hints["return"], f"{info.name} -> ")
    doc = (info.fn.__doc__ or "").strip().splitlines()[0] if info.fn.__doc__ else ""
    schema = MessageSchema(wire_name(info.name), fields, reply, f"[{info.owner}] {doc}")
    return Codec(info, schema.type, tuple(params), tuple(f.name for f in reply), rebuild, schema)


def _codecs() -> dict[str, Codec]:
    out: dict[str, Codec] = {}
    for info in sorted(PRIMITIVES.values(), key=lambda i: (i.owner, i.name)):
        codec = make_codec(info)
        if codec.type in out:
            raise ValueError(f"two primitives map to message type {codec.type!r}")
        out[codec.type] = codec
    return out


#: Codec per message type, and per primitive name (the RemoteCpu's lookup).
CODECS: dict[str, Codec] = _codecs()
CODEC_BY_NAME: dict[str, Codec] = {c.info.name: c for c in CODECS.values()}

#: Requests between services that are not kernel primitives.
SERVICE_MESSAGES: tuple[MessageSchema, ...] = (
    MessageSchema(
        "post",
        parse_fields("path:str", "args:list_int", "delay_s:float", "cpu:str"),
        (),
        "Run code path `path` on one of the receiver's CPUs after `delay_s`; "
        "acknowledged when queued (kswapd wake-up, delayed work, OOM kill).",
    ),
    MessageSchema(
        "submit_bio",
        parse_fields("rw:str", "pfn:int"),
        (),
        "blockdev: queue a swap bio (`read` or `write`); end_swap_bio_* runs on completion.",
    ),
    MessageSchema(
        "run_path",
        parse_fields("path:str"),
        (),
        "Run a code path (or an argument-less primitive) now; reply when it has finished.",
    ),
    MessageSchema(
        "activity",
        (),
        parse_fields("busy:int", "started:int"),
        "Code paths queued or running here, and how many ever started (quiescence).",
    ),
    MessageSchema(
        "snapshot",
        (),
        parse_fields("state:map"),
        "mm / memcg: the state the invariant checker reads, at one instant.",
    ),
    MessageSchema(
        "cgroup_id",
        parse_fields("name:str"),
        parse_fields("id:int"),
        "memcg: the css id of cgroup `name`.",
    ),
    MessageSchema(
        "start_workload",
        parse_fields("scenario:str", "duration_s:float", "seed:int"),
        (),
        "tasks: start the scenario's workload (its controller) for `duration_s`.",
    ),
    MessageSchema(
        "kill_all", (), parse_fields("killed:int"), "tasks: SIGKILL every task of the cgroup."
    ),
    MessageSchema(
        "force_empty",
        parse_fields("id:int"),
        (),
        "tasks: memory.force_empty's reclaim of memcg `id`, from a shell; reply when done.",
    ),
    MessageSchema(
        "quiesce_status",
        (),
        parse_fields("quiescent:bool", "tasks:int", "busy:int", "workload:bool"),
        "tasks: no workload, no task, and blockdev/workqueue/vmscan idle twice in a row.",
    ),
)

#: Message types the fault layer judges: the kernel's traffic, not control traffic.
KERNEL_TYPES: frozenset[str] = frozenset([*CODECS, "post", "submit_bio"])


def registry() -> Registry:
    """A registry with the generic, service and primitive messages."""
    reg = default_registry()
    for schema in SERVICE_MESSAGES:
        reg.register(schema)
    for codec in CODECS.values():
        reg.register(codec.schema)
    return reg


def render_primitives_markdown() -> str:
    """The generated section of PROTOCOL.md: service requests, then one row per primitive."""
    from kernsim.protocol import render_markdown

    return (
        "#### Service requests\n\n"
        + render_markdown(SERVICE_MESSAGES)
        + "\n#### Primitives (owner in brackets)\n\n"
        + render_markdown(c.schema for c in CODECS.values())
    )
