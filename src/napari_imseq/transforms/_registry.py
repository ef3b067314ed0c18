"""The registry of per-frame functions that pipelines refer to by name."""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np

REGISTRY: dict[str, Callable[..., np.ndarray]] = {}
#: how each transform moves a display range (see :meth:`Pipeline.display_range`)
DISPLAY: dict[str, str] = {}
#: keyword arguments a pipeline supplies itself, when a function accepts them
CONTEXT = ("index", "timestamp")
_DISPLAY_RULES = ("keep", "point", "stretch", "equalize", "rgb8")


def register(func: Callable[..., np.ndarray] | None = None, *, display: str = "keep"):
    """Make ``func`` available to pipelines under its own name.

    ``display`` says what the function does to a display range (contrast limits): ``"keep"``
    (filters, geometry, annotation), ``"point"`` (an elementwise monotonic map: the limits go
    through the function itself), ``"stretch"`` (the output fills the dtype's range, 0..1 for
    floats), ``"equalize"`` (fills an integer dtype's range; floats keep their range) or
    ``"rgb8"`` (uint8 colour, 0..255).
    """
    if display not in _DISPLAY_RULES:
        raise ValueError(f"display must be one of {_DISPLAY_RULES}, not {display!r}")
    if func is None:
        return lambda f: register(f, display=display)
    REGISTRY[func.__name__] = func
    DISPLAY[func.__name__] = display
    return func


