"""Teacher throughput: the study's one-at-a-time generation against batched single-pass scoring, with and
without the cached prompt prefix.

(a)  paper: one event at a time; the label by constrained generation (each class phrase scored with its
     own full forward, image re-encoded each time), then its rationale with ``model.generate``;
(b0) batched, prefix not cached: ``Teacher.score`` with ``use_prefix_cache`` off (vision once per event,
     the whole prompt and the 3 phrases packed behind it in one forward per event);
(b)  batched: ``Teacher.score`` as it labels, the prompt's text before the images run once per teacher;
(c)  (b) plus rationales for 10% of events (``Teacher.label`` with ``fraction:0.1``).
Every method gets the views as a labelling replica does: prepared (pooled to the teacher's tile, cosmic muons
cleared: ``Teacher.prepare``), which the label job does on CPU workers ahead of the replicas; (prep) times that
step alone.

Same events, same teacher object, one run. Prints JSON with events/s and the ratios to (a) (target: b/a >= 25
on the default demo's teacher) and of b to b0, each by wall time and by this process's CPU time (with one
thread, the work done even on a shared machine), and how far (b) and (b0) differ in log-probs; and b/a with
(prep) added to both, as if one core did both.

Run: .venv/bin/python bench/teacher.py --teacher runs/demo/teacher/model --n 128 --threads 1
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
    """One event at a time: three teacher-forced phrase passes, then greedy generate of the rationale. ``views``
    are prepared (``Teacher.prepare``), as a labelling replica receives them."""
    from nudistill.teacher.core import unshared_phrase_logprobs
    from nudistill.teacher.inputs import answer_head, encode_prompt, to_images

    out = []
    for i in range(len(views)):
        one = views[i: i + 1]
        enc = encode_prompt(teacher.processor, teacher.prompt, one, teacher.spec.view_size, prepared=True)
        c = int(np.argmax(unshared_phrase_logprobs(teacher.model, enc, teacher.table.tokens)))
        text = teacher.prompt + answer_head(teacher.spec.phrases()[c])
        enc = teacher.processor(images=to_images(one), text=[text], add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = teacher.model.generate(**enc, max_new_tokens=teacher.spec.max_new_tokens, do_sample=False,
                                         pad_token_id=teacher.tokenizer.pad_token_id)
        out.append((c, teacher.tokenizer.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)))
    return out


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, this process's CPU seconds, result): with one torch thread, CPU time is the work done,
    whatever else shares the machine."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


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
    raw, ids = decode_views(table), table.column("event_id").to_pylist()
    for cached in (False, True):  # warm-up, and the prefix cache built and checked before any timing
        teacher.use_prefix_cache = cached
        teacher.score(raw[:2])
    wall, cpu, out = {}, {}, {}

    def run(name, fn, cached=True):
        teacher.use_prefix_cache = cached
        wall[name], cpu[name], out[name] = timed(fn)

    run("prep", lambda: teacher.prepare(raw))
    views = out["prep"]
    run("a", lambda: paper_method(teacher, views))
    run("b0", lambda: teacher.logprobs(views, prepared=True), cached=False)
    run("b", lambda: teacher.logprobs(views, prepared=True))
    run("c", lambda: teacher.label(views, ids, RationalePolicy.parse("fraction:0.1"), prepared=True))
    probs = teacher.probs_from_logprobs(out["b"])
    n = len(views)
    names = dict(prep="prep", a="a_paper", b0="b0_batched_uncached", b="b_batched_score",
                 c="c_batched_plus_10pct_rationales")
    report = dict(events=n, res=args.res, threads=args.threads, batch_size=args.batch_size,
                  teacher=teacher.teacher_id, prompt_tokens=int(teacher.encode(views[:1])["input_ids"].shape[1]),
                  prefix_tokens_cached=teacher.prefix.length if teacher.prefix is not None else 0)
    for clock, seconds in (("", wall), ("cpu_", cpu)):
        report.update({f"{clock}{names[k]}_events_per_s": n / seconds[k] for k in names})
        report.update({f"{clock}ratio_{k}_over_a": seconds["a"] / seconds[k] for k in ("b0", "b", "c")})
        report[f"{clock}ratio_b_over_b0"] = seconds["b0"] / seconds["b"]
        with_prep = (seconds["a"] + seconds["prep"]) / (seconds["b"] + seconds["prep"])
        report[f"{clock}ratio_b_over_a_prep_on_the_same_core"] = with_prep
    report.update(max_abs_logprob_diff_b_b0=float(np.abs(out["b"] - out["b0"]).max()),
                  rationales_in_c=sum(r is not None for r in out["c"]["rationale"]),
                  argmax_agreement_a_b=float(np.mean([c == p for (c, _), p in zip(out["a"], probs.argmax(1))])),
                  mean_rationale_chars_a=float(np.mean([len(t) for _, t in out["a"]])))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
