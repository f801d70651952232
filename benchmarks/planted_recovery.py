"""Planted-permutation recovery of every matcher (workflow/alignment/matchers.py): how often does
each find the permutation that was planted, and how far is it when it does not?

    python benchmarks/planted_recovery.py [--source trained|init] [--trials 10] [--noise 0 0.1]
        [--depths 1 2 4 8] [--width 64] [--resnet-widths 1 4] [--matchers weight weight+restarts5 ...]
        [--ste-steps 30] [--doc [--block trained|init|ste]] [--figure docs/figures/planted-recovery.png]

Networks: MLPs 64-W-...-10 of each depth and ResNet20s of each width multiplier on the embedded
digits (8x8 images), either trained (Adam, the workflow's MAP training: --epochs, seed 0) or at
their seeded initialisation (--source init). For every trial t and noise scale s the benchmark
plants random permutations P_t of every group (numpy seed t), forms

    B = P_t(A) + s * std(A's parameter) * N(0, 1)      (per parameter, numpy seed [t, 1])

and asks every matcher to align B to A (activation matchers compare the hidden units on the first
--points training digits; the straight-through matcher trains --ste-steps steps on them). Per matcher, network and noise scale, over the trials:
- recovered: the share of trials whose permutations all equal P_t's inverse;
- residual NoT: the transpositions left between the found and the planted permutations, per 100
  hidden units (mean); 0 when recovered;
- objective gap: (J(planted) - J(found)) / |J(planted)|, J the weight-matching objective <A, P(B)>
  (mean): 0 at the planted optimum, negative when the noise made another permutation score
  higher than the planted one (then no weight matcher should return the planted one);
- seconds per alignment (median);
- with a loss matcher among --matchers, for every matcher: the training loss (on the --points
  digits) at the midpoint of A and B aligned, minus that at the planted permutation's midpoint
  (mean): a loss matcher's miss with a negative difference is its objective at work (it found a
  lower midpoint than the planted one), not a failed search.
git-re-basin issue #8 planted permutations into untrained residual nets without noise and
recovered 10 of 100: `--source init --noise 0` repeats that setting on ResNet20.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO  # noqa: E402
from doc_blocks import Transcript, stamp, write_block  # noqa: E402

DOC = REPO / "docs" / "alignment.md"
# --block -> the block of docs/alignment.md it writes (default: --source's); the straight-through
# matcher trains at every step, far slower than the others, so it has a block of its own
BLOCKS = {"trained": "planted-recovery-trained", "init": "planted-recovery-init", "ste": "planted-recovery-ste"}


def networks(depths, width: int, resnet_widths) -> list[tuple[str, str, dict]]:
    """(label, architecture, its arguments) of every network of the benchmark."""
    nets = [(f"MLP {depth} x {width}", "mlp", {"hidden": [width] * depth}) for depth in depths]
    return nets + [(f"ResNet20 x{w}", "resnet20", {"width": w}) for w in resnet_widths]


def parse_matcher(text: str) -> tuple[str, int]:
    """'weight' -> ('weight', 1); 'weight+restarts5' -> ('weight', 5)."""
    from workflow.alignment import matchers

    name, _, extra = text.partition("+restarts")
    matchers.get(name)  # refuses an unknown name, listing the allowed ones
    if extra and (not extra.isdigit() or int(extra) < 1):
        raise ValueError(f"matcher {text!r}: '+restartsN' needs a whole number N >= 1")
    if extra and matchers.get(name).compares != matchers.WEIGHTS:
        raise ValueError(f"matcher {text!r}: restarts apply to weight matchers only")
    return name, int(extra or 1)


def build(architecture: str, args: dict, data, source: str, epochs: int):
    """(model, its parameters as float64 numpy arrays, spec)."""
    import torch

    from workflow.architectures import build_model
    from workflow.inference.training import MapSettings, reset_parameters, train_map

    model, spec = build_model(architecture, tuple(data.input_shape), data.n_classes, **args)
    if source == "trained":
        x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
        train_map(model, x, y, MapSettings(epochs=epochs, batch_size=64, lr=1e-3, checkpoint_every=0), seed=0,
                  device=torch.device("cpu"))
    else:
        reset_parameters(model, 0)
    params = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in model.named_parameters()}
    return model, params, spec


def plant(params: dict, spec, noise: float, trial: int):
    """(B, the planted permutations)."""
    from workflow.alignment.permutations import apply_permutation, random_permutations

    planted = random_permutations(spec.group_sizes(params), np.random.default_rng(trial))
    rng = np.random.default_rng([trial, 1])
    b = apply_permutation(params, spec, planted)
    if noise > 0:
        b = {k: v + noise * params[k].std() * rng.standard_normal(v.shape) for k, v in b.items()}
    return b, planted


def align(matcher: str, restarts: int, a: dict, b: dict, spec, activations, trains) -> dict:
    """The permutations ``matcher`` finds; ``trains(match, a, b)`` runs a loss matcher on the data."""
    from workflow.alignment import matchers

    m = matchers.get(matcher)
    if m.compares == matchers.ACTIVATIONS:
        return m.match(activations(a), activations(b))
    if m.compares == matchers.LOSS:
        return trains(m.match, a, b).perms
    return m.match(a, b, spec, seed=0, restarts=restarts).perms


def score(a: dict, b: dict, spec, planted: dict, found: dict, midpoint=None) -> dict:
    """Recovery, residual NoT and objective gap; with ``midpoint(perms)`` (the training loss at the midpoint
    of A and B so permuted) also the found midpoint's loss minus the planted one's: a loss matcher that
    misses with a negative difference found what it optimises, a lower midpoint, not a search failure."""
    from workflow.alignment.matching import checked_channels, objective
    from workflow.alignment.permutations import invert, number_of_transpositions

    truth = {g: invert(p) for g, p in planted.items()}
    # aligned[i] = B[found[i]] = A[planted[found[i]]]: planted[found] is the identity when recovered
    residual = sum(number_of_transpositions(planted[g][found[g]]) for g in planted)
    channels = checked_channels(a, b, spec)
    j_truth, j_found = objective(channels, spec, truth), objective(channels, spec, found)
    out = {"recovered": all(np.array_equal(found[g], truth[g]) for g in truth), "residual_not": residual,
           "gap": (j_truth - j_found) / abs(j_truth)}
    if midpoint is not None:
        out["midpoint_gap"] = midpoint(found) - midpoint(truth)
    return out


def run(opts) -> list[dict]:
    import torch

    from workflow import architectures
    from workflow.alignment import matchers
    from workflow.config import load_config
    from workflow.storage.datasets import load_dataset

    torch.set_num_threads(opts.threads)
    d = load_config(REPO / "config.yaml")["data"]
    data = load_dataset(d["dataset"], d["root"], split_seed=d["split_seed"], test_fraction=d["test_fraction"],
                        n_train=d["n_train"], n_test=d["n_test"], download=False)
    x = torch.as_tensor(data.x_train[:opts.points])
    y = torch.as_tensor(data.y_train[:opts.points])
    rows = []
    # with a loss matcher among them, every matcher's midpoint loss is compared with the planted one's
    loss_matchers = any(matchers.get(parse_matcher(t)[0]).compares == matchers.LOSS for t in opts.matchers)
    for label, architecture, args in networks(opts.depths, opts.width, opts.resnet_widths):
        model, a, spec = build(architecture, args, data, opts.source, opts.epochs)
        hook = architectures.hook(architecture, "hidden_activations")

        def activations(params, hook=hook, model=model):
            return hook(model, params, x)

        def trains(match, a_, b_, model=model, spec=spec):
            return match(model, a_, b_, spec, x, y, seed=0, steps=opts.ste_steps)

        def midpoint_of(a_, b_, model=model, spec=spec):
            from workflow.alignment.permutations import apply_permutation
            from workflow.alignment.straight_through import midpoint_loss
            from workflow.evaluation.predict import to_torch

            return lambda perms: midpoint_loss(model, to_torch(a_), to_torch(apply_permutation(b_, spec, perms)),
                                                x, y)

        units = sum(spec.group_sizes(a).values())
        for noise in opts.noise:
            trials = [plant(a, spec, noise, t) for t in range(opts.trials)]
            for text in opts.matchers:
                matcher, restarts = parse_matcher(text)
                scores, seconds = [], []
                for b, planted in trials:
                    start = time.perf_counter()
                    found = align(matcher, restarts, a, b, spec, activations, trains)
                    seconds.append(time.perf_counter() - start)
                    scores.append(score(a, b, spec, planted, found, midpoint_of(a, b) if loss_matchers else None))
                rows.append({"network": label, "units": units, "noise": noise, "matcher": text,
                             "recovered": np.mean([s["recovered"] for s in scores]),
                             "residual_not_per_100": 100 * np.mean([s["residual_not"] for s in scores]) / units,
                             "gap": np.mean([s["gap"] for s in scores]), "seconds": statistics.median(seconds),
                             **({"midpoint_gap": np.mean([s["midpoint_gap"] for s in scores])}
                                if loss_matchers else {})})
                print(f"{label}, noise {noise:g}, {text}: recovered {rows[-1]['recovered']:.0%}", file=sys.stderr,
                      flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    midpoint = "midpoint_gap" in rows[0]
    lines = ["| network | hidden units | noise | matcher | recovered | residual NoT per 100 units | objective gap "
             + ("| midpoint loss - planted's " if midpoint else "") + "| s per alignment |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if midpoint else "")]
    for r in rows:
        lines.append(f"| {r['network']} | {r['units']} | {r['noise']:g} | {r['matcher']} | {r['recovered']:.0%} "
                     f"| {r['residual_not_per_100']:.3g} | {r['gap']:.3g} | "
                     + (f"{r['midpoint_gap']:.3g} | " if midpoint else "") + f"{r['seconds']:.3g} |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({r["noise"] for r in rows})
    nets = list(dict.fromkeys(r["network"] for r in rows))
    matchers = list(dict.fromkeys(r["matcher"] for r in rows))
    fig, axes = plt.subplots(1, len(noises), figsize=(5.5 * len(noises), 4), squeeze=False, sharey=True)
    for ax, noise in zip(axes[0], noises):
        for k, m in enumerate(matchers):
            ys = [next(r["recovered"] for r in rows if r["network"] == n and r["matcher"] == m and r["noise"] == noise)
                  for n in nets]
            ax.plot(range(len(nets)), ys, marker="o", label=m, alpha=0.8, zorder=3 + k)
        ax.set_xticks(range(len(nets)), nets, rotation=40, ha="right")
        ax.set_title(f"noise {noise:g} x the parameter's std")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("planted permutation recovered (share of trials)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    from workflow.alignment import matchers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("trained", "init"), default="trained")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1], help="noise scales s (see above)")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--width", type=int, default=64, help="hidden units per MLP layer")
    parser.add_argument("--resnet-widths", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--matchers", nargs="+",
                        default=["weight", "weight+restarts5", *matchers.names(matchers.SAMPLE_MATCHERS)[1:]],
                        help=f"of {matchers.names()}; 'NAME+restartsN' adds restarts to a weight matcher (default: "
                             f"all but the loss matchers, which train at every step)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of each network (--source trained)")
    parser.add_argument("--points", type=int, default=256,
                        help="training digits the activation matchers compare and the loss matchers train on")
    parser.add_argument("--ste-steps", type=int, default=30, help="steps of the straight-through matcher")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--doc", action="store_true", help=f"write the table into {DOC.relative_to(REPO)}")
    parser.add_argument("--block", choices=sorted(BLOCKS), default=None,
                        help="which block of the page --doc writes (default: the one of --source)")
    parser.add_argument("--figure", type=Path, help="also draw the recovery rates into this PNG")
    opts = parser.parse_args(argv)
    for text in opts.matchers:
        try:
            parse_matcher(text)
        except ValueError as e:
            parser.error(str(e))
    if opts.trials < 1 or min(opts.noise) < 0:
        parser.error("--trials must be >= 1 and every --noise >= 0")
    rows = run(opts)
    say = Transcript()
    say(f"Networks {opts.source} on the embedded digits"
        + (f" ({opts.epochs} epochs)" if opts.source == "trained" else "") + f"; {opts.trials} trials per cell, "
        f"trial t plants with numpy seed t and draws its noise with seed [t, 1].")
    say()
    for line in markdown(rows).splitlines():
        say(line)
    if opts.figure:
        figure(rows, opts.figure)
    if opts.doc:
        write_block(BLOCKS[opts.block or opts.source], "\n".join([stamp(), "", *say.lines]), DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
