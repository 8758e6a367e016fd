"""mnemonet's slow-point finder against a reimplementation of fixed-point-finder's optimisation loop.

The reference is written here from the description of mattgolub/fixed-point-finder's torch loop (no code
copied): one ``torch.optim.Adam`` over all states jointly on the mean of q = ½‖F(h, I) − h‖², learning rate
1.0 cut by 0.95 after 2 evaluations without improvement of the mean (``ReduceLROnPlateau``), stopping when every
point has q < 1e-12 or |Δq| < 1e-20 · lr, or after 5000 iterations, in float32. mnemonet's finder runs with its
defaults (per-point plateau schedule, bounds, float64 polish). Both start from the same states of the same GRU:
end-of-delay states of a trained delayed-recall run (noise σ = 0.01) and states near its attractor. One torch
thread, the two interleaved over rounds; reported: time and its ratio, the q reached (evaluated in float64),
the fraction below 1e-20, the fraction each calls converged, and the fraction left inside the GRU's |h| ≤ 1.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_slow_points.py RUN [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mnemonet.analysis import answer_offset, run_trajectories
from mnemonet.analysis.dynamics import speed
from mnemonet.analysis.slow_points import find_attractors, find_slow_points
from mnemonet.app import load_run


def reference_loop(model: Any, x: torch.Tensor, h0: torch.Tensor, max_iters: int = 5000) -> tuple[torch.Tensor, int]:
    """fixed-point-finder's joint optimisation (see the module docstring); returns the states and iterations."""
    for p in model.parameters():
        p.requires_grad_(False)
    h = h0.clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.95, patience=2, cooldown=0)
    q_prev = torch.full((h.shape[0],), float("nan"))
    it = 1
    while True:
        q = speed(model, h, x)  # (K,)
        loss = q.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss.item())
        lr = opt.param_groups[0]["lr"]
        qd = q.detach()
        if it > 1 and bool(((qd - q_prev).abs() < 1e-20 * lr).logical_or(qd < 1e-12).all()):
            break
        if it + 1 > max_iters:
            break
        q_prev = qd
        it += 1
    for p in model.parameters():
        p.requires_grad_(True)
    return h.detach(), it


def _q64(model: Any, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    m64 = __import__("copy").deepcopy(model).double()
    with torch.no_grad():
        return speed(m64, h.double(), x.double())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained delayed-recall GRU run folder (e.g. from mnemonet demo)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run, "last")
    model, task = run.model.eval(), run.task
    g = torch.Generator().manual_seed(0)
    b = task.sample(256, g, "test")
    traj = run_trajectories(model, b.x, labels=b.info["labels"], ts=b.info["ts"], ta=b.info["ta"],
                            answer_offset=answer_offset(b))  # fmt: skip
    x = torch.full((model.input_size,), float(task.noise_mean))
    x[task.image_size] = 0.0
    ends = traj.end_of_delay().detach()
    fixed = find_attractors(model, x, ends, 300).points.states[:1].float()
    starts = {
        "class clouds (128)": ends[:128] + 0.01 * torch.randn(128, ends.shape[1], generator=g),
        "near the attractor (32)": fixed + 0.01 * torch.randn(32, ends.shape[1], generator=g),
    }
    low, high = model.state_bounds()
    rows: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for name, h0 in starts.items():
            for finder in ("fixed-point-finder loop", "mnemonet"):
                t0 = time.perf_counter()
                if finder == "mnemonet":
                    sp = find_slow_points(model, x, h0, unique_tol=None, outlier_scale=None, compute_jacobians=False)
                    h, conv, its = sp.states, sp.converged, sp.iterations.float().mean().item()
                else:
                    h, it = reference_loop(model, x[None], h0)
                    conv = None
                    its = it
                seconds = time.perf_counter() - t0
                q = _q64(model, x, h)
                low_q = float((q <= 1e-20).double().mean())
                inside = ((h.double() >= low.double()) & (h.double() <= high.double())).all(-1)
                rows.setdefault((name, finder), []).append({
                    "seconds": seconds, "median_q": float(q.median()), "below_1e-20": low_q,
                    "converged": None if conv is None else float(conv.double().mean()),
                    "in_bounds": float(inside.double().mean()), "iterations": its})  # fmt: skip
    print("| starts | finder | time (s) | median q (float64) | q ≤ 1e-20 | converged (own rule) | in bounds "
          "| iterations |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for (name, finder), rs in rows.items():
        r = rs[-1]
        conv = "n/a (joint stop)" if r["converged"] is None else f"{100 * r['converged']:.0f}%"
        t = statistics.median(x["seconds"] for x in rs)
        print(f"| {name} | {finder} | {t:.2f} | {r['median_q']:.2e} | {100 * r['below_1e-20']:.0f}% | {conv} "
              f"| {100 * r['in_bounds']:.0f}% | {r['iterations']:.0f} |")  # fmt: skip
    for name in starts:
        ratios = [a["seconds"] / b["seconds"] for a, b in
                  zip(rows[(name, "fixed-point-finder loop")], rows[(name, "mnemonet")], strict=True)]  # fmt: skip
        print(
            f"{name}: time of the fixed-point-finder loop / mnemonet = {statistics.median(ratios):.2f} "
            f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


if __name__ == "__main__":
    main()
