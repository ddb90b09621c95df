"""A strict stand-in for CuPy, built on numpy, so CI without a GPU runs the CuPy backend's code.

It is not a GPU and proves nothing about kernels, speed or memory use. It holds each "device"
array in a wrapper that is *not* a ``numpy.ndarray``, so the mistakes that only show on a real
GPU fail here too. What it mimics, checked against CuPy's own source (cupy/cupy at v13.0.0,
v13.6.0 and a main-branch snapshot of August 2026: ``cupy/_core/core.pyx``,
``_routines_indexing.pyx``, ``_routines_manipulation.pyx``, ``_kernel.pyx``, ``_scalar.pyx``,
``cupy/_sorting/sort.py``):

- **No implicit conversion to the host.** ``numpy.asarray(device)`` raises ``TypeError``
  ("Implicit conversion to a NumPy array is not allowed", ``ndarray.__array__``); so does
  indexing a host array with a device array. ``cupy.asnumpy`` / ``.get()`` are the ways back.
- **No host arrays inside device operations.** Arithmetic, ``where``, ``concatenate`` and every
  other function given a ``numpy.ndarray`` raise ``TypeError`` ("Unsupported type"), a 0-d one
  included (CuPy's ``CScalar`` takes Python scalars and numpy scalar *types* such as
  ``numpy.float32(1)``, which are accepted here too, but not 0-d arrays). The exceptions are
  CuPy's: comparisons take a 0-d host array (``__richcmp__`` calls ``.item()`` on it);
  ``asarray``/``array`` copy host data over; ``take``/``take_along_axis`` and indexing take host
  integer or boolean index arrays (``_prepare_slice_list`` copies them to the device).
- **Assignment.** ``device[slices] = host_array`` with only basic indices (slices, ints) raises
  ``ValueError`` ("non-scalar numpy.ndarray cannot be used for fill", CuPy falls back to
  ``fill``); a 0-d host array or a scalar fills. With an integer/boolean array in the index the
  host value is copied over, as CuPy's ``_scatter_op_single`` does.
- **Out-of-range integer-array indices wrap around** (``take``, ``take_along_axis``, fancy
  getitem/setitem, ``cupyx.scatter_add``), as CuPy's take kernel does (``indices % range``),
  instead of raising ``IndexError``: code that relies on an ``IndexError`` gives wrong answers
  here, as on a GPU. Scalar integer indices out of range still raise, and so does a non-empty
  take from an empty axis ("cannot do a non-empty take from an empty axes."), both as in CuPy.
- **Sorting.** ``argsort``/``sort`` take ``kind`` None or ``"stable"`` only (``ValueError``
  otherwise: the module functions in every CuPy from 11.6 on, the methods from 14); the sort
  is stable. ``argpartition`` takes a Python ``int`` kth (or a sequence): CuPy iterates any other kth, so a
  numpy integer kth raises ``TypeError`` there and here.
- **Reductions return 0-d device arrays**, never numpy scalars; ``int()``, ``float()``,
  ``bool()``, ``.item()`` and ``.tolist()`` read them (a synchronisation on a GPU). There is no
  ``__index__`` (CuPy has none), so a device scalar is not a Python index.
- **cupyx.scatter_add** adds unbuffered (``numpy.add.at``, float32 accumulation as the atomics
  do, though in a fixed order); a host value is copied over, as CuPy does.
- **Free memory** is whatever a test sets with :func:`set_free_memory` (default 8 GiB of 16), so
  a test can make ``CupyBackend.work_bytes()`` tiny and drive every chunk loop.

Stricter than CuPy, on purpose: numpy functions and ufuncs called *on* device arrays
(``numpy.concatenate([d1, d2])``, ``numpy.exp(d)``) raise ``TypeError`` here, whereas CuPy's
``__array_function__``/``__array_ufunc__`` hand them to the matching CuPy function and return a
device array. gpupq's rule is that device data goes through ``be.xp`` and only
``be.to_numpy`` crosses to the host, so a ``be.host`` call on device data is a mix-up even where
CuPy would quietly dispatch it. (Operators with numpy scalars, ``numpy.float32(2) * d``, still
work: ``__array_ufunc__ = None`` makes numpy hand them to this class.)

**What a GPU pays for is counted** inside :func:`counting` (a :class:`Tally`): kernel launches
(every operation that writes a new or existing buffer; views, ``empty`` and host-side work are
free; gpupq's custom kernels are counted by name, ``tests.helpers.install_fake_cupy``), host
synchronisations (``get``/``asnumpy``/``item``/``tolist``/``int()``/``float()``/``bool()`` on
device data, ``Device.synchronize``, and what CuPy sizes by the data: boolean-mask indexing,
``nonzero``, ``flatnonzero``, ``argwhere``, ``unique``, ``compress``, ``extract``), the host
waiting on a copy's event (``copy_waits``), bytes copied host to device (``asarray`` of host
data, ``set``, host index arrays, host values assigned) and back, and the largest buffer made.
Budget tests hold each phase to them (tests/test_gpu_budgets.py), so a change that adds a sync in
a loop fails CI. Streams and events exist (``cuda.Stream``, ``Event``, ``get_current_stream``,
``cupyx.empty_pinned``) so the double-buffered copies run; work runs in program order here.

Not mimicked: asynchronous execution, memory pools (``free_bytes`` is 0);
the undefined result of assigning to duplicate indices (numpy's last-wins here); argpartition's
full sort on short rows; float summation order (numpy's here, atomics and tree reductions on a
GPU); every name numpy has is offered, where CuPy lacks a few; dtype promotion is numpy's.
"""

