"""Where the concept chain loses a concept: per-concept AUC against truth at each link, on held-out events; prints JSON.

The student learns concepts from the teacher's rationales, so a concept the student cannot rank may be lost at
any of these links, each measured on the same ``--test-events``:

(0) ``charge_probe``: the views the teacher reads (max-pooled to its tile), before any model. A logistic
    regression on the counts of pixels in each ADC band (``ADC_BANDS``: sub-MIP, MIP, 1.3 MIP, heavily
    ionising, saturated) of each view, fitted and scored as (1): what the charge alone carries;
(1) ``tower_probe``: the teacher's vision tower. A logistic regression on the mean and max of its output
    tokens, fitted on ``--train-events`` (truth concepts), scored on the test events: what the image features
    carry, whatever the decoder makes of them;
(2) ``rationale``: the teacher's greedy rationales after its own label, read by ``concepts_in_text``, as the
    labelling job writes them (a 0/1 score: its AUC is (TPR + TNR) / 2). Also the rate at which each concept
    is named against its truth rate: a concept named in every event carries nothing;
(3) one entry per ``--student``: a student checkpoint or exported ONNX model's concept outputs. A student
    trained on truth concepts (``nudistill distill --concept-source truth``) gives the ceiling of its own
    front end; one trained on the teacher's labels, what distillation passed on.

Run (on a demo's run directory; add students as you train them)::

    .venv/bin/python bench/concepts.py --teacher runs/demo/teacher/model --train-events runs/demo/simulate/train \\
        --test-events runs/demo/simulate/test --student runs/demo/distill --student runs/demo/export/model.onnx

Tiny CPU run: ``nudistill simulate --n 200 --res 64`` twice, an untrained ``nudistill teacher init --out t0``,
``--teacher t0 --probe-events 150``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", required=True, help="teacher directory (or hub id)")
    p.add_argument("--train-events", required=True, help="events with truth concepts to fit the tower probe on")
    p.add_argument("--test-events", required=True, help="held-out events with truth concepts")
    p.add_argument("--student", action="append", default=[], help="student checkpoint dir or .onnx (repeatable)")
    p.add_argument("--probe-events", type=int, default=1500, help="training events for the probe (default 1500)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many test events")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return p.parse_args(argv)


ADC_BANDS = (1, 30, 45, 60, 90, 150, 250, 256)
"""Band edges in ADC (a MIP crossing one pixel gives ~38 at the nominal gain; 255 is saturation)."""


def charge_features(views: np.ndarray) -> np.ndarray:
    """(N, 2, H, W) uint8 -> (N, 2 * bands) log1p counts of the pixels of each view in each ADC band."""
    edges = np.asarray(ADC_BANDS)
    counts = [np.stack([((v >= lo) & (v < hi)).sum((-2, -1)) for lo, hi in zip(edges[:-1], edges[1:])], -1)
              for v in (views[:, 0], views[:, 1])]
    return np.log1p(np.concatenate(counts, 1).astype(np.float64))


def tower_features(teacher, views: np.ndarray) -> np.ndarray:
    """(N, 2D) mean and max over the vision tower's output tokens of prepared views ``(N, 2, h, w)``."""
    import torch

    from nudistill.teacher.trainer import vision_tokens

    out = []
    with torch.no_grad():
        for i in range(0, len(views), 64):
            h = vision_tokens(teacher.model, teacher.processor, views[i: i + 64]).float()  # (B, T, D)
            out.append(torch.cat([h.mean(1), h.amax(1)], 1).numpy())
    return np.concatenate(out)


def probe_auc(train_x, train_c, test_x, test_c) -> dict:
    """Per-concept AUC of a logistic regression per concept (standardised features, C=0.1)."""
    from sklearn.linear_model import LogisticRegression

    from nudistill import CONCEPTS
    from nudistill.metrics import concept_auc

    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    scores = np.zeros(test_c.shape, np.float32)
    for k in range(len(CONCEPTS)):
        if 0 < train_c[:, k].sum() < len(train_c):
            clf = LogisticRegression(C=0.1, max_iter=2000).fit((train_x - mu) / sd, train_c[:, k])
            scores[:, k] = clf.predict_proba((test_x - mu) / sd)[:, 1]
    return concept_auc(test_c, scores)


def rationale_links(teacher, views: np.ndarray, truth: np.ndarray) -> dict:
    """AUC of the greedy rationales' concepts, and each concept's named rate against its truth rate."""
    from nudistill import CONCEPTS
    from nudistill.concepts import concepts_in_text
    from nudistill.events import concepts_to_multi_hot
    from nudistill.metrics import concept_auc

    probs = teacher.score(views, prepared=True)
    named = concepts_to_multi_hot([concepts_in_text(r) for r in
                                   teacher.rationales(views, probs.argmax(1), prepared=True)])
    rates = {c: {"named": round(float(named[:, k].mean()), 3), "truth": round(float(truth[:, k].mean()), 3)}
             for k, c in enumerate(CONCEPTS)}
    return {"auc": concept_auc(truth, named), "rates": rates}, probs


def main(argv=None) -> dict:
    args = parse(argv)
    import torch

    from nudistill.events import concepts_to_multi_hot
    from nudistill.student.evaluate import evaluate
    from nudistill.teacher.data import load_labelled
    from nudistill.teacher.loading import load_teacher

    torch.set_num_threads(args.threads)
    teacher = load_teacher(args.teacher)
    size = teacher.spec.view_size
    train = load_labelled(args.train_events, limit=args.probe_events, view_size=size)
    test = load_labelled(args.test_events, limit=args.limit, view_size=size)
    train_c, test_c = concepts_to_multi_hot(train.concepts), concepts_to_multi_hot(test.concepts)
    out: dict = {"teacher": str(args.teacher), "test_events": len(test), "probe_train_events": len(train)}
    out["charge_probe"] = probe_auc(charge_features(train.views), train_c, charge_features(test.views), test_c)
    out["tower_probe"] = probe_auc(tower_features(teacher, train.views), train_c,
                                   tower_features(teacher, test.views), test_c)
    out["rationale"], probs = rationale_links(teacher, test.views, test_c)
    out["teacher_accuracy"] = float((probs.argmax(1) == test.y).mean())
    out["students"] = {s: evaluate(s, args.test_events, limit=args.limit)["full"]["concept_auc"] for s in args.student}
    return out


def rounded(x):
    """``x`` with every float rounded to 3 places (JSON for reading)."""
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return round(x, 3) if isinstance(x, float) else x


if __name__ == "__main__":
    print(json.dumps(rounded(main(sys.argv[1:])), indent=1))
