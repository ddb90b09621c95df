"""OPQ (gpupq/opq.py): the learnt rotation is orthogonal and lowers PQ's quantization error.
(Its settings and recall against FAISS's OPQMatrix are in test_faiss.py.)"""

import numpy as np

from gpupq.pq import ProductQuantizer

from .helpers import _mse, clustered


def test_opq_lowers_quantization_error(backend):
    """Catches a non-orthogonal or useless OPQ rotation (the SVD step included) on any backend."""
    from gpupq.opq import OPQ

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(16, 16)).astype(np.float32)
    x = clustered(3000, 16, seed=5) @ mix  # correlated dimensions
    opq = OPQ(16, 4).fit(backend, backend.asarray(x), np.random.default_rng(1), niter=10)
    rot = backend.to_numpy(opq.rotation)
    np.testing.assert_allclose(rot @ rot.T, np.eye(16), atol=1e-4)  # orthogonal
    assert opq.objective[-1] < opq.objective[0]
    # PQ after the rotation reconstructs better than PQ on the raw data
    plain = ProductQuantizer(16, 4).fit(backend, backend.asarray(x), np.random.default_rng(2))
    rotated = backend.to_numpy(opq.apply(backend.asarray(x)))
    pq_rot = ProductQuantizer(16, 4).fit(backend, backend.asarray(rotated), np.random.default_rng(2))
    assert _mse(backend, pq_rot, rotated)[0] < _mse(backend, plain, x)[0]
