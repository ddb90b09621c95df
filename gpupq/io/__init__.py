"""Reading vectors: readers for the formats people keep embeddings in, and the datasets they give.

Every file a user hands gpupq ends in a :class:`~gpupq.io.dataset.Dataset` or in one
:class:`GpupqError` whose message is one line and names the file: never a traceback, a hang or
memory the file alone decides. So each reader

- refuses what is not a regular file before opening it (a FIFO blocks forever, ``/dev/zero``
  never ends);
- trusts no size a file declares: a header's promise is checked against the bytes there, and
  what is inflated or converted is bounded by an inflation limit (:func:`resolve_inflate_limit`);
- reads nothing at load time beyond headers and metadata, so that the estimate checks every
  parameter against the declared shape before the first value is read;
- memory-maps its file read-only (input files are never modified) or reads it in chunks.

Formats:

- ``.npy``: NumPy, memory-mapped (never unpickled; any byte order, C or Fortran order).
- ``.npz``: the named array (``--name``; optional when there is one). Stored members are mapped
  in place; a compressed member is a :class:`LazyArray`: inflated, on the first read, in chunks
  into an anonymous temporary file that is mapped (and vanishes when the dataset does).
- ``.fvecs`` / ``.ivecs`` / ``.bvecs`` (TEXMEX: SIFT1M, GIST1M): each row is a little-endian
  int32 dimension followed by d float32 / int32 / uint8 values.
- ``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin`` (big-ann-benchmarks): uint32 n, uint32 d, then
  n·d float32 / uint8 / int8 / int32 values, row-major.
- ``.hdf5`` / ``.h5`` (ann-benchmarks): ``train`` is the base (``--name`` picks another dataset);
  :func:`load_ann_benchmarks` also gives its ``test`` queries, ``neighbors`` ground truth (read
  only as far as used, see :func:`read_ground_truth`) and declared ``distance``. Read through
  h5py, slice by slice (extra ``hdf5``).
- ``.parquet`` / ``.arrow`` / ``.feather``: an embedding column (``--column``; list or
  fixed-size list of numbers), a :class:`LazyArray` whose shape comes from the metadata; on the
  first read it is streamed in record batches through pyarrow (extra ``parquet``) into an
  anonymous temporary file (in the column's own number type) that is mapped. Arrow IPC files
  and streams (as Hugging Face datasets writes them) are both read.

Modules (this package re-exports their public names; a module-level setting such as
``dataset.DEFAULT_CHUNK_BYTES`` is read, and so patched, in its own module):

- :mod:`.dataset`: :class:`Dataset` (float32 reads in chunks, validation), :func:`chunk_rows`, ``METRICS``;
- :mod:`.split`: :class:`Split` of queries and base, :func:`hold_out`, :func:`with_query_file`;
- :mod:`.synthetic`: :func:`make_synthetic`;
- :mod:`.inputs`: :func:`detect_format`, :func:`load_vectors`, :func:`load_collection`, :func:`open_inputs`;
- :mod:`.shards`: :class:`ShardedArray`, a directory or glob of files read as one base;
- :mod:`.npy`, :mod:`.binary`, :mod:`.hdf5`, :mod:`.arrow`: one reader per family of file types
  (h5py and pyarrow are imported by their module only, and only when a file is read);
- :mod:`.lazy`: :class:`LazyArray`; :mod:`.limits`: the inflation limit;
- :mod:`.safety`: one-line errors and the checks every reader makes before it reads.
"""

from .dataset import MAX_SQUARED_NORM, METRICS, MIN_SQUARED_NORM, Dataset, chunk_rows
from .hdf5 import ANN_DISTANCES, AnnBenchmarks, H5Array, load_ann_benchmarks, read_ground_truth
from .inputs import EXTENSIONS, FORMATS, Inputs, detect_format, load_collection, load_vectors, open_inputs
from .lazy import LazyArray
from .limits import DEFAULT_INFLATE_LIMIT, INFLATE_LIMIT_ENV, resolve_inflate_limit
from .npy import load_npy
from .shards import ShardedArray, is_collection
from .split import MAX_ROWS, Split, hold_out, with_query_file
from .synthetic import make_synthetic

__all__ = [
    "ANN_DISTANCES",
    "DEFAULT_INFLATE_LIMIT",
    "EXTENSIONS",
    "FORMATS",
    "INFLATE_LIMIT_ENV",
    "MAX_ROWS",
    "MAX_SQUARED_NORM",
    "METRICS",
    "MIN_SQUARED_NORM",
    "AnnBenchmarks",
    "Dataset",
    "H5Array",
    "Inputs",
    "LazyArray",
    "ShardedArray",
    "Split",
    "chunk_rows",
    "detect_format",
    "hold_out",
    "is_collection",
    "load_ann_benchmarks",
    "load_collection",
    "load_npy",
    "load_vectors",
    "make_synthetic",
    "open_inputs",
    "read_ground_truth",
    "resolve_inflate_limit",
    "with_query_file",
]
