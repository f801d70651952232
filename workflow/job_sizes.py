"""How big a job is, from its rule, its wildcards and its variant's config alone: the quantity its
compute time grows with, and the bytes it holds that grow with the config. Torch-free, so the
Snakefile can size every job of a run before any of them starts.

Both sizes are in arbitrary units: only their ratio between two configs counts. A job's time is
measured once (workflow/job_resources.py reads the benchmark files of a finished run) as seconds
per unit of `time_size`; another config's job of the same rule, method and architecture then
takes that rate times its own `time_size`. The same holds for the part of its memory above the
interpreter's, per byte of `memory_size`.

What each rule's time grows with (MACs: multiply-adds of one forward pass of one example):
    train_posterior  ensemble: epochs x n_train x MACs;  vi: the same x vi.mc_samples;
                     hmc: (n_warmup + n_samples x thinning) x n_leapfrog x n_train x MACs;
                     laplace: n_train x MACs x classes (the GGN); each x the chains of the job
    barrier_curves   pairs x n_points x networks per point (a Gaussian's mc_samples, a sample set's
                     draws) x examples of barrier.split x MACs (x 2 REPAIRed)
    barrier_within_chain   chains x 2 x n_points x draws x examples x MACs (two paths per chain: the
                     halves unaligned and weight-matched; the matching itself is small beside them)
    table1           (table.mc_samples + HMC draws + members) x n_test x MACs
    pruning          fractions x n_test x MACs
    not_k            ks x ensemble.epochs x n_train x MACs
    rebasin          draws x (parameters; activation matchers: activation points x MACs)
                     x (rebasin.max_iterations for the iterated reference)
    align rules      draws x parameters (x seeds for joint alignment); other rules: 1
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

from . import architectures
from .config import method_seeds, seed_pairs

# rows of each dataset's full train and test split (a dataset split here: all its rows, test None),
# image shape and classes: enough to size a job without reading the data
DATASET_SHAPES: dict[str, tuple[int, int | None, tuple[int, int, int], int]] = {
    "digits": (1797, None, (1, 8, 8), 10),
    "mnist-t10k": (10000, None, (1, 28, 28), 10),
    "mnist": (60000, 10000, (1, 28, 28), 10),
    "fashion-mnist": (60000, 10000, (1, 28, 28), 10),
    "cifar10": (50000, 10000, (3, 32, 32), 10),
    "cifar100": (50000, 10000, (3, 32, 32), 100),
}
ACTIVATION_MATCHERS = {"activation", "correlation"}  # matchers that run the network on training data
FLOAT_BYTES = 4


def split_rows(data: dict) -> tuple[int, int]:
    """(training rows, test rows) of a data section, as workflow.storage.datasets.load_dataset splits it."""
    name = data["dataset"]
    if name not in DATASET_SHAPES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_SHAPES)}")
    n_all, n_test_official, _, _ = DATASET_SHAPES[name]
    if n_test_official is None:  # split here, as datasets.split_indices does
        n_test = min(max(int(round(n_all * float(data["test_fraction"]))), 1), n_all - 1)
        n_train = n_all - n_test
    else:
        n_train, n_test = n_all, n_test_official
    if data.get("n_train") is not None:
        n_train = min(n_train, int(data["n_train"]))
    if data.get("n_test") is not None:
        n_test = min(n_test, int(data["n_test"]))
    return n_train, n_test


def input_shape(data: dict) -> tuple[int, int, int]:
    return DATASET_SHAPES[data["dataset"]][2]


def _model_key(cfg: dict) -> tuple:
    model = cfg["model"]
    args = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in model.items() if k != "architecture"))
    return model["architecture"], args, cfg["data"]["dataset"]


@lru_cache(maxsize=256)
def _shapes(key: tuple) -> dict:
    arch, args, dataset = key
    _, _, shape, n_classes = DATASET_SHAPES[dataset]
    fn = architectures.entry(arch).param_shapes
    if fn is None:
        raise ValueError(f"architecture {arch!r} has no torch-free param_shapes: its jobs cannot be sized")
    from .architectures import specs

    return getattr(specs, fn)(shape, n_classes, **architectures.resolve_args(arch, dict(args)))


def n_params(cfg: dict) -> int:
    return sum(math.prod(s) for s in _shapes(_model_key(cfg)).values())


def _forward(cfg: dict) -> tuple[int, int]:
    """(multiply-adds, output values) of one forward pass of one example, over every weight matrix
    (MLP, head) and every convolution (at each output position: ResNet20's group g at 1/2^g of the
    input's resolution)."""
    _, h, w = input_shape(cfg["data"])
    total_macs = total_out = 0
    for name, shape in _shapes(_model_key(cfg)).items():
        if len(shape) == 4:
            g = int(name.split(".")[1]) if name.startswith("groups.") else 0
            positions = math.ceil(h / 2 ** g) * math.ceil(w / 2 ** g)
            total_macs += math.prod(shape) * positions
            total_out += shape[0] * positions
        elif len(shape) == 2:
            total_macs += math.prod(shape)
            total_out += shape[0]
    return total_macs, total_out


def macs(cfg: dict) -> int:
    return _forward(cfg)[0]


def draws(cfg: dict, method: str | None) -> int:
    """Parameter vectors a job over a method's posteriors holds: HMC's kept draws of every chain,
    one per seed otherwise."""
    seeds = len(method_seeds(cfg, method)) if method else len(cfg["seeds"])
    return seeds * (int(cfg["hmc"]["n_samples"]) if method == "hmc" else 1)


def path_samples(cfg: dict, method: str | None) -> int:
    """Networks evaluated at each point of a barrier path: a Gaussian's barrier.mc_samples, every
    draw of a sample set (an HMC chain's kept draws, an ensemble member's one)."""
    from . import methods

    if method and methods.kind(method) == "samples":
        return int(cfg["hmc"]["n_samples"]) if method == "hmc" else 1
    return int(cfg["barrier"]["mc_samples"])


def time_size(rule: str, wc: dict, cfg: dict) -> float:
    """What the job's compute time grows with (the module's docstring has the table)."""
    method = wc.get("method")
    n_train, n_test = split_rows(cfg["data"])
    m = macs(cfg)
    if rule == "train_posterior":
        chains = int(wc.get("chains", 1))
        if method in ("ensemble", "vi"):
            s = cfg[method]
            return float(s["epochs"]) * n_train * m * (int(s.get("mc_samples", 1)) if method == "vi" else 1) * chains
        if method == "hmc":
            h = cfg["hmc"]
            steps = int(h["n_warmup"]) + int(h["n_samples"]) * int(h.get("thinning", 1))
            return float(steps) * int(h["n_leapfrog"]) * n_train * m * chains
        if method == "laplace":
            return float(n_train) * m * DATASET_SHAPES[cfg["data"]["dataset"]][3] * chains
        return float(n_train) * m * chains
    if rule in ("barrier_curves", "barrier_within_chain"):
        b = cfg["barrier"]
        examples = n_test if b.get("split", "test") == "test" else n_train
        size = float(b["n_points"]) * path_samples(cfg, method) * examples * m
        if rule == "barrier_curves":
            size *= max(1, len(seed_pairs(cfg, method))) * (2 if b.get("repair") else 1)
        else:
            # both halves of every chain along two paths (metrics.within_chain_curves): as they are, and
            # the second weight-matched to the first. The measured rate (measured_resources.csv) predates
            # the second path: per path it is unchanged, so the estimate doubles with the work
            size *= len(method_seeds(cfg, method)) * 2
        return size
    if rule == "table1":  # the Gaussians' Monte Carlo samples, and every HMC draw and ensemble member
        sets = draws(cfg, "hmc") if "hmc" in cfg["methods"] else 0
        return float(cfg["table"]["mc_samples"] + sets + len(cfg["seeds"])) * n_test * m
    if rule == "pruning":
        return float(len(cfg["pruning"]["fractions"])) * n_test * m
    if rule == "not_k":
        return float(len(cfg["not_study"]["ks"])) * int(cfg["ensemble"]["epochs"]) * n_train * m
    if rule == "rebasin":
        r = cfg["rebasin"]
        if wc.get("matching") in ACTIVATION_MATCHERS:
            per_draw = float(r.get("activation_points") or n_train) * m
        else:
            per_draw = float(n_params(cfg))
        return draws(cfg, method) * per_draw * (int(r.get("max_iterations", 10)) if wc.get("reference") == "iterated" else 1)
    if rule in ("align_pair", "joint_pair", "joint_merged", "align_joint", "not_path", "basin"):
        seeds = len(cfg["seeds"]) if rule == "align_joint" else 1
        per = int(cfg["hmc"]["n_samples"]) if method == "hmc" else 1
        return float(per) * n_params(cfg) * seeds
    return 1.0


PREDICTING_RULES = {"barrier_curves", "barrier_within_chain", "table1", "pruning"}  # chunked to compute.memory_mb


def memory_size(rule: str, wc: dict, cfg: dict) -> float:
    """Bytes the job holds that grow with the config: its data, the parameter vectors of its
    posteriors, and its activations: a training step's (batch x the network's outputs per example,
    kept for the backward pass; HMC's batch is the training set), the chunk budget
    compute.memory_mb of a job that predicts, or the training activations an activation matcher
    compares (float64, of the draw and the reference)."""
    n_train, n_test = split_rows(cfg["data"])
    method = wc.get("method")
    size = (n_train + n_test) * math.prod(input_shape(cfg["data"])) * FLOAT_BYTES
    size += draws(cfg, method) * n_params(cfg) * FLOAT_BYTES
    outputs = _forward(cfg)[1]
    if int(cfg["compute"].get("gpu") or 0) > 0 and rule in ("train_posterior", "not_k", *PREDICTING_RULES):
        return float(size)  # its activations and prediction chunks live in GPU memory, not the host's
    if rule in ("train_posterior", "not_k"):
        section = cfg.get(method or "ensemble", {}) if rule == "train_posterior" else cfg["ensemble"]
        batch = n_train if method == "hmc" else int(section.get("batch_size") or n_train)
        size += 3.0 * batch * outputs * FLOAT_BYTES * int(wc.get("chains", 1))
    elif rule in PREDICTING_RULES:
        size += float(cfg["compute"]["memory_mb"]) * 2**20
    elif rule == "rebasin" and wc.get("matching") in ACTIVATION_MATCHERS:
        points = cfg["rebasin"].get("activation_points") or n_train
        size += 2.0 * points * outputs * 8
    return float(size)


CHAINS_RULE = re.compile(r"^train_([a-z0-9]+)_seeds_(\d+(?:_\d+)*)$")


def chains_rule(method: str, seeds) -> str:
    """The name of the rule whose one job fits several seeds of a method together (rules/train.smk)."""
    return f"train_{method}_seeds_{'_'.join(map(str, seeds))}"


def sizing_rule(rule: str, wildcards: dict) -> tuple[str, dict]:
    """(the rule name its resources are measured under, its wildcards): a chains rule is sized as
    train_posterior with its method and its number of chains."""
    m = CHAINS_RULE.match(rule)
    if m is None:
        return rule, wildcards
    return "train_posterior", wildcards | {"method": m.group(1), "chains": len(m.group(2).split("_"))}


def job_wildcards(rule: str, job: str, method_names) -> dict:
    """The wildcards that size a job, read back from its benchmark file's path below the rule
    (``{variant}/train/{method}/seed{seed}``, ``{variant}/rebasin/{method}/{matching}/{reference}``, ...)."""
    parts = job.split("/")
    wc: dict = {"variant": parts[0]}
    method = next((p for p in parts[1:] if p in method_names), None)
    if method:
        wc["method"] = method
    if rule == "rebasin" and len(parts) == 5:
        wc["matching"], wc["reference"] = parts[3], parts[4]
    if rule == "train_posterior" and parts[-1].startswith("seeds"):  # one job, several chains
        wc["chains"] = len(parts[-1][len("seeds"):].split("-"))
    return wc
