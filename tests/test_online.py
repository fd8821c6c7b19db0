"""The online package: contract checks, scoring, filter policy, fuzzing, import isolation, the latency
certificate (clean process, samples), CLI score/bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from nudistill import CLASSES, CONCEPTS
from nudistill.online import Scorer, apply_policy, optimized_path

RES = 32
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """An untrained lean student at 32x32, written by the export path (metadata, checker, optimised graph)."""
    import torch

    from nudistill.export.pipeline import write_model
    from nudistill.student import create_student

    torch.manual_seed(0)
    student = create_student("lean_pool4", height=RES, width=RES, pool=1).eval()
    out = tmp_path_factory.mktemp("online") / "model.onnx"
    return write_model(student, out, "test-teacher", {"accuracy": None, "latency": None})


@pytest.fixture(scope="module")
def scorer(model_path) -> Scorer:
    return Scorer(model_path)


def events(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2, RES, RES) uint8 sparse events."""
    rng = np.random.default_rng(seed)
    return ((rng.random((n, 2, RES, RES)) < 0.05) * rng.integers(1, 256, (n, 2, RES, RES))).astype(np.uint8)


def test_scorer_reads_the_contract(scorer, model_path):
    assert scorer.path == optimized_path(model_path)  # the offline-optimised sibling is preferred
    assert scorer.classes == CLASSES and scorer.concepts == CONCEPTS and scorer.shape == (RES, RES)
    opts = scorer.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert Scorer(model_path, optimized=False).path == model_path


def test_stale_optimised_graph_is_not_loaded(model_path, tmp_path):
    import shutil

    model, opt = tmp_path / "model.onnx", tmp_path / "model.opt.onnx"
    shutil.copy(optimized_path(model_path), opt)
    shutil.copy(model_path, model)
    os.utime(opt, (1, 1))  # older than the model: from an earlier export
    assert Scorer(model).path == model


def test_score_single_and_batch_agree(scorer):
    ev = events(5)
    batch = scorer.score(ev[:, 0], ev[:, 1])
    assert batch["probs"].shape == (5, 3) and batch["concepts"].shape == (5, len(CONCEPTS))
    assert batch["probs"].dtype == np.float32
    np.testing.assert_allclose(batch["probs"].sum(1), 1.0, atol=1e-5)
    assert ((batch["concepts"] >= 0) & (batch["concepts"] <= 1)).all()
    one = scorer.score(ev[2, 0], ev[2, 1])
    assert one["probs"].shape == (3,)
    np.testing.assert_allclose(one["probs"], batch["probs"][2], atol=1e-6)


def test_non_contiguous_views_score_like_copies(scorer):
    ev = events(4, seed=1)
    xz, yz = ev[:, 0], ev[:, 1]  # strided views into (4, 2, H, W)
    assert not xz.flags.c_contiguous
    ref = scorer.score(np.ascontiguousarray(xz), np.ascontiguousarray(yz))["probs"]
    np.testing.assert_allclose(scorer.score(xz, yz)["probs"], ref, atol=1e-6)
    f = np.asfortranarray(ev[0, 0])
    np.testing.assert_allclose(scorer.score(f, ev[0, 1])["probs"], ref[0], atol=1e-6)


@pytest.mark.parametrize("xz, yz, words", [
    (np.zeros((RES, RES), np.float32), np.zeros((RES, RES), np.uint8), "dtype float32"),
    (np.zeros((RES, RES), np.uint8), np.zeros((RES, RES), np.int64), "yz has dtype int64"),
    (np.zeros(RES * RES, np.uint8), np.zeros(RES * RES, np.uint8), "shape"),
    (np.zeros((1, 1, RES, RES), np.uint8), np.zeros((1, 1, RES, RES), np.uint8), "shape"),
    (np.zeros((2, RES, RES + 1), np.uint8), np.zeros((2, RES, RES + 1), np.uint8), "resolution"),
    (np.zeros((2, RES, RES), np.uint8), np.zeros((3, RES, RES), np.uint8), "differ in batch"),
    (np.zeros((1, RES, RES), np.uint8), np.zeros((RES, RES), np.uint8), "differ in batch"),
    (np.zeros((0, RES, RES), np.uint8), np.zeros((0, RES, RES), np.uint8), "empty"),
    ([[0] * RES] * RES, np.zeros((RES, RES), np.uint8), "numpy array"),
])
def test_bad_inputs_raise_a_value_error_naming_the_problem(scorer, xz, yz, words):
    with pytest.raises(ValueError, match=words):
        scorer.score(xz, yz)


