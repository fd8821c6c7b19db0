"""`nudistill demo --quick`, interrupted mid-stage and rerun: it resumes without redoing finished
stages, and every stage's output holds to its contract (events, labels, ONNX, report, final JSON)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from demo_background import DEMO_KEY
from nudistill import CLASSES, CONCEPTS
from nudistill.events import Validator, check_schema, iter_batches
from nudistill.labels import LABEL_SCHEMA, probs_matrix

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def demo_run(request):
    """The quick demo, interrupted inside the teacher stage and rerun to the end; yields (run, rerun log).

    conftest started it when collection ended, so that it runs beside the rest of the suite."""
    demo = request.config.stash.get(DEMO_KEY, None)
    assert demo is not None, "conftest starts the quick demo when a test of test_demo.py is selected"
    res = demo.outcome()
    assert not res.error, res.error
    assert res.killed_inside_teacher, "the first run was not killed between simulate and teacher"
    assert res.returncode == 0, res.output[-4000:]
    assert res.simulate_untouched, "the rerun redid the finished simulate stage"
    return res.run, res.output


def test_rerun_skips_finished_stages_and_prints_the_final_table(demo_run):
    run, output = demo_run
    assert "[1/10] simulate   done earlier, skipped" in output
    assert "[2/10] teacher    ..." in output
    for words in ("accuracy, full res", "accuracy, half res", "macro AUC", "agreement", "p50", "speed-up per event"):
        assert words in output


def test_events_hold_contract_1(demo_run):
    run, _ = demo_run
    for name in ("train", "calib", "test"):
        validate = Validator()
        for batch in iter_batches(run / "simulate" / name, batch_size=128):
            check_schema(batch.schema, name)
            ok, _ = validate(batch)
            assert ok.all()


def test_labels_hold_contract_2(demo_run):
    run, _ = demo_run
    table = pq.read_table(sorted((run / "label").glob("part-*.parquet")))
    assert table.schema.equals(LABEL_SCHEMA)
    n_train = pq.read_table(run / "simulate" / "train", columns=["event_id"]).num_rows
    assert table.num_rows == n_train == len(set(table.column("event_id").to_pylist()))
    np.testing.assert_allclose(probs_matrix(table).sum(1), 1.0, atol=1e-5)
    summary = json.loads((run / "label" / "summary.json").read_text())
    assert summary["ok"] == n_train and summary["replicas"] and len(summary["replicas"]) <= 2


def test_onnx_holds_contract_3(demo_run):
    import onnxruntime as ort

    run, _ = demo_run
    sess = ort.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(CLASSES) and json.loads(meta["concepts"]) == list(CONCEPTS)
    assert {"height", "width", "teacher", "student", "metrics", "nudistill_version", "created"} <= set(meta)
    assert [i.name for i in sess.get_inputs()] == ["xz", "yz"] and [o.name for o in sess.get_outputs()] == ["probs", "concepts"]
    # calibrated on the 128 calib events under the nominal and a randomised readout
    calibration = json.loads((run / "distill" / "calibration.json").read_text())
    student = json.loads(meta["student_config"])
    assert calibration["n"] == 256 and student["logit_scale"] == pytest.approx(1 / calibration["temperature"])
    assert student["logit_bias"] == pytest.approx(calibration["bias"]) and calibration["nll_after"] <= calibration["nll_before"]
    # concepts from the probe fitted on the truth of every simulated event outside the test set (both readouts)
    probe = json.loads((run / "distill" / "concept_probe.json").read_text())
    n_fit = sum(pq.read_table(run / "simulate" / s, columns=["event_id"]).num_rows
                for s in ("train", "train_randomized", "calib", "calib_randomized"))
    assert student["concept_probe"] == probe["hidden"] == 32 and probe["n"] == n_fit
    latency = json.loads(meta["metrics"])["latency"]  # contract 3: every shipped model carries its certificate
    assert latency and latency["p99_ms"] >= latency["p50_ms"] > 0 and len(latency["samples_ms"]) >= 100


def test_report_has_every_figure(demo_run):
    run, _ = demo_run
    md = (run / "report" / "report.md").read_text()
    assert "## Student calibration" in md and "fitted (bias) on 256 labelled events" in md
    assert "From the concept probe fitted on the truth concepts of" in md
    for png in ("roc.png", "confusion.png", "reliability.png", "latency.png", "resolution.png", "examples.png",
                "robustness.png"):
        path = run / "report" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000, png
        assert f"]({png})" in md
    assert "VLM teacher (paper)" in md and "Different datasets" in md


def test_final_json_is_sane(demo_run):
    run, _ = demo_run
    s = json.loads((run / "summary.json").read_text())
    for key in ("teacher_accuracy", "student_accuracy", "teacher_accuracy_half", "student_accuracy_half",
                "teacher_auc", "student_auc", "agreement"):
        assert 0.0 <= s[key] <= 1.0, key
    # a student at chance (1/3) or one that ignores its teacher must fail here, not only a broken file
    assert s["student_accuracy"] >= 0.5 and s["student_auc"] >= 0.75, s
    assert s["agreement"] >= 0.55 and s["teacher_accuracy"] >= 0.55, s
    assert 0 < s["student_p50_ms"] <= s["student_p99_ms"]
    assert s["teacher_events_per_s"] > 0 and s["speedup_per_event"] > 1
