"""nudistill.metrics on small hand-checkable arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nudistill import metrics


def test_accuracy_agreement_and_confusion():
    y = np.array([0, 1, 2, 2])
    p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .6, .3], [.1, .1, .8]])
    assert metrics.accuracy(y, p) == 0.75
    assert metrics.agreement(p, np.eye(3)[[0, 1, 1, 2]]) == 1.0
    assert metrics.confusion(y, p) == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    pr = metrics.precision_recall(y, p)
    assert pr["numu_cc"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert pr["nc"]["recall"] == 0.5


def test_macro_auc_perfect_and_single_class():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.eye(3)[y] * 0.9 + 0.1 / 3
    assert metrics.macro_auc(y, p) == 1.0
    assert math.isnan(metrics.macro_auc(np.zeros(3, int), p[:3]))


def test_ece_by_hand():
    # two bins: conf 0.9 (2 rows, 1 correct: gap 0.4) and conf 0.6 (2 rows, both correct: gap 0.4)
    y = np.array([0, 1, 0, 0])
    p = np.array([[.9, .05, .05], [.9, .05, .05], [.6, .2, .2], [.6, .2, .2]])
    assert metrics.ece(y, p, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert metrics.ece(np.array([0]), np.array([[1.0, 0, 0]])) == 0.0


def test_concept_auc_skips_single_class_concepts():
    t = np.array([[1, 0], [0, 0], [1, 0]], float)
    s = np.array([[.9, .1], [.2, .3], [.8, .5]])
    out = metrics.concept_auc(t, s, names=("a", "b"))
    assert out == {"a": 1.0, "b": None, "macro": 1.0}


def test_classification_report_is_json_ready():
    import json

    y = np.array([0, 1, 2])
    rep = metrics.classification_report(y, np.eye(3)[y], reference=np.eye(3)[y])
    assert rep["accuracy"] == 1.0 and rep["agreement"] == 1.0
    json.dumps(rep)