from __future__ import annotations

import operator
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__version__ = "0.0-fake"

_DEFAULT_FREE = 8 << 30
_TOTAL = 16 << 30
_free = _DEFAULT_FREE
_PY_SCALARS = (bool, int, float, complex)


@dataclass
class Tally:
    """What the code run inside :func:`counting` would cost a GPU (see the module docstring)."""

    launches: int = 0
    syncs: int = 0
    copy_waits: int = 0  # the host waiting for a copy's event (not for the compute stream)
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    largest: int = 0  # bytes of the largest buffer made
    kernels: Counter = field(default_factory=Counter)  # gpupq's custom kernels, by name

    def launch(self, result: Any = None, name: str | None = None) -> None:
        self.launches += 1
        if name is not None:
            self.kernels[name] += 1
        if isinstance(result, np.ndarray):
            self.largest = max(self.largest, result.nbytes)


_tally: Tally | None = None


@contextmanager
def counting() -> Iterator[Tally]:
    """Count launches, syncs and transfers of the code run inside (nested: the inner one counts)."""
    global _tally
    outer, _tally = _tally, Tally()
    try:
        yield _tally
    finally:
        _tally = outer


def _new(result: Any, inputs: Any) -> Any:
    """Count one launch when result (numpy, before wrapping) is a new buffer, not a view of one
    of ``inputs``; returns result."""
    if _tally is not None and isinstance(result, np.ndarray):
        arrays = [a for a in _flat(inputs) if isinstance(a, np.ndarray)]
        if not any(np.may_share_memory(result, a) for a in arrays):
            _tally.launch(result)
    return result


