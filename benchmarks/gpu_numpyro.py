"""HMC against NumPyro's on one MLP posterior, for benchmarks/gpu_check.py: the same potential
(prior N(0, sigma^2) on every weight, categorical likelihood, float32), the same start, step size,
leapfrog steps, warm-up iterations (no adaptation in either) and draws; identity mass matrix.

    python gpu_numpyro.py ours    PROBLEM.npz OUT.npz --device cuda
    python gpu_numpyro.py numpyro PROBLEM.npz OUT.npz

Each sampler runs in its own process (torch and jax each claim the GPU their own way). OUT holds the
sampling seconds, the acceptance rate, and p(y_n | x_n, w_s) of every test point under every draw.
``ess_per_second`` turns a pair of OUTs into the comparison: the median over test points of the
bulk ESS of p(y|x), per second of sampling (warm-up included, as both run it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def write_problem(path: Path, data: dict, hidden: list[int], *, prior_std: float, step_size: float,
                  n_leapfrog: int, n_warmup: int, n_samples: int, seed: int = 0) -> None:
    """The posterior and the sampler settings both sides read; the start is our MLP's initialisation
    for ``seed`` (workflow.inference.training.reset_parameters)."""
    from workflow.architectures import build_model
    from workflow.inference.training import reset_parameters

    model, _ = build_model("mlp", data["input_shape"], data["n_classes"], hidden=hidden, activation="relu")
    reset_parameters(model, seed)
    init = {f"init/{k}": v.detach().numpy() for k, v in model.named_parameters()}
    flat = lambda t: t.reshape(len(t), -1).numpy().astype(np.float32)  # noqa: E731
    np.savez(path, x_train=flat(data["x_train"]), y_train=data["y_train"].numpy(), x_test=flat(data["x_test"]),
             y_test=data["y_test"].numpy(), hidden=np.asarray(hidden), n_classes=data["n_classes"],
             prior_std=prior_std, step_size=step_size, n_leapfrog=n_leapfrog, n_warmup=n_warmup,
             n_samples=n_samples, seed=seed, **init)


def _layers(p) -> list[str]:
    """Parameter names in forward order: hidden.0 .. hidden.{k-1}, out."""
    return [f"hidden.{i}" for i in range(len(p["hidden"]))] + ["out"]


def tune_step_size(problem: Path, device_name: str) -> float:
    """Our dual-averaging warm-up over the problem's n_warmup iterations, from its start: the step
    size both samplers then use, fixed (written into the problem file)."""
    from workflow.inference.hmc_sampler import HmcSettings, run_hmc_chains

    model, like, potential, device = _our_posterior(problem, device_name)
    p = dict(np.load(problem))
    settings = HmcSettings(step_size=float(p["step_size"]), n_leapfrog=int(p["n_leapfrog"]),
                           n_warmup=max(int(p["n_warmup"]), 1), n_samples=1, checkpoint_every=0)
    (result,) = run_hmc_chains(potential, _start(p, like, device), settings, seeds=[int(p["seed"])])
    p["step_size"] = np.asarray(result.step_size)
    np.savez(problem, **p)
    return float(result.step_size)


def _our_posterior(problem: Path, device_name: str):
    import torch

    from workflow import device as dev
    from workflow.architectures import build_model
    from workflow.inference.hmc_bnn import bnn_potential

    p = dict(np.load(problem))
    dev.set_job(gpus=1 if device_name == "cuda" else 0)
    device = dev.use_device("auto")
    x, y = torch.from_numpy(p["x_train"]).to(device), torch.from_numpy(p["y_train"]).to(device)
    model, _ = build_model("mlp", (x.shape[1],), int(p["n_classes"]), hidden=list(map(int, p["hidden"])))
    model.to(device)
    like = {k: torch.from_numpy(p[f"init/{k}"]).to(device) for k, _ in model.named_parameters()}
    return model, like, bnn_potential(model, x, y, float(p["prior_std"]), like), device


def _start(p: dict, like: dict, device):
    from workflow.inference.hmc_sampler import flatten

    return flatten(like)[None].to(device)


def run_ours(problem: Path, out: Path, device_name: str) -> None:
    import torch

    from workflow.inference.hmc_sampler import HmcSettings, run_hmc_chains, unflatten

    model, like, potential, device = _our_posterior(problem, device_name)
    p = dict(np.load(problem))
    xt, yt = torch.from_numpy(p["x_test"]).to(device), torch.from_numpy(p["y_test"]).to(device)
    init = _start(p, like, device)
    settings = HmcSettings(step_size=float(p["step_size"]), n_leapfrog=int(p["n_leapfrog"]),
                           n_warmup=int(p["n_warmup"]), n_samples=int(p["n_samples"]), adapt_step_size=False,
                           checkpoint_every=0)
    warm = HmcSettings(**{**vars(settings), "n_warmup": 0, "n_samples": 2})
    run_hmc_chains(potential, init, warm, seeds=[0])  # CUDA context, kernels
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    (result,) = run_hmc_chains(potential, init, settings, seeds=[int(p["seed"])])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    draws = torch.as_tensor(result.samples).to(device)
    with torch.no_grad():
        probs = torch.stack([torch.softmax(torch.func.functional_call(model, unflatten(w, like), (xt,)), -1)
                             .gather(1, yt[:, None])[:, 0] for w in draws])
    np.savez(out, seconds=seconds, acceptance=result.acceptance_rate, probs=probs.cpu().numpy(),
             device=str(device))


def numpyro_model(p: dict):
    """(model, logits, start) of the problem in NumPyro: the MLP of workflow.architectures.mlp
    (ReLU hidden layers, x @ W.T + b), every weight N(0, prior_std^2), categorical labels."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    names = _layers(p)
    sigma = float(p["prior_std"])

    def logits(params, inputs):
        h = inputs
        for name in names[:-1]:
            h = jax.nn.relu(h @ params[f"{name}.weight"].T + params[f"{name}.bias"])
        return h @ params["out.weight"].T + params["out.bias"]

    def model(inputs, labels):
        params = {}
        for name in names:
            for part in ("weight", "bias"):
                key = f"{name}.{part}"
                params[key] = numpyro.sample(key, dist.Normal(0.0, sigma).expand(p[f"init/{key}"].shape).to_event())
        numpyro.sample("y", dist.Categorical(logits=logits(params, inputs)), obs=labels)

    start = {k.partition("/")[2]: jnp.asarray(v) for k, v in p.items() if k.startswith("init/")}
    return model, logits, start