def get(name: str) -> Callable[..., np.ndarray]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no transform named {name!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None


def parameters(name: str) -> dict[str, inspect.Parameter]:
    """The tunable keyword parameters of a transform (context parameters excluded)."""
    sig = inspect.signature(get(name))
    return {
        k: p for k, p in sig.parameters.items() if p.kind == p.KEYWORD_ONLY and k not in CONTEXT
    }


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """Full range of an integer dtype; (0, 1) for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if dtype.kind == "b":
        return 0.0, 1.0
    return 0.0, 1.0


def restore(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float results back to an integer dtype; floats pass through."""
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        lo, hi = dtype_range(dtype)
        if dtype.itemsize >= 4:  # float32 cannot hold the limits of 32/64-bit integers exactly
            values = np.asarray(values, dtype=np.float64)
        if dtype.itemsize == 8:  # nor float64 those of 64-bit ones: stay below 2**63 (2**64)
            hi = float(np.nextafter(hi, 0.0))
        return np.clip(np.rint(values), lo, hi).astype(dtype)
    return values.astype(dtype, copy=False)


@dataclass(frozen=True)
class Spec:
    """How a parameter is edited: read by user interfaces (the napari widget), never by the
    functions themselves. Attach it with ``typing.Annotated``.

    ``unit`` is ``"intensity"`` for a pixel value (bounded by the frame dtype's range, unbounded
    for floats), ``"offset"`` for a signed difference of pixel values (plus or minus the dtype's
    span) or ``""`` for a plain number bounded by ``min``/``max``. ``choices`` names a list of
    allowed strings (``"colormap"``, ``"dtype"``).
    """

    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: str = ""


Intensity = Annotated[float, Spec("intensity")]
Offset = Annotated[float, Spec("offset")]
NonNegative = Annotated[float, Spec(min=0.0)]
Fraction = Annotated[float, Spec(min=0.0, max=1.0)]
Percent = Annotated[float, Spec(min=0.0, max=100.0)]
Count = Annotated[int, Spec(min=1)]
Pixels = Annotated[int, Spec(min=0)]
DTypeName = Annotated[str, Spec(choices="dtype")]
ColormapName = Annotated[str, Spec(choices="colormap")]
#: dtypes a conversion can produce (what napari displays and our writers store)
DTYPES = ("uint8", "uint16", "float32", "float64")


@dataclass(frozen=True)
class ParamInfo:
    """One tunable parameter of a transform, described for a user interface.

    ``kind`` is ``int``, ``float``, ``str``, ``bool`` or ``"array"``; ``length`` is 0 for a
    scalar and n for an n-tuple; ``optional`` means ``None`` is allowed (an automatic value);
    ``choices`` lists allowed strings (Literal annotations, colormaps, dtypes).
    """

    name: str
    kind: Any
    default: Any
    length: int = 0
    optional: bool = False
    spec: Spec = field(default_factory=Spec)
    choices: tuple[str, ...] = ()

    def limits(self, dtype: np.dtype | str | None = None) -> tuple[float, float]:
        """(min, max) a value may take on frames of ``dtype`` (infinite when unbounded)."""
        lo = -math.inf if self.spec.min is None else float(self.spec.min)
        hi = math.inf if self.spec.max is None else float(self.spec.max)
        if dtype is not None and np.dtype(dtype).kind in "uib":
            dlo, dhi = dtype_range(dtype)
            if self.spec.unit == "intensity":
                lo, hi = max(lo, dlo), min(hi, dhi)
            elif self.spec.unit == "offset":
                lo, hi = max(lo, dlo - dhi), min(hi, dhi - dlo)
        return lo, hi


def describe(name: str) -> list[ParamInfo]:
    """The tunable parameters of transform ``name`` with their types, defaults and bounds, from
    its signature (so every parameter of every registered step can be offered in a GUI).

    Examples
    --------
    >>> [(p.name, p.length, p.limits("uint16")) for p in describe("rescale")][0]
    ('in_range', 2, (0.0, 65535.0))
    """
    func = get(name)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # an annotation that cannot be resolved: plain values only
        hints = {}
    out = []
    for key, p in parameters(name).items():
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append(
            _info(key, hints.get(key, type(default) if default is not None else str), default)
        )
    return out


def _info(name: str, hint: Any, default: Any) -> ParamInfo:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if any(typing.get_origin(a) is None and a in (np.ndarray, list) for a in args):
            return ParamInfo(name, "array", default, optional=optional)
        hint = args[0]
    spec, hint = _unannotate(hint)
    length = 0
    if typing.get_origin(hint) is tuple:
        elems = typing.get_args(hint)
        length = len(elems)
        spec, hint = _unannotate(elems[0])
    choices: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        choices, hint = tuple(str(c) for c in typing.get_args(hint)), str
    elif spec.choices == "dtype":
        choices = DTYPES
    elif spec.choices == "colormap":
        from ._colormaps import colormap_names

        choices = tuple(colormap_names())
    kind = (
        hint
        if hint in (int, float, str, bool)
        else ("array" if hint in (np.ndarray, list) else str)
    )
    return ParamInfo(name, kind, default, length, optional, spec, choices)


def _unannotate(hint: Any) -> tuple[Spec, Any]:
    if typing.get_origin(hint) is Annotated:
        base, *meta = typing.get_args(hint)
        return next((m for m in meta if isinstance(m, Spec)), Spec()), base
    return Spec(), hint


def spatial(frame: np.ndarray) -> tuple[int, int]:
    return frame.shape[0], frame.shape[1]


def is_colour(frame: np.ndarray) -> bool:
    return frame.ndim == 3 and frame.shape[2] in (3, 4)


def has_alpha(frame: np.ndarray) -> bool:
    return frame.ndim == 3 and frame.shape[2] == 4


def keep_alpha(frame: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Put ``frame``'s alpha channel back into ``out`` (colour operations never change
    transparency); a dtype change scales alpha between the two dtypes' full ranges."""
    if not has_alpha(frame) or out.shape != frame.shape:
        return out
    alpha = frame[..., 3]
    if out.dtype != frame.dtype:
        (slo, shi), (olo, ohi) = dtype_range(frame.dtype), dtype_range(out.dtype)
        alpha = restore(
            olo + (alpha.astype(np.float64) - slo) / (shi - slo) * (ohi - olo), out.dtype
        )
    if not out.flags.writeable or out is frame:
        out = out.copy()
    out[..., 3] = alpha
    return out


def on_luminance(frame: np.ndarray, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a gray operation to the luminance (Y of YCrCb) of a colour frame, keeping hue,
    saturation and alpha; the dtype is kept."""
    import cv2

    rgb = frame[..., :3]
    work = rgb if rgb.dtype in (np.uint8, np.uint16, np.float32) else rgb.astype(np.float32)
    ycc = cv2.cvtColor(np.ascontiguousarray(work), cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = op(np.ascontiguousarray(ycc[..., 0]))
    out = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    if out.dtype != frame.dtype:
        out = restore(out, frame.dtype)
    if has_alpha(frame):
        out = np.concatenate([out, frame[..., 3:]], -1)
    return out


def point_op(frame: np.ndarray, func, out_dtype: np.dtype | None = None) -> np.ndarray:
    """Apply an elementwise ``func(values: float64 array) -> float array`` to ``frame``.

    uint8 and uint16 frames go through a look-up table of every possible value (computed once
    per call, exact by construction, and much faster than float math on every pixel);
    other dtypes are computed directly. Results are rounded and clipped to ``out_dtype``
    (default: the frame's dtype). The alpha channel of RGBA frames is kept.
    """
    return keep_alpha(frame, _point_op(frame, func, out_dtype))


def _point_op(frame: np.ndarray, func, out_dtype: np.dtype | None) -> np.ndarray:
    out_dtype = np.dtype(out_dtype or frame.dtype)
    if frame.dtype == np.uint8 or frame.dtype == np.uint16:
        n = 256 if frame.dtype == np.uint8 else 65536
        lut = restore(np.asarray(func(np.arange(n, dtype=np.float64))), out_dtype)
        if frame.dtype == np.uint8 and frame.shape[-1:] != (0,):
            import cv2

            if out_dtype == np.uint8 and (
                frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] <= 4)
            ):
                return cv2.LUT(np.ascontiguousarray(frame), lut)
        return np.take(lut, frame)
    return restore(np.asarray(func(frame.astype(np.float64))), out_dtype)