def _flat(x: Any) -> Iterator[Any]:
    if isinstance(x, ndarray):
        yield x._a
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _flat(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _flat(v)
    elif isinstance(x, np.ndarray):
        yield x


def _sync(nbytes: int = 0) -> None:
    if _tally is not None:
        _tally.syncs += 1
        _tally.d2h_bytes += nbytes


def _h2d(nbytes: int) -> None:
    if _tally is not None:
        _tally.h2d_bytes += nbytes
        _tally.largest = max(_tally.largest, nbytes)


def count_kernel(name: str) -> None:
    """One launch of a custom kernel (gpupq.gpukernels), counted by name."""
    if _tally is not None:
        _tally.launch(name=name)


def set_free_memory(nbytes: int | None) -> None:
    """Free device memory that ``cuda.runtime.memGetInfo`` reports; None restores 8 GiB."""
    global _free
    _free = _DEFAULT_FREE if nbytes is None else int(nbytes)


# ---------------------------------------------------------------------------- the array
class ndarray:  # CuPy's name
    """A device array: a numpy array held inside, reachable only through ``get()``."""

    __slots__ = ("_a",)
    # numpy ufuncs refuse this type; numpy's binary operators return NotImplemented, so
    # ``host_array + device`` comes to __radd__ below (and is refused there).
    __array_ufunc__ = None
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float) -> None:
        self._a = np.empty(shape, dtype=dtype)

    # -- no way to the host but get()
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly. (fake cupy)"
        )

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(
            f"fake cupy: numpy.{func.__name__} was called on a device array; use the array "
            f"module's own function (be.xp.{func.__name__}) or bring it to the host with be.to_numpy"
        )

    def get(self) -> np.ndarray:
        _sync(self._a.nbytes)
        return self._a.copy()

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        # CuPy publishes its device pointer here (numba launches kernels on it); the stand-in's
        # "device" memory is host memory, which numba's CUDA simulator reads
        # (gpupq.gpukernels._host_view).
        a = self._a
        return {
            "shape": a.shape,
            "typestr": a.dtype.str,
            "data": (a.__array_interface__["data"][0], not a.flags.writeable),
            "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3,
        }

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        if not isinstance(arr, np.ndarray) or arr.shape != self._a.shape:
            raise ValueError("fake cupy: set() takes a host array of the same shape")
        _h2d(arr.nbytes)
        self._a[...] = arr

    # -- attributes
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value: Any) -> None:
        self._a.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def nbytes(self) -> int:
        return self._a.nbytes

    @property
    def itemsize(self) -> int:
        return self._a.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        return self._a.strides

    @property
    def T(self) -> ndarray:
        return _wrap(self._a.T)

    # -- scalars and containers
    def item(self, *args: Any) -> Any:
        _sync(self._a.itemsize)
        return self._a.item(*args)

    def tolist(self) -> Any:
        _sync(self._a.nbytes)
        return self._a.tolist()

    def __len__(self) -> int:
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self._a.shape[0]))

    def __bool__(self) -> bool:
        _sync(self._a.itemsize)
        return bool(self._a)

    def __int__(self) -> int:
        _sync(self._a.itemsize)
        return int(self._a)

    def __float__(self) -> float:
        _sync(self._a.itemsize)
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __repr__(self) -> str:
        return f"fake_cupy.{self._a!r}"

    def __str__(self) -> str:
        return str(self._a)

    def __format__(self, spec: str) -> str:
        return format(self._a, spec)

    # -- indexing
    def __getitem__(self, key: Any) -> ndarray:
        index, _ = _index(key, self._a.shape)
        if any(isinstance(s, np.ndarray) and s.dtype.kind == "b" and s.ndim > 0 for s in index):
            _sync()  # CuPy reads the mask's count back to size the result
        return _wrap(_new(self._a[index], self))

    def __setitem__(self, key: Any, value: Any) -> None:
        index, advanced = _index(key, self._a.shape)
        if isinstance(value, ndarray):
            value = value._a
        elif isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
            if not advanced and np.ndim(value) != 0:
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            _h2d(np.asarray(value).nbytes)  # host values are copied over
        elif not _is_scalar(value):
            raise TypeError(f"Unsupported type {type(value)}")
        if _tally is not None:
            _tally.launch()
        self._a[index] = value

    def take(self, indices: Any, axis: int | None = None) -> ndarray:
        return take(self, indices, axis)

    # -- sorting, with CuPy's restrictions
    def argsort(self, axis: int = -1, kind: Any = None) -> ndarray:
        return argsort(self, axis=axis, kind=kind)

    def sort(self, axis: int = -1, kind: Any = None) -> None:
        _check_kind(kind)
        self._a.sort(axis=axis, kind="stable")

    def argpartition(self, kth: Any, axis: int = -1) -> ndarray:
        return argpartition(self, kth, axis)


def _method(name: str) -> Callable[..., Any]:
    def call(self: ndarray, *args: Any, **kwargs: Any) -> Any:
        _refuse_host(f"ndarray.{name}", (args, kwargs))
        result = getattr(self._a, name)(*_unwrap(args), **_unwrap(kwargs))
        if name == "nonzero":
            _sync()  # sized by the data: a count read back first
        if name == "fill" and _tally is not None:
            _tally.launch()
        return _wrap(_new(result, (self, args, kwargs)))

    call.__name__ = name
    return call


for _name in (
    "reshape", "astype", "copy", "ravel", "flatten", "transpose", "swapaxes", "squeeze", "view",
    "sum", "prod", "min", "max", "mean", "var", "std", "any", "all", "argmin", "argmax",
    "cumsum", "cumprod", "clip", "round", "conj", "dot", "nonzero", "repeat", "fill", "diagonal",
):  # fmt: skip
    setattr(ndarray, _name, _method(_name))


