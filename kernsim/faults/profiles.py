"""Fault profiles: a named set of rules plus the block device's latency.

Profiles live as TOML files in `deploy/faults/<name>.toml` so the cluster, the
simulation and a person reading the deployment see the same numbers. Parsing
is strict: an unknown key or a wrong type is an error naming its path
(`rules[2].latency.kind: unknown distribution 'gauss' ...`), because a typo
that silently disables a fault makes a race look fixed.
"""

from __future__ import annotations

import os
import random
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kernsim.faults.latency import PARAMS, ZERO, Latency
from kernsim.faults.rules import Rule

ENV_FAULTS_DIR = "KERNSIM_FAULTS_DIR"
DIRECTIONS = ("read", "write")
#: The largest profile file read (shipped profiles are under 2 KiB).
MAX_PROFILE_BYTES = 64 << 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class Profile:
    """Defaults: no rules (every message passes at once), zero-latency bios
    completed in submission order (`device_reorder=False`)."""

    name: str
    rules: tuple[Rule, ...] = ()
    bio_read: Latency = ZERO
    bio_write: Latency = ZERO
    device_reorder: bool = False
    description: str = ""
    #: The factor by which a scenario's workload timings (its parameters in
    #: seconds: think time, kill moment, round period) are stretched under this
    #: profile in the simulation.  The workloads are tuned for kernel steps of
    #: about 1 us; where every message takes 0.1-1 ms, or the disk is 100 times
    #: slower, an unstretched ``race`` is killed before its first page fault.
    workload_time_scale: float = 1.0
    #: Scenarios this profile does not apply to, with the reason:
    #: ((scenario, reason), ...); `kernsim sim` warns when asked for one.
    not_for: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: must be a non-empty string, got {self.name!r}")
        # Accept any iterable of rules but store a tuple, so profiles stay
        # hashable and compare equal however they were built.
        object.__setattr__(self, "rules", tuple(self.rules))

    def not_for_reason(self, scenario: str) -> str | None:
        """Why this profile does not apply to ``scenario`` (None: it does)."""
        return dict(self.not_for).get(scenario)

    def scale_workload(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A scenario's parameters with every timing (a name ending in ``_s``) stretched."""
        k = self.workload_time_scale
        return {n: v * k if n.endswith("_s") and k != 1.0 else v for n, v in params.items()}

    def bio_latency_s(self, direction: str, rng: random.Random) -> float:
        """Completion latency of one bio; `direction` is "read" or "write"."""
        if direction == "read":
            return self.bio_read.sample(rng)
        if direction == "write":
            return self.bio_write.sample(rng)
        raise ValueError(f"direction: must be 'read' or 'write', got {direction!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "device_reorder": self.device_reorder,
            "bio_read": self.bio_read.to_dict(),
            "bio_write": self.bio_write.to_dict(),
            "rules": [_rule_to_dict(r) for r in self.rules],
            "workload_time_scale": self.workload_time_scale,
            "not_for": dict(self.not_for),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Strict inverse of `to_dict`; only `name` is required."""
        _check_keys(data, "", required=("name",), optional=_PROFILE_OPTIONAL)
        rules = _get(data, "rules", list, "", default=[])
        return cls(
            name=_get(data, "name", str, ""),
            description=_get(data, "description", str, "", default=""),
            device_reorder=_get(data, "device_reorder", bool, "", default=False),
            bio_read=_latency_at(data, "bio_read", "", default=ZERO),
            bio_write=_latency_at(data, "bio_write", "", default=ZERO),
            rules=tuple(_rule_from_dict(r, f"rules[{i}]") for i, r in enumerate(rules)),
            workload_time_scale=_time_scale(data),
            not_for=_not_for(data),
        )


def _not_for(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    table = _as_table(data.get("not_for", {}), "not_for")
    return tuple((str(k), _get(table, k, str, "not_for")) for k in table)


#: The most a profile may stretch a workload's timings.
MAX_TIME_SCALE = 10_000.0


def _time_scale(data: Mapping[str, Any]) -> float:
    value: float = _get(data, "workload_time_scale", float, "", default=1.0)
    if not 1.0 <= value <= MAX_TIME_SCALE:  # NaN fails this too
        raise ValueError(f"workload_time_scale: must be within [1, {MAX_TIME_SCALE:g}]")
    return value


_PROFILE_OPTIONAL = (
    "description",
    "device_reorder",
    "bio_read",
    "bio_write",
    "rules",
    "workload_time_scale",
    "not_for",
)
_RULE_KEYS = ("src", "dest", "msg_type", "latency", "reorder", "probability")
_MISSING: Any = object()
_TYPE_NAMES = {str: "string", bool: "bool", float: "number", list: "array", dict: "table"}


def _rule_to_dict(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"src": rule.src, "dest": rule.dest, "msg_type": rule.msg_type}
    if rule.latency is not None:
        out["latency"] = rule.latency.to_dict()
    out["reorder"] = rule.reorder
    out["probability"] = rule.probability
    return out


def _rule_from_dict(data: object, path: str) -> Rule:
    table = _as_table(data, path)
    _check_keys(table, path, required=(), optional=_RULE_KEYS)
    kwargs: dict[str, Any] = {}
    for key in ("src", "dest", "msg_type"):
        if key in table:
            kwargs[key] = _get(table, key, str, path)
    if "reorder" in table:
        kwargs["reorder"] = _get(table, "reorder", bool, path)
    if "probability" in table:
        kwargs["probability"] = _get(table, "probability", float, path)
    kwargs["latency"] = _latency_at(table, "latency", path, default=None)
    return _build(Rule, kwargs, path)


def _latency_at(data: Mapping[str, Any], key: str, path: str, *, default: Any) -> Any:
    if key not in data:
        return default
    return _latency_from_dict(data[key], _join(path, key))


def _latency_from_dict(data: object, path: str) -> Latency:
    table = _as_table(data, path)
    kind = _get(table, "kind", str, path)
    names = PARAMS.get(kind)
    if names is None:
        known = ", ".join(sorted(PARAMS))
        raise ValueError(f"{_join(path, 'kind')}: unknown distribution {kind!r} (known: {known})")
    _check_keys(table, path, required=("kind", *names), optional=("jitter_s",))
    params = tuple(_get(table, n, float, path) for n in names)
    jitter_s = _get(table, "jitter_s", float, path, default=0.0)
    return _build(Latency, {"kind": kind, "params": params, "jitter_s": jitter_s}, path)


_T = TypeVar("_T")


def _build(cls: Callable[..., _T], kwargs: dict[str, Any], path: str) -> _T:
    # The constructors validate values and name the field ("lo_s: must be
    # ..."); prefixing the path makes that "rules[1].latency.lo_s: ...".
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{_join(path, str(exc))}") from exc


def _check_keys(
    data: Mapping[str, Any], path: str, *, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    allowed = (*required, *optional)
    for key in data:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ValueError(f"{_join(path, str(key))}: unknown key (known: {known})")
    for key in required:
        if key not in data:
            raise ValueError(f"{_join(path, key)}: missing (required: {', '.join(required)})")


def _get(data: Mapping[str, Any], key: str, typ: type, path: str, default: Any = _MISSING) -> Any:
    if key not in data:
        if default is _MISSING:
            raise ValueError(f"{_join(path, key)}: missing")
        return default
    value = data[key]
    # bool is an int subclass; true is not a number of seconds.
    ok = isinstance(value, typ) and not (typ is not bool and isinstance(value, bool))
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        got = _TYPE_NAMES.get(type(value), type(value).__name__)
        raise ValueError(f"{_join(path, key)}: expected {_TYPE_NAMES[typ]}, got {got}")
    return value


def _as_table(data: object, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        got = _TYPE_NAMES.get(type(data), type(data).__name__)
        raise ValueError(f"{path}: expected table, got {got}")
    return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- finding and loading profiles ---------------------------------------------


def faults_dir() -> Path:
    """$KERNSIM_FAULTS_DIR, else the `deploy/faults` of the enclosing repo."""
    env = os.environ.get(ENV_FAULTS_DIR)
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "deploy" / "faults"
        if candidate.is_dir():
            return candidate
    raise ValueError(f"no deploy/faults folder above {__file__}; set {ENV_FAULTS_DIR}")


def list_profiles() -> list[str]:
    """Names of the profiles in `faults_dir()`, sorted."""
    return sorted(p.stem for p in faults_dir().glob("*.toml"))


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """Load a profile by bare name (`"lan"`) or by path to a .toml file.

    For the local user's command line (`--faults FILE`): the file is theirs.
    A server takes names only (`load_shipped`). The file's `name` defaults to
    its stem. Errors name the file and the path inside it."""
    text = os.fspath(name_or_path)
    if os.sep in text or "/" in text or text.endswith(".toml"):
        return _load_file(Path(text))
    return load_shipped(text)


def load_shipped(name: str) -> Profile:
    """A profile of the shipped set, by name only: never a path, never another file.

    What the admin API uses: the answer for any other string is the same
    error, so it tells nothing about the server's files."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name not in list_profiles():
        known = ", ".join(list_profiles())
        raise ValueError(f"unknown fault profile {name!r} (known: {known})")
    return _load_file(faults_dir() / f"{name}.toml")


def _load_file(path: Path) -> Profile:
    # Only a regular file of bounded size: a FIFO would block (O_NONBLOCK keeps even
    # the open from waiting for a writer), /dev/zero never ends.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: no such file") from exc
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        raw = f.read(MAX_PROFILE_BYTES + 1)
    if len(raw) > MAX_PROFILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_PROFILE_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return Profile.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
