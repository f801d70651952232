"""HMC against NumPyro's on one MLP posterior, for benchmarks/gpu_check.py: the same potential
(prior N(0, sigma^2) on every weight, categorical likelihood, strict float32 on both sides), the
same start, step size, leapfrog steps, burn-in (no adaptation in either), draws and chains;
identity mass matrix.

    python gpu_numpyro.py tune    PROBLEM.npz             # our warm-up: the step size and the start
    python gpu_numpyro.py ours    PROBLEM.npz OUT.npz --device cuda
    python gpu_numpyro.py numpyro PROBLEM.npz OUT.npz

``tune`` runs our dual-averaging warm-up from the network's initialisation and writes the step
size it reached and the position it ended at into the problem: both samplers then start in the
posterior's bulk, so the ESS compares mixing, not how fast each leaves the initialisation.

Each sampler runs in its own process (torch and jax each claim the GPU their own way). NumPyro's
kernel (``numpyro.infer.hmc.hmc``) runs as one compiled program, its chains vectorised, its
iterations in a ``lax.scan``; its time is a second, compiled call (the first, with compilation,
is reported beside it). OUT holds the sampling seconds, the acceptance rate and p(y_n | x_n, w)
of every test point under every draw, [chains, draws, points]. ``ess_per_second`` turns an OUT
into the comparison: the median over test points of the bulk ESS of p(y|x), per second.
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


def write_problem(path: Path, problem, *, prior_std: float, step_size: float, n_leapfrog: int, n_tune: int,
                  n_warmup: int, n_samples: int, chains: int = 4, seed: int = 0) -> None:
    """The posterior (a benchmarks/_common.py Problem: the MLP and data the HMC benchmarks use) and the
    sampler settings both sides read; the start is our MLP's initialisation for ``seed``
    (workflow.inference.training.reset_parameters) until ``tune`` moves it."""
    from workflow.inference.training import reset_parameters

    model = problem.model()
    reset_parameters(model, seed)
    init = {f"init/{k}": v.detach().numpy() for k, v in model.named_parameters()}
    flat = lambda t: t.reshape(len(t), -1).numpy().astype(np.float32)  # noqa: E731
    np.savez(path, x_train=flat(problem.x), y_train=problem.y.numpy(), x_test=flat(problem.x_test),
             y_test=problem.y_test.numpy(), hidden=np.asarray(problem.hidden), n_classes=problem.n_classes,
             prior_std=prior_std, step_size=step_size, n_leapfrog=n_leapfrog, n_tune=n_tune, n_warmup=n_warmup,
             n_samples=n_samples, chains=chains, seed=seed, tuned=False, **init)


def _layers(p) -> list[str]:
    """Parameter names in forward order: hidden.0 .. hidden.{k-1}, out."""
    return [f"hidden.{i}" for i in range(len(p["hidden"]))] + ["out"]


# ---------------------------------------------------------------- ours


def _our_posterior(p: dict, device_name: str):
    import torch

    from gpu_rates import use
    from workflow.architectures import build_model
    from workflow.inference.hmc_bnn import bnn_potential

    device = use(device_name)
    x, y = torch.from_numpy(p["x_train"]).to(device), torch.from_numpy(p["y_train"]).to(device)
    model, _ = build_model("mlp", (x.shape[1],), int(p["n_classes"]), hidden=list(map(int, p["hidden"])))
    model.to(device)
    like = {k: torch.from_numpy(p[f"init/{k}"]).to(device) for k, _ in model.named_parameters()}
    return model, like, bnn_potential(model, x, y, float(p["prior_std"]), like), device


def tune(problem: Path, device_name: str) -> float:
    """Our dual-averaging warm-up (n_tune iterations from the initialisation): the step size both
    samplers use, fixed, and the start they share."""
    from workflow.inference.hmc_sampler import HmcSettings, flatten, run_hmc_chains, unflatten

    p = dict(np.load(problem))
    model, like, potential, device = _our_posterior(p, device_name)
    settings = HmcSettings(step_size=float(p["step_size"]), n_leapfrog=int(p["n_leapfrog"]),
                           n_warmup=max(int(p["n_tune"]), 1), n_samples=1, checkpoint_every=0)
    (result,) = run_hmc_chains(potential, flatten(like)[None], settings, seeds=[int(p["seed"])])
    import torch

    end = unflatten(torch.as_tensor(result.samples[-1]), {k: v.cpu() for k, v in like.items()})
    p.update({f"init/{k}": v.numpy() for k, v in end.items()})
    p.update(step_size=np.asarray(result.step_size), tuned=True)
    np.savez(problem, **p)
    return float(result.step_size)


def run_ours(problem: Path, out: Path, device_name: str) -> None:
    import torch
    from torch.func import functional_call

    from workflow.inference.hmc_sampler import HmcSettings, flatten, run_hmc_chains, unflatten

    p = dict(np.load(problem))
    model, like, potential, device = _our_posterior(p, device_name)
    xt, yt = torch.from_numpy(p["x_test"]).to(device), torch.from_numpy(p["y_test"]).to(device)
    chains = int(p["chains"])
    start = flatten(like)[None].repeat(chains, 1)
    settings = HmcSettings(step_size=float(p["step_size"]), n_leapfrog=int(p["n_leapfrog"]),
                           n_warmup=int(p["n_warmup"]), n_samples=int(p["n_samples"]), adapt_step_size=False,
                           checkpoint_every=0)
    seeds = [int(p["seed"]) * 1000 + c for c in range(chains)]
    warm = HmcSettings(**{**vars(settings), "n_warmup": 0, "n_samples": 2})
    run_hmc_chains(potential, start, warm, seeds=seeds)  # kernels chosen, allocator warm
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    results = run_hmc_chains(potential, start, settings, seeds=seeds)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        probs = [[torch.softmax(functional_call(model, unflatten(w, like), (xt,)), -1).gather(1, yt[:, None])[:, 0]
                  for w in torch.as_tensor(r.samples).to(device)] for r in results]
    np.savez(out, seconds=seconds, acceptance=float(np.mean([r.acceptance_rate for r in results])),
             probs=torch.stack([torch.stack(c) for c in probs]).cpu().numpy(), device=str(device),
             versions="this package")


# ---------------------------------------------------------------- NumPyro


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


def numpyro_sampler(p: dict, x, y):
    """(state at the start, one compiled function keys -> (positions, acceptance, leapfrog steps),
    each [chains, iterations, ...]): NumPyro's HMC kernel with the problem's fixed step size and
    leapfrog steps, chains vectorised."""
    import jax
    from numpyro.infer import init_to_value
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    model, _, start = numpyro_model(p)
    info = initialize_model(jax.random.PRNGKey(0), model, model_args=(x, y),
                            init_strategy=init_to_value(values=start))
    init_kernel, sample_kernel = hmc(info.potential_fn, algo="HMC")
    step, steps = float(p["step_size"]), int(p["n_leapfrog"])
    # the path length too: with num_steps alone NumPyro keeps its default trajectory_length (2 pi) and
    # divides that into the steps, which is not the step size asked for
    state = init_kernel(info.param_info, int(p["n_warmup"]), step_size=step, adapt_step_size=False,
                        adapt_mass_matrix=False, num_steps=steps, trajectory_length=step * steps,
                        rng_key=jax.random.PRNGKey(0))
    n_iter = int(p["n_warmup"]) + int(p["n_samples"])

    def chain(key):
        def body(st, _):
            st = sample_kernel(st)
            return st, (st.z, st.accept_prob, st.num_steps)

        _, collected = jax.lax.scan(body, state._replace(rng_key=key), None, length=n_iter)
        return collected

    return state, jax.jit(jax.vmap(chain))


def run_numpyro(problem: Path, out: Path) -> None:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU to what else runs
    import jax
    import jax.numpy as jnp
    import numpyro

    # float32 products as ours compute them: JAX's default lets a GPU use TF32 (10-bit mantissa)
    jax.config.update("jax_default_matmul_precision", "highest")
    p = dict(np.load(problem))
    x, y, xt, yt = (jnp.asarray(p[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    _, logits, _ = numpyro_model(p)
    _, sample = numpyro_sampler(p, x, y)
    keys = jax.random.split(jax.random.PRNGKey(int(p["seed"])), int(p["chains"]))
    t0 = time.perf_counter()
    jax.block_until_ready(sample(keys))  # compiles, then samples
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    zs, accept, steps = jax.block_until_ready(sample(keys))
    seconds = time.perf_counter() - t0
    kept = {k: v[:, int(p["n_warmup"]):] for k, v in zs.items()}  # [chains, draws, ...]

    def label_probs(params):
        return jax.nn.softmax(logits(params, xt))[jnp.arange(len(yt)), yt]

    probs = jax.vmap(jax.vmap(label_probs))(kept)
    np.savez(out, seconds=seconds, first_run_seconds=first, acceptance=float(np.mean(np.asarray(accept))),
             probs=np.asarray(probs), device=str(jax.devices()[0]), leapfrog_steps=np.unique(np.asarray(steps)),
             versions=f"numpyro {numpyro.__version__}, jax {jax.__version__}, matmul precision highest")


def ess_per_second(result: dict) -> tuple[float, float]:
    """(median bulk ESS of p(y|x) over test points, that per second of sampling)."""
    from workflow.evaluation.mcmc_diagnostics import ess_bulk

    ess = float(np.median(ess_bulk(np.asarray(result["probs"], dtype=np.float64))))
    return ess, ess / float(result["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sampler", choices=("tune", "ours", "numpyro"),
                        help="tune: our warm-up sets the problem's step size and start; ours / numpyro: sample")
    parser.add_argument("problem", type=Path)
    parser.add_argument("out", type=Path, nargs="?", help="the sampler's result (not for tune)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="ours: the device (numpyro: jax's)")
    args = parser.parse_args(argv)
    if args.sampler != "tune" and args.out is None:
        parser.error(f"{args.sampler} needs OUT, the file its result goes to")
    if args.sampler == "tune":
        print(f"step size {tune(args.problem, args.device):.6g}")
    elif args.sampler == "ours":
        run_ours(args.problem, args.out, args.device)
    else:
        run_numpyro(args.problem, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