def test_select_applies_the_policy(scorer):
    ev = events(6, seed=2)
    out = scorer.score(ev[:, 0], ev[:, 1])
    keep = scorer.select(ev[:, 0], ev[:, 1], {"nue_cc": 0.4, "em_shower": 0.9})
    expected = (out["probs"][:, 0] >= 0.4) | (out["concepts"][:, CONCEPTS.index("em_shower")] >= 0.9)
    np.testing.assert_array_equal(keep, expected)
    assert scorer.select(ev[0, 0], ev[0, 1], {"nc": 0.0}) is True
    assert not scorer.select(ev[:, 0], ev[:, 1], {"nc": 1.0}).any()  # an untrained net is never certain
    for bad, words in [({"electron": 0.5}, "neither a class"), ({"nue_cc": 1.5}, r"\[0, 1\]"),
                       ({"nue_cc": "high"}, r"\[0, 1\]"), ({}, "at least one")]:
        with pytest.raises(ValueError, match=words):
            apply_policy(out, bad, scorer.classes, scorer.concepts)


def _malformed(rng: np.random.Generator):
    """A valid (xz, yz) pair with 0-3 random mutations: dtype, rank, resolution, batch, emptiness, layout, type."""
    n = int(rng.integers(1, 6))
    pair = [(rng.random((n, RES, RES)) * 255).astype(np.uint8) for _ in range(2)]
    if rng.random() < 0.3:
        pair = [p[0] for p in pair]  # one event, (H, W)
    dtypes = [np.int8, np.uint16, np.int32, np.float16, np.float32, np.float64, bool, object, ">u2"]
    for _ in range(int(rng.integers(0, 4))):
        i, kind = int(rng.integers(2)), int(rng.integers(8))
        a = np.asarray(pair[i]) if isinstance(pair[i], list) else pair[i]
        if kind == 0:
            a = a.astype(dtypes[rng.integers(len(dtypes))])
        elif kind == 1:
            a = a.reshape(-1) if rng.random() < 0.5 else a[None, None]
        elif kind == 2:
            a = np.zeros((*a.shape[:-2], int(rng.integers(0, 2 * RES)), int(rng.integers(0, 2 * RES))), a.dtype)
        elif kind == 3:
            a = np.concatenate([np.atleast_3d(a.T).T] * 2) if a.ndim >= 2 else a
        elif kind == 4 and a.ndim >= 1:
            a = a[:0]
        elif kind == 5 and a.ndim >= 2:
            a = np.asfortranarray(a)  # valid, not C-contiguous
        elif kind == 6 and a.ndim >= 2:
            a = np.repeat(a, 2, axis=-1)[..., ::2]  # valid, strided
        elif kind == 7:
            a = a.tolist()
        pair[i] = a
    return pair


def test_fuzz_1000_malformed_inputs(scorer):
    rng = np.random.default_rng(1234)
    scored = 0
    for _ in range(1000):
        xz, yz = _malformed(rng)
        try:
            out = scorer.score(xz, yz)
        except ValueError:
            continue
        scored += 1  # it accepted the input: the result must equal that of clean contiguous copies
        ref = scorer.session.run(["probs"], {"xz": np.ascontiguousarray(xz).reshape(-1, RES, RES),
                                             "yz": np.ascontiguousarray(yz).reshape(-1, RES, RES)})[0]
        np.testing.assert_allclose(np.atleast_2d(out["probs"]), ref, atol=1e-6)
    assert 50 < scored < 950  # both outcomes are exercised, valid inputs often non-contiguous


