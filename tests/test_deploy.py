"""The FAISS factory string and cuVS parameters printed for what was measured."""

from __future__ import annotations

import pytest

from gpupq.deploy import deploy_at, deploy_spec, factory_string
from gpupq.memory import deployment
from gpupq.settings import Build, Setting


@pytest.mark.parametrize(
    ("build", "setting", "metric", "factory"),
    [
        (Build(32, 8), Setting(8, 100, "fp32"), "l2", "IVF32,PQ8x8np,RFlat"),
        (Build(32, 8), Setting(8), "ip", "IVF32,PQ8x8np"),
        (Build(32, 8), Setting(8, 100, "fp16"), "cosine", "L2norm,IVF32,PQ8x8np,Refine(SQfp16)"),
        (Build(32, 8, 6, True), Setting(8, 100, "sq8"), "l2", "OPQ8,IVF32,PQ8x6np,Refine(SQ8)"),
        (Build(32, 8, 4), Setting(8), "l2", "IVF32,PQ8x4np"),
    ],
)
def test_factory_strings_build_in_faiss(build, setting, metric, factory):
    faiss = pytest.importorskip("faiss")
    spec = deploy_spec(build, setting, metric, 10, n_base=10000)
    assert spec["faiss_index_factory"] == factory_string(build, setting, metric) == factory
    faiss_metric = getattr(faiss, spec["faiss_metric"])
    index = faiss.index_factory(32, spec["faiss_index_factory"], faiss_metric)
    ivf = faiss.extract_index_ivf(index)
    assert (ivf.nlist, ivf.metric_type) == (32, faiss_metric)
    pq = faiss.downcast_index(ivf).pq
    assert (pq.M, pq.nbits) == (8, build.nbits)
    assert spec["cuvs_ivf_pq"]["index_params"]["pq_dim"] == 8
    assert spec["cuvs_ivf_pq"]["search_params"]["n_probes"] == setting.nprobe == spec["faiss_nprobe"]
    assert spec["faiss_k_factor"] == (setting.rerank / 10 if setting.rerank else None)


def test_deploy_at_n_total_scales_nlist_and_nprobe_as_the_bill_does():
    """What a user deploys at --n-total must probe the same share of lists as was measured:
    the strings keeping the sample's nprobe would deploy far below the measured recall."""
    build, setting = Build(64, 16), Setting(8, 40, "fp16")
    at = deployment(build, setting.nprobe, "fp16", 10_000, 10_000_000, 64, "l2")
    spec = deploy_at(build, setting, "l2", 10, 10_000, at)
    assert at.nlist == 2024 and at.nprobe == 253  # ×√1000 ≈ 31.6, the share of lists probed kept
    assert spec["faiss_index_factory"].startswith(f"IVF{at.nlist},PQ16")
    assert spec["faiss_nprobe"] == at.nprobe == spec["cuvs_ivf_pq"]["search_params"]["n_probes"]
    assert spec["cuvs_ivf_pq"]["index_params"]["n_lists"] == at.nlist
    # without a deployment size: what was measured, unchanged
    assert deploy_at(build, setting, "l2", 10, 10_000, None) == deploy_spec(build, setting, "l2", 10, 10_000)