def run_numpyro(problem: Path, out: Path) -> None:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU to what else runs
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import HMC, MCMC, init_to_value

    p = dict(np.load(problem))
    x, y, xt, yt = (jnp.asarray(p[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    model, logits, init = numpyro_model(p)
    # the path length too: with num_steps alone NumPyro keeps its default trajectory_length (2 pi) and
    # divides that into the steps, which is not the step size asked for
    step, steps = float(p["step_size"]), int(p["n_leapfrog"])
    kernel = HMC(model, step_size=step, num_steps=steps, trajectory_length=step * steps, adapt_step_size=False,
                 adapt_mass_matrix=False, init_strategy=init_to_value(values=init))
    # jit_model_args: the data are arguments of the compiled sampler, so the second run reuses it
    mcmc = MCMC(kernel, num_warmup=int(p["n_warmup"]), num_samples=int(p["n_samples"]), progress_bar=False,
                jit_model_args=True)
    key = jax.random.PRNGKey(int(p["seed"]))
    start = time.perf_counter()
    mcmc.run(key, x, y, extra_fields=("accept_prob",))  # compiles, then samples
    jax.block_until_ready(mcmc.get_samples())
    first = time.perf_counter() - start
    start = time.perf_counter()
    # compiled: the sampling, and NumPyro's per-run set-up (it traces the model again to start the
    # chain: about 1 s on a CPU, whatever the chain's length)
    mcmc.run(key, x, y, extra_fields=("accept_prob",))
    samples = jax.block_until_ready(mcmc.get_samples())
    seconds = time.perf_counter() - start
    n = int(p["n_samples"])
    probs = np.stack([np.asarray(jax.nn.softmax(logits({k: v[s] for k, v in samples.items()}, xt))[
        jnp.arange(len(yt)), yt]) for s in range(n)])
    accept = float(np.mean(np.asarray(mcmc.get_extra_fields()["accept_prob"])))
    np.savez(out, seconds=seconds, first_run_seconds=first, acceptance=accept, probs=probs,
             device=str(jax.devices()[0]), versions=f"numpyro {numpyro.__version__}, jax {jax.__version__}")


def ess_per_second(result: dict) -> tuple[float, float]:
    """(median bulk ESS of p(y|x) over test points, that per second of sampling)."""
    from workflow.evaluation.mcmc_diagnostics import ess_bulk

    ess = float(np.median(ess_bulk(np.asarray(result["probs"], dtype=np.float64)[None])))
    return ess, ess / float(result["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sampler", choices=("tune", "ours", "numpyro"),
                        help="tune: our warm-up sets the problem's step size; ours / numpyro: sample")
    parser.add_argument("problem", type=Path)
    parser.add_argument("out", type=Path, nargs="?", help="the sampler's result (not for tune)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="ours: the device (numpyro: jax's)")
    args = parser.parse_args(argv)
    if args.sampler == "tune":
        print(f"step size {tune_step_size(args.problem, args.device):.6g}")
    elif args.sampler == "ours":
        run_ours(args.problem, args.out, args.device)
    else:
        run_numpyro(args.problem, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