def _operand(x: Any, comparison: bool = False) -> Any:
    """What CuPy accepts beside a device array in an elementwise operation."""
    if isinstance(x, ndarray):
        return x._a
    if _is_scalar(x):
        return x
    if comparison and isinstance(x, np.ndarray) and x.ndim == 0:
        return x.item()  # CuPy's __richcmp__ workaround
    raise TypeError(f"Unsupported type {type(x)} (fake cupy: a host array in a device operation)")


def _binary(op: Callable[[Any, Any], Any], comparison: bool = False) -> tuple[Callable, Callable, Callable]:
    def forward(self: ndarray, other: Any) -> Any:
        return _wrap(_new(op(self._a, _operand(other, comparison)), ()))

    def reflected(self: ndarray, other: Any) -> Any:
        return _wrap(_new(op(_operand(other, comparison), self._a), ()))

    def inplace(self: ndarray, other: Any) -> ndarray:
        self._a = _inplace[op](self._a, _operand(other))
        if _tally is not None:
            _tally.launch()
        return self

    return forward, reflected, inplace


_inplace = {
    operator.add: operator.iadd,
    operator.sub: operator.isub,
    operator.mul: operator.imul,
    operator.truediv: operator.itruediv,
    operator.floordiv: operator.ifloordiv,
    operator.mod: operator.imod,
    operator.pow: operator.ipow,
    operator.matmul: operator.imatmul,
    operator.and_: operator.iand,
    operator.or_: operator.ior,
    operator.xor: operator.ixor,
    operator.lshift: operator.ilshift,
    operator.rshift: operator.irshift,
}
for _op in _inplace:
    _f, _r, _i = _binary(_op)
    _n = _op.__name__.strip("_")
    setattr(ndarray, f"__{_n}__", _f)
    setattr(ndarray, f"__r{_n}__", _r)
    setattr(ndarray, f"__i{_n}__", _i)
for _n in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_n}__", _binary(getattr(operator, _n), comparison=True)[0])
for _n in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_n}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(operator, _n)))

DeviceArray = ndarray  # the name the tests use


# ---------------------------------------------------------------------------- helpers
def _is_scalar(x: Any) -> bool:
    return type(x) in _PY_SCALARS or isinstance(x, np.generic)


def _refuse_host(name: str, values: Any) -> None:
    """TypeError for any host numpy array (0-d ones included) among values, at any depth."""
    if isinstance(values, np.ndarray):
        raise TypeError(
            f"fake cupy: {name} was given a host numpy array {values.shape} {values.dtype} "
            "(Unsupported type <class 'numpy.ndarray'>)"
        )
    if isinstance(values, (list, tuple)):
        for v in values:
            _refuse_host(name, v)
    elif isinstance(values, dict):
        for v in values.values():
            _refuse_host(name, v)


def _unwrap(x: Any) -> Any:
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x: Any) -> Any:
    """numpy results -> device arrays; numpy scalars become 0-d device arrays, as in CuPy."""
    if isinstance(x, np.ndarray):
        out = ndarray.__new__(ndarray)
        out._a = x
        return out
    if isinstance(x, np.generic):
        return _wrap(np.asarray(x))
    if isinstance(x, tuple):
        items = [_wrap(v) for v in x]
        return type(x)(*items) if hasattr(x, "_fields") else tuple(items)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _index_array(s: Any) -> Any:
    """An index element as numpy sees it: device and host arrays and lists become arrays."""
    if isinstance(s, ndarray):
        return s._a
    if isinstance(s, (list, np.ndarray)):
        s = np.asarray(s)  # host index arrays are copied to the device by CuPy
        _h2d(s.nbytes)
        return s.astype(np.intp) if s.size == 0 and s.dtype.kind == "f" else s
    if isinstance(s, (bool, np.bool_)):
        return np.asarray(s)
    return s


