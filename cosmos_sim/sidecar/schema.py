"""How a sidecar method declares what it accepts, and the checks made before it runs.

A method is a row of the server's method table: a handler plus its params (types,
defaults, choices) and its arrays (dtypes and a shape pattern whose named dims must agree
across arrays, e.g. rgb ("H", "W", 3) and depth_m ("H", "W")). The server checks a request
against the row before the handler sees it, so handlers only do their job, and `describe`
serves the same rows to clients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cosmos_sim.sidecar.protocol import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from cosmos_sim.sidecar.server import Server, Session

REQUIRED: Any = object()
"""Default of a param that the client must send."""

_TYPE_NAMES = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    list: "list",
    dict: "map",
    type(None): "null",
}


@dataclass(frozen=True)
class Param:
    """One entry of a method's params map."""

    type: type | tuple[type, ...]
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] | None = None

    @property
    def type_name(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)

    def check(self, name: str, value: Any) -> Any:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        ok = any(_is_type(value, t) for t in types)
        if not ok:
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"params.{name} is a {type(value).__name__} ({_short(value)})",
                f"params.{name}",
                f"send a {self.type_name}" + (f": {self.doc}" if self.doc else ""),
            )
        if float in types and isinstance(value, int):
            value = float(value)
        if self.choices is not None:
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if v not in self.choices]
            if bad:
                raise ProtocolError(
                    ErrorCode.BAD_PARAMS,
                    f"params.{name}: {bad[0]!r} is not one of the choices",
                    f"params.{name}",
                    f"use one of {list(self.choices)}",
                )
        return value


def _is_type(value: Any, t: type) -> bool:
    if t is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is type(None):
        return value is None
    return isinstance(value, t)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class ArraySpec:
    """One array a method accepts: allowed dtypes and a shape pattern.

    Shape entries are ints (exact), strings (a named dim that must agree across the
    method's arrays) or None (any size); a shape of None allows any shape.
    """

    dtypes: tuple[str, ...]
    shape: tuple[int | str | None, ...] | None
    required: bool = False
    doc: str = ""

    def describe(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {
            "dtypes": list(self.dtypes),
            "shape": shape,
            "required": self.required,
            "doc": self.doc,
        }


@dataclass
class Call:
    """What a handler gets: checked params (defaults filled), arrays, and its client's state."""

    params: dict[str, Any]
    arrays: dict[str, np.ndarray]
    session: Session | None
    server: Server
    identity: bytes


Result = tuple[dict[str, Any], dict[str, np.ndarray]]
Handler = Callable[[Call], Result]


@dataclass(frozen=True)
class Method:
    """A row of the method table."""

    name: str
    handler: Handler
    doc: str
    params: Mapping[str, Param] = field(default_factory=dict)
    arrays: Mapping[str, ArraySpec] | None = field(default_factory=dict)
    """None: any arrays (the handler checks them)."""
    idempotent: bool = False
    """Safe to resend after a timeout (the Python client retries only these)."""
    inline: bool = False
    """Runs on the I/O thread: only for methods that take microseconds."""
    stateful: bool = False
    """Touches the client's session resources: serialised per client."""

    def check(self, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        checked = _check_params(self.params, params)
        if self.arrays is not None:
            check_arrays(self.arrays, arrays)
        return checked

    def describe(self) -> dict[str, Any]:
        return {
            "doc": self.doc,
            "idempotent": self.idempotent,
            "params": {
                name: {
                    "type": p.type_name,
                    "required": p.default is REQUIRED,
                    "default": None if p.default is REQUIRED else p.default,
                    "choices": None if p.choices is None else list(p.choices),
                    "doc": p.doc,
                }
                for name, p in self.params.items()
            },
            "arrays": None
            if self.arrays is None
            else {name: spec.describe() for name, spec in self.arrays.items()},
        }


def _check_params(spec: Mapping[str, Param], params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ProtocolError(
            ErrorCode.BAD_PARAMS,
            f"unknown param {unknown[0]!r}",
            f"params.{unknown[0]}",
            f"this method takes {sorted(spec) or 'no params'}",
        )
    checked = {}
    for name, param in spec.items():
        if name in params:
            checked[name] = param.check(name, params[name])
        elif param.default is REQUIRED:
            raise ProtocolError(
                ErrorCode.BAD_PARAMS,
                f"params.{name} is missing",
                f"params.{name}",
                f"send {name} ({param.type_name})" + (f": {param.doc}" if param.doc else ""),
            )
        else:
            checked[name] = param.default
    return checked


def check_arrays(spec: Mapping[str, ArraySpec], arrays: Mapping[str, np.ndarray]) -> None:
    """Names, dtypes and shapes against `spec`; named dims must agree across arrays."""
    unknown = sorted(set(arrays) - set(spec))
    if unknown:
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"unknown array {unknown[0]!r}",
            f"arrays.{unknown[0]}",
            f"this method takes arrays {sorted(spec) or 'none'}",
        )
    for name, array_spec in spec.items():
        if array_spec.required and name not in arrays:
            raise ProtocolError(
                ErrorCode.BAD_ARRAY,
                f"array {name!r} is missing",
                f"arrays.{name}",
                f"send {name} as {_pattern(array_spec)}",
            )
    dims: dict[str, tuple[int, str]] = {}
    for name, arr in arrays.items():
        array_spec = spec[name]
        if arr.dtype.name not in array_spec.dtypes:
            raise ProtocolError(
                ErrorCode.DTYPE_NOT_ALLOWED,
                f"array {name!r} is {arr.dtype.name}",
                f"arrays.{name}.dtype",
                f"send {name} as {' or '.join(array_spec.dtypes)}",
            )
        pattern = array_spec.shape
        if pattern is None:
            continue
        ok = len(pattern) == arr.ndim
        for want, got in zip(pattern, arr.shape, strict=False):
            if not ok:
                break
            if isinstance(want, int):
                ok = want == got
            elif isinstance(want, str):
                if want in dims and dims[want][0] != got:
                    size, first = dims[want]
                    raise ProtocolError(
                        ErrorCode.SHAPE_MISMATCH,
                        f"array {name!r} has {want}={got} but {first!r} has {want}={size}",
                        f"arrays.{name}.shape",
                        f"send arrays of one frame size: {name} as {_pattern(array_spec)} "
                        f"with {want}={size}",
                    )
                dims.setdefault(want, (got, name))
        if not ok:
            raise ProtocolError(
                ErrorCode.SHAPE_MISMATCH,
                f"array {name!r} has shape {list(arr.shape)}",
                f"arrays.{name}.shape",
                f"send {name} as {_pattern(array_spec)}",
            )


def _pattern(spec: ArraySpec) -> str:
    if spec.shape is None:
        return " or ".join(spec.dtypes)
    dims = "×".join("*" if d is None else str(d) for d in spec.shape) or "a scalar"
    return f"{' or '.join(spec.dtypes)} {dims}"
