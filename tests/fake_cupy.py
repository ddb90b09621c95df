"""A stand-in for CuPy built on numpy, strict where CuPy is strict, for CI without a GPU.

It is not a GPU and proves nothing about kernels or speed; it lets the CuPy backend's own
methods and the device-side code paths run on a CPU, and it fails where real CuPy would fail on
the usual mistakes:

- arrays it makes are ``DeviceArray``; mixing one with a host ``numpy.ndarray`` in arithmetic
  or in an array function raises ``TypeError`` (CuPy: "Unsupported type <class 'numpy.ndarray'>");
- ``argsort`` takes no ``kind`` (CuPy's sort is always stable and rejects other kinds).

Indexing a device array with a host integer array is allowed, as CuPy allows it. Not caught:
``numpy.asarray(device_array)`` (CuPy raises; a numpy subclass cannot), so the backend's
``to_numpy`` must be, and is, the only way the code brings arrays to the host.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np

__version__ = "0.0-fake"


class DeviceArray(np.ndarray):
    """A numpy array that plays a CuPy array."""

    def get(self) -> np.ndarray:
        return self.view(np.ndarray).copy()

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out", ())
        _refuse_host(ufunc.__name__, (*inputs, *out))
        args = [_host_view(x) for x in inputs]
        if out:
            kwargs["out"] = tuple(_host_view(x) for x in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out:
            return out[0] if len(out) == 1 else out
        return _device(result)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        _refuse_host(func.__name__, (*_flatten(args), *_flatten(list(kwargs.values()))))
        return _device(func(*_unwrap(args), **_unwrap(kwargs)))


def _host_view(x: Any) -> Any:
    return x.view(np.ndarray) if isinstance(x, DeviceArray) else x


def _flatten(xs: Any) -> list[Any]:
    out: list[Any] = []
    for x in xs:
        if isinstance(x, (list, tuple)):
            out.extend(_flatten(x))
        else:
            out.append(x)
    return out


def _refuse_host(name: str, values: Any) -> None:
    for x in values:
        if isinstance(x, np.ndarray) and not isinstance(x, DeviceArray) and x.ndim > 0:
            raise TypeError(f"fake cupy: {name} was given a host numpy array {x.shape} {x.dtype}")


def _unwrap(x: Any) -> Any:
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _device(x: Any) -> Any:
    if isinstance(x, np.ndarray) and not isinstance(x, DeviceArray):
        return x.view(DeviceArray)
    if isinstance(x, tuple):
        return tuple(_device(v) for v in x)
    if isinstance(x, list):
        return [_device(v) for v in x]
    return x


def asarray(a: Any, dtype: Any = None) -> DeviceArray:
    if isinstance(a, DeviceArray):
        return a if dtype is None else a.astype(dtype)
    return np.array(a, dtype=dtype).view(DeviceArray)  # a copy, as a host-to-device transfer is


def asnumpy(a: Any) -> np.ndarray:
    return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


def argsort(a: Any, axis: int = -1, kind: Any = None) -> DeviceArray:
    if kind is not None:
        raise ValueError("fake cupy: argsort takes no kind (CuPy's sort is always stable)")
    return _device(np.argsort(_host_view(a), axis=axis, kind="stable"))


def __getattr__(name: str) -> Any:
    attr = getattr(np, name)
    if isinstance(attr, type) or not callable(attr) or isinstance(attr, np.ufunc):
        return attr  # dtypes and ufuncs (ufuncs dispatch through __array_ufunc__)

    def call(*args: Any, **kwargs: Any) -> Any:
        _refuse_host(name, (*_flatten(args), *_flatten(list(kwargs.values()))))
        return _device(attr(*_unwrap(args), **_unwrap(kwargs)))

    return call


class _Device:
    id = 0

    def synchronize(self) -> None:
        pass


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:
        return 1

    @staticmethod
    def memGetInfo() -> tuple[int, int]:
        return 8 << 30, 16 << 30

    @staticmethod
    def getDeviceProperties(i: int) -> dict[str, Any]:
        return {"name": b"fake GPU (numpy)", "totalGlobalMem": 16 << 30}


cuda = types.SimpleNamespace(Device=_Device, runtime=_Runtime)


class _Pool:
    def free_bytes(self) -> int:
        return 0


def get_default_memory_pool() -> _Pool:
    return _Pool()


def scatter_add(a: DeviceArray, slices: Any, value: DeviceArray) -> None:
    """cupyx.scatter_add."""
    _refuse_host("scatter_add", (a, value, *_flatten(slices if isinstance(slices, tuple) else (slices,))))
    np.add.at(a.view(np.ndarray), _unwrap(slices), _host_view(value))


cupyx = types.ModuleType("cupyx")
cupyx.scatter_add = scatter_add  # type: ignore[attr-defined]