def _index(key: Any, shape: tuple[int, ...]) -> tuple[tuple[Any, ...], bool]:
    """A getitem/setitem key for the numpy array inside, with integer arrays wrapped into
    range as CuPy's kernels wrap them. Returns (key, whether it holds an advanced index)."""
    items = [_index_array(s) for s in (key if isinstance(key, tuple) else (key,))]
    consumed = 0
    for s in items:
        if isinstance(s, np.ndarray):
            consumed += s.ndim if s.dtype.kind == "b" else 1
        elif s is not None and s is not Ellipsis:
            consumed += 1
    axis, advanced, out = 0, False, []
    for s in items:
        if s is Ellipsis:
            axis += max(0, len(shape) - consumed)
        elif isinstance(s, np.ndarray):
            advanced = True
            if s.dtype.kind == "b":
                axis += s.ndim
            elif s.dtype.kind in "iu":
                if axis < len(shape) and shape[axis] > 0:
                    s = s % shape[axis]
                elif axis < len(shape) and s.size:
                    raise IndexError("cannot do a non-empty take from an empty axes.")
                axis += 1
            else:
                raise IndexError(f"arrays used as indices must be of integer or boolean type (actual: {s.dtype})")
        elif s is not None:
            axis += 1
        out.append(s)
    return tuple(out), advanced