def test_model_without_contract_metadata_is_refused(model_path, tmp_path):
    model = onnx.load(str(model_path))
    keep = [p for p in model.metadata_props if p.key not in ("classes", "height")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    bad = tmp_path / "bare.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ValueError, match="lacks the contract-3 metadata classes, height"):
        Scorer(bad)


def test_metadata_resolution_must_match_the_graph(model_path, tmp_path):
    model = onnx.load(str(model_path))
    for p in model.metadata_props:
        if p.key == "height":
            p.value = str(RES * 2)
    bad = tmp_path / "lying.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ValueError, match="metadata says"):
        Scorer(bad)


BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'ray'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
try:
    import torch
    raise SystemExit('torch was importable')
except ImportError:
    pass
import numpy as np
from nudistill.online import Scorer
from nudistill.online.latency import measure
import nudistill.online.certify, nudistill.online.dataset
s = Scorer(sys.argv[1])
out = s.score(np.zeros(s.shape, np.uint8), np.zeros(s.shape, np.uint8))
cert = measure(sys.argv[1], calls=20, warmup=2, batch=4)
assert 'torch' not in sys.modules and 'ray' not in sys.modules
print('ok', out['probs'].shape, cert['p99_ms'] > 0)
"""


def test_online_imports_neither_torch_nor_ray(model_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(model_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok (3,) True"


def test_bench_cli_writes_the_certificate(model_path, tmp_path, capsys):
    import shutil

    from nudistill.cli import main
    from nudistill.export import read_metadata

    model = tmp_path / "model.onnx"
    shutil.copy(model_path, model)
    shutil.copy(optimized_path(model_path), optimized_path(model))
    assert main(["bench", str(model), "--calls", "50", "--warmup", "5", "--write-certificate"]) == 0
    cert = json.loads(capsys.readouterr().out)
    assert cert["calls"] == 50 and cert["threads"] == 1 and not cert["imports_torch"]
    assert 0 < cert["p50_ms"] <= cert["p99_ms"] <= cert["max_ms"] and cert["rss_mb"] > 0 and cert["cpu"]
    for path in (model, optimized_path(model)):
        assert json.loads(read_metadata(path)["metrics"])["latency"]["p99_ms"] == cert["p99_ms"]
    assert Scorer(model).path == optimized_path(model)  # still the newer one after the rewrite


@pytest.fixture(scope="module")
def ten_thousand_events(tmp_path_factory) -> Path:
    """10,000 events at 64x64 in 10 shards (1,000 simulated events, re-keyed), with 3 bad rows in the last."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nudistill.simulate import simulate_table

    base = simulate_table(1000, res=64, seed=3)
    out = tmp_path_factory.mktemp("events10k")
    for k in range(10):
        ids = [f"shard{k}-{i:04d}" for i in range(1000)]
        if k == 9:
            ids[0] = "shard0-0000"  # duplicate id
        table = base.set_column(0, "event_id", pa.array(ids, pa.string()))
        if k == 9:
            xz = table.column("xz").to_pylist()
            xz[1] = xz[1][:100]  # wrong byte count
            table = table.set_column(table.schema.get_field_index("xz"), "xz", pa.array(xz, pa.binary()))
            height = table.column("height").to_pylist()
            height[2] = 32  # resolution that the model does not take
            table = table.set_column(table.schema.get_field_index("height"), "height", pa.array(height, pa.int32()))
        pq.write_table(table, out / f"part-{k:05d}.parquet")
    return out


PEAK_RSS = """
import resource, sys
from nudistill.cli import main
rc = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(rc)
"""


@pytest.mark.slow
def test_score_cli_streams_10000_events_with_bounded_memory(ten_thousand_events, tmp_path):
    import pyarrow.parquet as pq
    import torch

    from nudistill.export.pipeline import write_model
    from nudistill.student import create_student

    torch.manual_seed(0)
    model = write_model(create_student("lean_pool4", height=64, width=64).eval(), tmp_path / "m64.onnx",
                        "test-teacher", {"latency": None})
    peaks = {}
    for n in (2000, 10000):
        out = tmp_path / f"scores{n}.parquet"
        proc = subprocess.run([sys.executable, "-c", PEAK_RSS, "score", str(model), str(ten_thousand_events),
                               "--out", str(out), "--limit", str(n)], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        peaks[n] = int(proc.stdout.strip().splitlines()[-1])
    assert "scored 9997 of 10000 events" in proc.stdout and "3 bad row(s)" in proc.stdout
    table = pq.read_table(out)
    assert table.num_rows == 10000
    status = dict(zip(table.column("event_id").to_pylist()[9000:9003], table.column("status").to_pylist()[9000:9003]))
    assert status["shard0-0000"].startswith("error: duplicate_id")
    assert status["shard9-0001"].startswith("error: byte_count")
    assert status["shard9-0002"].startswith("error: bad_shape")
    assert table.column("probs").null_count == 3
    # The 8,000 extra events are 65 MB of pixels, and holding them would cost at least twice that (Arrow
    # buffers + decoded arrays). Streaming keeps the peak flat: measured 270-310 MB for 2,000 to 10,000
    # events at 64x64 (Arrow reads a few files ahead; peaks jitter by ~30 MB from run to run).
    print(f"peak RSS of `nudistill score` in MB by events scored: {peaks}")
    assert peaks[10000] - peaks[2000] < 50, peaks


def test_unloadable_file_is_a_value_error(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        Scorer(bad)
    with pytest.raises(ValueError, match="is not a file"):
        Scorer(tmp_path / "absent.onnx")


@pytest.mark.parametrize("verb", ["export", "score", "bench"])
def test_every_option_has_help(verb):
    import argparse

    from nudistill.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[verb]
    assert parser.description and "Example" in parser.description
    for action in parser._actions:
        assert action.help and len(action.help) > 10, (verb, action.dest)


def test_certificate_is_measured_in_a_clean_process_and_keeps_its_samples(model_path):
    """The report's latency histogram reads these samples, so it shows the certificate's own p50/p99."""
    import torch  # noqa: F401  (loaded here, and still absent from the process that measures)

    from nudistill.errors import UserError
    from nudistill.online.latency import certify

    cert = certify(model_path, calls=40, warmup=2, batch=4)
    assert not cert["imports_torch"] and cert["calls"] == 40
    ms = np.asarray(cert["samples_ms"])
    assert ms.shape == (40,) and (ms > 0).all()
    assert cert["p50_ms"] == pytest.approx(np.percentile(ms, 50), abs=1e-3)
    assert cert["p99_ms"] == pytest.approx(np.percentile(ms, 99), abs=1e-3)
    with pytest.raises(UserError, match="calls must be at least 1"):  # one sentence, not a traceback
        certify(model_path, calls=0)


def test_export_writes_the_certificate_into_what_it_ships(tmp_path):
    """Contract 3: a shipped model carries a non-null latency certificate, in both files, measured before the rename."""
    import torch

    from nudistill.export import ExportConfig, read_metadata
    from nudistill.export.pipeline import write_model
    from nudistill.student import create_student

    assert ExportConfig(checkpoint="ckpt").latency_calls > 0  # on by default: every `nudistill export` certifies
    torch.manual_seed(0)
    student = create_student("lean_pool4", height=RES, width=RES, pool=1).eval()
    out = write_model(student, tmp_path / "model.onnx", "test-teacher", {"latency": None}, latency_calls=30)
    for path in (out, optimized_path(out)):
        cert = json.loads(read_metadata(path)["metrics"])["latency"]
        assert cert["calls"] == 30 and len(cert["samples_ms"]) == 30 and not cert["imports_torch"]
    assert Scorer(out).path == optimized_path(out)  # the rewritten optimised graph is still the newer file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.opt.onnx"]


def test_the_shipping_report_reads_the_certificate_the_model_carries(tmp_path, monkeypatch):
    """The cluster report never times the model in its torch-loaded process: it reads the shipped certificate."""
    import torch

    from nudistill.export.pipeline import write_model
    from nudistill.online import latency
    from nudistill.report.shipping import shipped_certificate
    from nudistill.student import create_student

    torch.manual_seed(0)
    student = create_student("lean_pool4", height=RES, width=RES, pool=1).eval()
    shipped = write_model(student, tmp_path / "model.onnx", "t", {"latency": None}, latency_calls=25)
    monkeypatch.setattr(latency, "certify", lambda *a, **k: pytest.fail("re-measured a certified model"))
    cert = shipped_certificate(shipped)
    assert cert["calls"] == 25 and len(cert["samples_ms"]) == 25
