"""``--cache DIR``: results of long stages kept on disk by what they depend on, so an interrupted
or repeated run over a large collection resumes instead of starting again (FAISS's bench_fw
keeps such a cache). Kept: the exact ground truth, and each build of a sweep or recommend (its
trained quantizers and its inverted lists; in shards, each shard's lists, written by the task
that encoded them). ``estimate`` times its training and adding, so it trains and adds afresh.

A result is found by a key: a hash of everything it depends on. For the data, that is each
file's path, size and modification time (a file rewritten in place is a new key), with the
options it was read with and the metric; for the queries, their held-out row numbers and their
float32 values. Each entry is an ``.npy`` file written whole under a temporary name and then
renamed, beside a ``.json`` saying what it holds, so a run stopped mid-write leaves no entry that
could be read as complete. Data not read from files (synthetic, an array) is not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GpupqError
from .io import Dataset, ShardedArray
from .io.shards import every_file, is_collection


def check_cache_dir(path: str | os.PathLike[str], inputs: list[Any]) -> Path:
    """The cache folder, created when missing (its parent must exist); refused, in one line, when
    it is a file, an input of the run, or cannot be written."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise GpupqError(f"--cache {str(folder)!r} is a file; give a folder")
    for given in inputs:
        if given is None or not isinstance(given, (str, os.PathLike)):
            continue
        text = os.fspath(given)
        if Path(text).resolve() == folder.resolve():
            raise GpupqError(f"--cache {str(folder)!r} is an input of this run; give another folder")
        # a collection's folder: entries written there would join the collection next time
        if is_collection(text) and folder.resolve() in {Path(f).resolve().parent for f in every_file(text)}:
            raise GpupqError(f"--cache {str(folder)!r} holds input files of this run; give another folder")
    if not folder.exists():
        if not folder.parent.is_dir():
            raise GpupqError(f"--cache {str(folder)!r}: the folder {str(folder.parent)!r} does not exist")
        try:
            folder.mkdir()
        except OSError as exc:
            raise GpupqError(f"--cache {str(folder)!r}: cannot create it ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe")
    except OSError as exc:
        raise GpupqError(f"--cache {str(folder)!r}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def data_identity(dataset: Dataset) -> dict[str, Any] | None:
    """What the rows depend on: the files (path, size, mtime), how they were read, the metric;
    None for data not read from files."""
    origin = dataset.origin
    if origin is None:
        return None
    paths = dataset.array.paths if isinstance(dataset.array, ShardedArray) else [origin.path]
    files = []
    for p in paths:
        st = os.stat(p)
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return {
        "origin": asdict(origin) | {"inflate_limit": None},  # the limit bounds a copy, not the values
        "files": files,
        "shape": [dataset.n, dataset.d],
        "dtype": dataset.dtype,
        "metric": dataset.metric,
    }


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class StageCache:
    """Entries under one folder (see the module doc)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]

    def ground_truth_key(self, dataset: Dataset, query_ids: np.ndarray, queries: np.ndarray, metric: str) -> str | None:
        """The key of a ground truth (any k: an entry serves every k up to its own)."""
        data = data_identity(dataset)
        if data is None:
            return None
        return self.key(
            {
                "stage": "ground truth",
                "data": data,
                "query_ids": _digest(np.asarray(query_ids, dtype=np.int64)),
                "queries": _digest(np.asarray(queries, dtype=np.float32)),
                "metric": metric,
            }
        )

    def build_key(self, dataset: Dataset, query_ids: np.ndarray, parts: dict[str, Any]) -> str | None:
        """The key of a build trained and filled on ``dataset`` less the held-out ``query_ids``:
        parts are the rest it depends on (the build, metric, seed, backend, shard plan, …), and
        gpupq's version (training code that changes makes other bits)."""
        from . import __version__

        data = data_identity(dataset)
        if data is None:
            return None
        ids = _digest(np.asarray(query_ids, dtype=np.int64))
        return self.key({"stage": "build", "data": data, "query_ids": ids, "version": __version__, **parts})

    def path(self, stage: str, key: str, suffix: str = ".npy") -> Path:
        return self.folder / f"{stage}-{key}{suffix}"

    def load_arrays(self, stage: str, key: str, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        """An entry of several arrays (``.npz``) with at least ``names``, or None (none, or one
        that cannot be read: computed again)."""
        try:
            with np.load(self.path(stage, key, ".npz"), allow_pickle=False) as f:
                if not set(names) <= set(f.files):
                    return None
                return {name: f[name] for name in f.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    def save_arrays(self, stage: str, key: str, arrays: dict[str, np.ndarray], about: dict[str, Any]) -> None:
        """As :meth:`save`, several arrays in one ``.npz`` entry."""
        self._write(self.path(stage, key, ".npz"), lambda f: np.savez(f, allow_pickle=False, **arrays), about)

    def load(self, stage: str, key: str) -> np.ndarray | None:
        """The entry, or None when there is none (or it cannot be read: it is then recomputed)."""
        path = self.path(stage, key)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def save(self, stage: str, key: str, array: np.ndarray, about: dict[str, Any]) -> None:
        """Write an entry whole, then rename it into place (and its description beside it)."""
        self._write(self.path(stage, key), lambda f: np.save(f, array, allow_pickle=False), about)

    def _write(self, path: Path, write: Any, about: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.replace(tmp, path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise GpupqError(
                f"--cache {str(self.folder)!r}: cannot write {path.name} ({exc.strerror or exc})"
            ) from None
        path.with_suffix(".json").write_text(json.dumps(about, indent=1, sort_keys=True) + "\n")