# ---------------------------------------------------------------------------- functions
def asarray(a: Any, dtype: Any = None, order: Any = None) -> ndarray:
    """Host or device data -> device array (a copy from the host, as a transfer is)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else _wrap(_new(a._a.astype(dtype), ()))
    out = np.array(a, dtype=dtype, order=order or "K")
    _h2d(out.nbytes)
    return _wrap(out)


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", ndmin: int = 0) -> ndarray:
    if isinstance(obj, ndarray):
        return _wrap(_new(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin), obj))
    out = np.array(obj, dtype=dtype, order=order, ndmin=ndmin)
    _h2d(out.nbytes)
    return _wrap(out)


def asnumpy(a: Any, stream: Any = None, order: str = "C") -> np.ndarray:
    """Device -> host copy; anything else goes through numpy.asarray (host arrays pass)."""
    if isinstance(a, ndarray):
        _sync(a._a.nbytes)
        return np.array(a._a, order=order)
    return np.asarray(a, order=order)


def _check_kind(kind: Any) -> None:
    if kind is not None and kind != "stable":
        raise ValueError("kind can only be None or 'stable'")


def argsort(a: ndarray, axis: int | None = -1, kind: Any = None) -> ndarray:
    _check_kind(kind)
    _refuse_host("argsort", a)
    return _wrap(_new(np.argsort(_unwrap(a), axis=axis, kind="stable"), ()))


def sort(a: ndarray, axis: int | None = -1, kind: Any = None) -> ndarray:
    _check_kind(kind)
    _refuse_host("sort", a)
    return _wrap(_new(np.sort(_unwrap(a), axis=axis, kind="stable"), ()))


def argpartition(a: ndarray, kth: Any, axis: int | None = -1) -> ndarray:
    _refuse_host("argpartition", a)
    kth = (kth,) if isinstance(kth, int) else tuple(kth)  # CuPy iterates a kth that is not int
    return _wrap(_new(np.argpartition(_unwrap(a), list(kth), axis=axis), ()))


def _wrap_indices(indices: Any, length: int) -> np.ndarray:
    idx = _index_array(indices)
    idx = np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise IndexError("`indices` must be an integer array")
    if length == 0:
        if idx.size:
            raise IndexError("cannot do a non-empty take from an empty axes.")
        return idx
    return idx % length


def take(a: ndarray, indices: Any, axis: int | None = None, out: Any = None) -> ndarray:
    """Indices wrap around (CuPy's take kernel: ``indices % range``); no ``mode``."""
    _refuse_host("take", a)
    arr = a._a
    if axis is None:
        return _wrap(_new(np.take(arr.reshape(-1), _wrap_indices(indices, arr.size)), ()))
    return _wrap(_new(np.take(arr, _wrap_indices(indices, arr.shape[axis]), axis=axis), ()))


def take_along_axis(a: ndarray, indices: Any, axis: int) -> ndarray:
    _refuse_host("take_along_axis", a)
    arr = a._a
    return _wrap(_new(np.take_along_axis(arr, _wrap_indices(indices, arr.shape[axis]), axis=axis), ()))


#: functions that allocate or make views: no kernel runs
_FREE = frozenset({"empty", "empty_like"})
#: functions whose output size depends on the data: CuPy reads a count back first
_SIZED_BY_DATA = frozenset({"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"})


def _function(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        _refuse_host(name, (args, kwargs))
        result = fn(*_unwrap(args), **_unwrap(kwargs))
        if name in _FREE:  # an allocation or a view: no kernel
            return _wrap(result)
        if name in _SIZED_BY_DATA:
            _sync()  # the output's size is read back before it is allocated
        if kwargs.get("out") is not None and _tally is not None:
            _tally.launch()  # written in place
        return _wrap(_new(result, (args, kwargs)))

    call.__name__ = name
    return call


class _Ufunc:
    """A numpy ufunc that takes device arrays and scalars (0-d host arrays in comparisons)."""

    _COMPARISONS = frozenset({"less", "less_equal", "equal", "not_equal", "greater", "greater_equal"})

    def __init__(self, ufunc: np.ufunc) -> None:
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def _args(self, args: Any, kwargs: Any) -> tuple[Any, Any]:
        comparison = self.__name__ in self._COMPARISONS
        args = tuple(x if isinstance(x, ndarray) else _operand(x, comparison) for x in args)
        _refuse_host(self.__name__, kwargs)
        return _unwrap(args), _unwrap(kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        a, kw = self._args(args, kwargs)
        result = self._ufunc(*a, **kw)
        if isinstance(out, ndarray):
            if _tally is not None:
                _tally.launch()
            return out
        return _wrap(_new(result, (args, kwargs)))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ufunc, name)
        if not callable(attr):
            return attr
        return _function(f"{self.__name__}.{name}", attr)


class _Namespace(types.ModuleType):
    """A numpy submodule (linalg, fft, ...) whose functions take and give device arrays."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__(f"fake_cupy.{module.__name__.split('.')[-1]}")
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return _lookup(self._module, name, f"{self.__name__}.{name}")


def _lookup(module: types.ModuleType, name: str, qualname: str) -> Any:
    attr = getattr(module, name)
    if isinstance(attr, np.ufunc):
        return _Ufunc(attr)
    if isinstance(attr, types.ModuleType):
        return _Namespace(attr)
    if isinstance(attr, type) or not callable(attr):
        return attr  # dtypes and constants: cupy.float32 is numpy.float32
    return _function(qualname, attr)


_cache: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _cache:
        _cache[name] = _lookup(np, name, name)
    return _cache[name]


# ---------------------------------------------------------------------------- runtime
class _Device:
    def __init__(self, device: int = 0) -> None:
        self.id = device

    def synchronize(self) -> None:
        _sync()

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:  # CUDA's names
        return 1

    @staticmethod
    def memGetInfo() -> tuple[int, int]:
        return _free, _TOTAL

    @staticmethod
    def getDeviceProperties(i: int) -> dict[str, Any]:
        return {"name": b"fake GPU (numpy)", "totalGlobalMem": _TOTAL}


class _Event:
    def synchronize(self) -> None:
        if _tally is not None:
            _tally.copy_waits += 1


class _Stream:
    """cupy.cuda.Stream: work runs in program order here, so events are already done."""

    def __init__(self, null: bool = False, non_blocking: bool = False) -> None:
        self.non_blocking = non_blocking

    def record(self, event: Any = None) -> _Event:
        return event or _Event()

    def wait_event(self, event: _Event) -> None:
        if not isinstance(event, _Event):
            raise TypeError("fake cupy: wait_event takes an Event")


_current_stream = _Stream(null=True)


class OutOfMemoryError(MemoryError):
    """cupy.cuda.memory.OutOfMemoryError (CuPy's derives from MemoryError too)."""


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=_Runtime,
    memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
    Stream=_Stream,
    Event=_Event,
    get_current_stream=lambda: _current_stream,
)


class _Pool:
    def free_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass


def get_default_memory_pool() -> _Pool:
    return _Pool()


def scatter_add(a: ndarray, slices: Any, value: Any) -> None:
    """cupyx.scatter_add: unbuffered a[slices] += value, indices wrapping as in CuPy."""
    if not isinstance(a, ndarray):
        raise TypeError(f"fake cupy: scatter_add needs a device array, not {type(a)}")
    index, _ = _index(slices, a.shape)
    value = value._a if isinstance(value, ndarray) else value  # CuPy copies host values over
    if _tally is not None:
        _tally.launch()
    np.add.at(a._a, index, value)


def empty_pinned(shape: Any, dtype: Any = float) -> np.ndarray:
    """cupyx.empty_pinned: a host numpy array (page-locked on a GPU machine)."""
    return np.empty(shape, dtype=dtype)


cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = scatter_add  # type: ignore[attr-defined]
cupyx.empty_pinned = empty_pinned  # type: ignore[attr-defined]
