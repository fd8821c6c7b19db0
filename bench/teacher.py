"""Teacher throughput: the study's one-at-a-time generation against batched single-pass scoring.

(a) paper: one event at a time; the label by constrained generation (each class phrase scored with its
    own full forward, image re-encoded each time), then its rationale with ``model.generate``;
(b) batched: ``Teacher.score`` (vision once per event, prompt KV cache shared by the 3 phrases);
(c) batched scoring plus rationales for 10% of events (``Teacher.label`` with ``fraction:0.1``).
Same events, same teacher. Prints JSON with events/s and the ratios b/a and c/a (goal: b/a >= 10).

Run: .venv/bin/python bench/teacher.py --teacher teacher1 --n 64 --threads 1
     (no --teacher: builds an untrained tiny teacher, whose rationales run to max_new_tokens)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch


def paper_method(teacher, views: np.ndarray) -> list[tuple[int, str]]:
    """One event at a time: three teacher-forced phrase passes, then greedy generate of the rationale."""
    from nudistill.teacher.core import unshared_phrase_logprobs
    from nudistill.teacher.inputs import answer_head, encode_prompt, pool_views, to_images

    out = []
    for i in range(len(views)):
        one = views[i: i + 1]
        enc = encode_prompt(teacher.processor, teacher.prompt, one, teacher.spec.view_size)
        c = int(np.argmax(unshared_phrase_logprobs(teacher.model, enc, teacher.table.tokens)))
        text = teacher.prompt + answer_head(teacher.spec.phrases()[c])
        enc = teacher.processor(images=to_images(pool_views(one, teacher.spec.view_size)), text=[text],
                                add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = teacher.model.generate(**enc, max_new_tokens=teacher.spec.max_new_tokens, do_sample=False,
                                         pad_token_id=teacher.tokenizer.pad_token_id)
        out.append((c, teacher.tokenizer.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)))
    return out


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", help="teacher directory (default: a fresh tiny teacher)")
    ap.add_argument("--n", type=int, default=64, help="events (default 64)")
    ap.add_argument("--res", type=int, default=512, help="simulated pixel-map side (default 512)")
    ap.add_argument("--batch-size", type=int, default=16, help="batch for (b) and (c) (default 16)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nudistill.events import decode_views
    from nudistill.simulate import simulate_table
    from nudistill.teacher import RationalePolicy, load_teacher
    from nudistill.teacher.tiny import build_tiny_teacher

    path = args.teacher or build_tiny_teacher(tempfile.mkdtemp(prefix="bench_teacher_"))
    teacher = load_teacher(path, device="cpu")
    teacher.batch_size = args.batch_size
    table = simulate_table(args.n, res=args.res, seed=2024)
    views, ids = decode_views(table), table.column("event_id").to_pylist()
    teacher.score(views[:2])  # warm-up
    t_a, paper = timed(lambda: paper_method(teacher, views))
    t_b, probs = timed(lambda: teacher.score(views))
    t_c, labelled = timed(lambda: teacher.label(views, ids, RationalePolicy.parse("fraction:0.1")))
    agree = float(np.mean([c == p for (c, _), p in zip(paper, probs.argmax(1))]))
    n = len(views)
    print(json.dumps(dict(
        events=n, res=args.res, threads=args.threads, batch_size=args.batch_size, teacher=teacher.teacher_id,
        a_paper_events_per_s=n / t_a, b_batched_score_events_per_s=n / t_b,
        c_batched_plus_10pct_rationales_events_per_s=n / t_c,
        ratio_b_over_a=t_a / t_b, ratio_c_over_a=t_a / t_c,
        rationales_in_c=sum(r is not None for r in labelled["rationale"]),
        argmax_agreement_a_b=agree,
        mean_rationale_chars_a=float(np.mean([len(t) for _, t in paper])),
    ), indent=1))


if __name__ == "__main__":
    main()
