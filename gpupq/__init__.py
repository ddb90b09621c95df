"""gpupq: estimate what IVF-PQ compression does to your vectors' memory, recall and speed,
on CuPy (CUDA GPU) or numpy (CPU) through one code path."""

__version__ = "0.1.0"

from .backends import Backend, CupyBackend, NumpyBackend, get_backends, usable_backends
from .errors import GpupqError
from .estimate import BackendResult, EstimateConfig, EstimateResult, estimate
from .grid import Grid
from .io import Dataset, hold_out, load_npy, load_vectors, make_synthetic
from .ivf import IVFPQIndex
from .pq import ProductQuantizer

# sweep and recommend are reached as gpupq.sweep.sweep / gpupq.recommend.recommend: a function
# named like its module here would hide the module (``import gpupq.sweep as m`` gets the attribute)
from .recommend import Recommendation, Target
from .session import RunConfig, Session, open_session
from .settings import Build, Setting
from .sweep import SweepResult

__all__ = [
    "Backend",
    "BackendResult",
    "Build",
    "CupyBackend",
    "Dataset",
    "EstimateConfig",
    "EstimateResult",
    "GpupqError",
    "Grid",
    "IVFPQIndex",
    "NumpyBackend",
    "ProductQuantizer",
    "Recommendation",
    "RunConfig",
    "Session",
    "Setting",
    "SweepResult",
    "Target",
    "__version__",
    "estimate",
    "get_backends",
    "hold_out",
    "load_npy",
    "load_vectors",
    "make_synthetic",
    "open_session",
    "usable_backends",
]
