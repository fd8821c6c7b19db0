"""The events ⋈ labels stream, split, coverage checks and the physical augmentations.

Labels here come from ``stand_in_labels``: truth with noise standing in for the teacher (a test fixture,
not the teacher), so the trainer is tested without a VLM.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from nudistill.errors import UserError
from nudistill.shifts import DetectorAugment, degrade_resolution
from nudistill.shifts import translate as shift
from nudistill.student.data import DataSpec, DistillDataset, LabelIndex, is_val, survey
from nudistill.student.stand_in import stand_in_labels


@pytest.fixture(scope="module")
def labelled(sim_dir, sim_table_64, tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.parquet"
    pq.write_table(stand_in_labels(sim_table_64, errors=0.1, seed=3), path)
    return sim_dir, path


def test_split_is_deterministic_and_roughly_sized():
    ids = [f"ev{i}" for i in range(4000)]
    val = [is_val(e, 0.2) for e in ids]
    assert val == [is_val(e, 0.2) for e in ids]
    assert 0.17 < np.mean(val) < 0.23


def test_stream_joins_skips_not_ok_and_covers_the_split(labelled):
    events, labels = labelled
    index = LabelIndex.read(labels)
    spec = DataSpec(str(events), str(labels), val_fraction=0.25)
    sv = survey(spec, index)
    n_bad = int((~index.ok).sum())
    assert n_bad > 0 and sv.counts["label_not_ok"] == n_bad
    assert sv.n_train + sv.n_val + n_bad == 120
    train = list(DistillDataset(spec, index, "train"))
    val = list(DistillDataset(spec, index, "val"))
    assert (len(train), len(val)) == (sv.n_train, sv.n_val)
    s = train[0]
    assert s["xz"].shape == (64, 64) and s["xz"].dtype == np.uint8
    assert s["teacher_probs"].shape == (3,) and abs(s["teacher_probs"].sum() - 1) < 1e-5
    assert s["hard"] == s["teacher_probs"].argmax()  # default hard labels: the teacher's argmax


def test_rank_shards_are_disjoint_and_complete(labelled):
    events, labels = labelled
    index = LabelIndex.read(labels)
    spec = DataSpec(str(events), str(labels), val_fraction=0.25)
    key = lambda s: s["xz"].tobytes()  # noqa: E731
    whole = {key(s) for s in DistillDataset(spec, index, "train")}
    parts = [{key(s) for s in DistillDataset(spec, index, "train", rank=r, world=2)} for r in range(2)]
    assert not parts[0] & parts[1] and parts[0] | parts[1] == whole


def test_shuffle_buffer_keeps_every_sample(labelled):
    events, labels = labelled
    index = LabelIndex.read(labels)
    spec = DataSpec(str(events), str(labels))
    plain = [s["xz"].tobytes() for s in DistillDataset(spec, index, "train")]
    mixed = [s["xz"].tobytes() for s in DistillDataset(spec, index, "train", shuffle_buffer=16, seed=1)]
    assert sorted(plain) == sorted(mixed) and plain != mixed


def test_truth_targets_without_teacher(sim_dir):
    spec = DataSpec(str(sim_dir), None, hard_labels="truth", concept_source="truth")
    s = next(iter(DistillDataset(spec, None, "train")))
    assert s["hard"] == s["truth"] >= 0 and s["teacher_probs"][s["truth"]] == 1.0 and s["concept_mask"] == 1.0


def test_mismatched_inputs_are_one_sentence(labelled, tmp_path):
    events, labels = labelled
    table = pq.read_table(labels)
    pq.write_table(table.slice(0, 100), tmp_path / "short.parquet")
    short = tmp_path / "short.parquet"
    with pytest.raises(UserError, match="do not cover the events: 20 of 120"):
        survey(DataSpec(str(events), str(short)), LabelIndex.read(short))
    with pytest.raises(UserError, match="are 64x64 but the student expects 128x128"):
        survey(DataSpec(str(events), str(labels), height=128, width=128), LabelIndex.read(labels))
    pq.write_table(table.drop_columns(["probs"]), tmp_path / "noprobs.parquet")
    with pytest.raises(UserError, match="lack the column"):
        LabelIndex.read(tmp_path / "noprobs.parquet")


def test_augment_shifts_z_together_and_never_flips():
    views = np.zeros((2, 32, 32), np.uint8)
    views[0, 10, 12:17] = 200  # a short track along z in XZ, pointing downstream
    views[1, 20, 12:17] = 100
    aug = DetectorAugment(max_shift=0.2, prob=0.0, degrade_prob=0.0)  # geometry only: no readout draw
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = aug(views, rng)
        cols = [np.flatnonzero(out[v].any(0)) for v in range(2)]
        assert np.array_equal(cols[0], cols[1])  # one z shift for both views
        assert len(cols[0]) == 5 and out[0].max() == 200  # intact, not mirrored or blurred


def test_augment_draws_a_new_readout_and_keeps_the_event():
    """With prob 1 every event gets a readout drawn from the ranges: more noise pixels, the track still there."""
    views = np.zeros((2, 64, 64), np.uint8)
    views[0, 30, 10:50] = 40  # a MIP-like track along z in both views
    views[1, 20, 10:50] = 40
    aug = DetectorAugment(prob=1.0, max_shift=0.0, degrade_prob=0.0)
    outs = [aug(views, np.random.default_rng(s)) for s in range(30)]
    assert len({o.tobytes() for o in outs}) == 30  # every draw differs
    kept = [(o[0, 30, 10:50] > 0).mean() for o in outs]
    assert np.median(kept) > 0.7  # most draws keep most of the track (some are dead-channel or low-gain draws)
    assert np.array_equal(outs[0], aug(views, np.random.default_rng(0)))  # reproducible by seed


def test_shift_and_degradation():
    v = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert np.array_equal(shift(v, 1, -1)[1:, :3], v[:3, 1:]) and not shift(v, 1, -1)[0].any()
    d = degrade_resolution(v[None], 2)[0]
    assert d.shape == v.shape and d.dtype == np.uint8
    assert d[0, 0] == d[1, 1] == round((0 + 1 + 4 + 5) / 4)
    assert np.array_equal(degrade_resolution(v, 1), v)
