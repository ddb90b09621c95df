"""What to deploy: the FAISS ``index_factory`` string and the cuVS IVF-PQ parameters that build
the index gpupq measured, from its :class:`~gpupq.settings.Build` and
:class:`~gpupq.settings.Setting`, so what was measured is what gets deployed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .memory import Deployment
from .projection import scale
from .settings import Build, Setting

#: FAISS's refine index for each re-rank store
REFINE = {"fp32": "RFlat", "fp16": "Refine(SQfp16)", "sq8": "Refine(SQ8)"}


def ivfpq_factory(build: Build) -> str:
    """The IVF-PQ part of the factory string. "np": no polysemous training, which the factory
    otherwise adds (it permutes code numbers for Hamming filtering, costs training time and
    leaves ADC recall unchanged)."""
    opq = f"OPQ{build.m}," if build.opq else ""
    return f"{opq}IVF{build.nlist},PQ{build.m}x{build.nbits}np"


def factory_string(build: Build, setting: Setting, metric: str) -> str:
    """The whole FAISS index_factory string: normalisation, OPQ, IVF-PQ, refinement."""
    prefix = "L2norm," if metric == "cosine" else ""
    refine = "," + REFINE[setting.store] if setting.rerank else ""
    return prefix + ivfpq_factory(build) + refine


def deploy_spec(build: Build, setting: Setting, metric: str, k: int, n_base: int) -> dict[str, Any]:
    """The FAISS factory string and cuVS parameters for ``build`` searched at ``setting``, over
    n_base vectors; metric: ``l2``, ``ip`` or ``cosine``."""
    ip = metric != "l2"
    coarse_points = min(n_base, 256 * build.nlist)
    cuvs: dict[str, Any] = {
        "index_params": {
            "n_lists": build.nlist,
            "metric": "inner_product" if ip else "sqeuclidean",
            "pq_dim": build.m,
            "pq_bits": build.nbits,
            "codebook_kind": "subspace",
            "kmeans_n_iters": 10,  # FAISS's coarse iterations, as measured here
            "kmeans_trainset_fraction": round(coarse_points / n_base, 6),
        },
        "search_params": {"n_probes": setting.nprobe},
    }
    notes = []
    if metric == "cosine":
        notes.append("normalise vectors and queries to unit length first (cosine = inner product of unit vectors)")
    if build.opq:
        notes.append("cuVS IVF-PQ has no OPQ; it applies its own random rotation, so expect recall to differ")
    if setting.rerank:
        cuvs["refine"] = {"k": k, "candidates": setting.rerank, "store": setting.store}
        notes.append(f"re-rank: search {setting.rerank} candidates, then cuvs.neighbors.refine to k={k}")
    return {
        "faiss_index_factory": factory_string(build, setting, metric),
        "faiss_metric": "METRIC_INNER_PRODUCT" if ip else "METRIC_L2",
        "faiss_nprobe": setting.nprobe,
        "faiss_k_factor": setting.rerank / k if setting.rerank else None,
        "cuvs_ivf_pq": cuvs,
        "notes": notes,
    }


def deploy_at(
    build: Build, setting: Setting, metric: str, k: int, n_base: int, at: Deployment | None
) -> dict[str, Any]:
    """:func:`deploy_spec` for what was measured on n_base vectors, or, given the bill ``at``
    --n-total, for that deployment: nlist and nprobe scaled as the bill scales them."""
    if at is None:
        return deploy_spec(build, setting, metric, k, n_base)
    nlist, nprobe = scale(build.nlist, setting.nprobe, n_base, at.n_total)
    return deploy_spec(replace(build, nlist=nlist), replace(setting, nprobe=nprobe), metric, k, at.n_total)
