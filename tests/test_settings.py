"""Operating points (gpupq/settings.py): builds and settings spelt as FAISS spells them, and the
training sample each build needs under FAISS's caps."""

from __future__ import annotations

import pytest

from gpupq.kmeans import MAX_POINTS_PER_CENTROID
from gpupq.opq import OPQ_MAX_TRAIN
from gpupq.settings import STORE_TRAIN, Build, Setting, sample_size, train_sizes


@pytest.mark.parametrize(
    ("build", "label"),
    [
        (Build(1024, 16), "IVF1024,PQ16"),
        (Build(1024, 16, nbits=8), "IVF1024,PQ16"),
        (Build(1024, 16, nbits=4, opq=True), "OPQ16,IVF1024,PQ16x4"),
        (Build(64, 8, nbits=6), "IVF64,PQ8x6"),
        (Build(256, 32, opq=True), "OPQ32,IVF256,PQ32"),
    ],
)
def test_build_label_is_the_faiss_factory_string(build, label):
    assert build.label == label


def test_setting_label():
    assert Setting(8).label == "nprobe=8"
    assert Setting(8, 100, "sq8").label == "nprobe=8, rerank 100 (sq8)"
    assert Setting(1, 0, "").label == "nprobe=1"


def test_builds_and_settings_order_and_hash():
    """Frozen and ordered by their fields: usable as keys, and sorted by nlist, then m."""
    builds = [Build(64, 16), Build(16, 8, opq=True), Build(16, 8), Build(16, 4)]
    assert sorted(builds) == [Build(16, 4), Build(16, 8), Build(16, 8, opq=True), Build(64, 16)]
    assert len({Build(16, 8), Build(16, 8, 8, False)}) == 1
    assert sorted([Setting(4, 50, "fp16"), Setting(1), Setting(4)]) == [Setting(1), Setting(4), Setting(4, 50, "fp16")]


def test_train_sizes_follow_faiss_caps():
    """Coarse: 256·nlist; PQ: 256·2^nbits; OPQ: 65,536 and only under OPQ; none above n."""
    assert MAX_POINTS_PER_CENTROID == 256 and OPQ_MAX_TRAIN == 65_536
    n = 10**7
    assert train_sizes(n, Build(1024, 16)) == (256 * 1024, 256 * 256, 0)
    assert train_sizes(n, Build(64, 8, nbits=4)) == (256 * 64, 256 * 16, 0)
    assert train_sizes(n, Build(64, 8, nbits=4, opq=True)) == (256 * 64, 256 * 16, 65_536)
    assert train_sizes(5000, Build(1024, 16, opq=True)) == (5000, 5000, 5000)
    assert train_sizes(20_000, Build(16, 8, nbits=8, opq=True)) == (4096, 20_000, 20_000)


def test_sample_size_covers_every_build_and_the_store():
    n = 10**7
    builds = [Build(64, 8, nbits=4), Build(1024, 16), Build(16, 8, opq=True)]
    assert sample_size(n, builds) == max(256 * 1024, STORE_TRAIN) == 262_144
    for b in builds:
        assert sample_size(n, builds) >= max(train_sizes(n, b))
    # small builds: the re-rank store's 65,536 training points decide
    assert sample_size(n, [Build(16, 8, nbits=4)]) == STORE_TRAIN == 65_536
    assert sample_size(n, []) == STORE_TRAIN
    # never more than the base holds
    assert sample_size(3000, builds) == 3000
