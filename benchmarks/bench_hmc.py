"""HMC benchmarks: the cost of one gradient inside a trajectory against a bare forward + backward
pass (and against Pyro's HMC on the same potential), and the mixing speed on the default digits
posterior, as ESS per second of the test predictive, against Pyro's NUTS and HMC.

Fair setup: every sampler gets the same potential (our full-batch BNN potential as a function of
the flat parameter vector), the same start (the architecture's initialisation for seed 0), the
same data and thread count. Pyro's kernels get their usual adaptation where we use ours:
- NUTS: Pyro's defaults (step size and diagonal mass matrix adapted in warm-up, tree depth up
  to 10), the same number of warm-up iterations as our chain and as many draws as we keep;
- HMC: step size adapted by dual averaging, identity mass matrix, as our default config. Pyro's
  HMC keeps the trajectory length fixed, not the number of steps (its number of leapfrog steps
  shrinks as the step size adapts), so it gets the trajectory length of our adapted chain
  (our final step size x our number of steps): at the end of warm-up both take about L steps.
ESS per second counts the whole run (warm-up included) for every sampler.

Several chains: our chains of one job advance together (``run_hmc_chains``: one batch, each chain
its own seed, adaptation and mass matrix). Pyro's ``MCMC(num_chains=C)`` on a machine with fewer
than C + 1 CPUs runs its chains one after another; the benchmark does the same, chain by chain
with the same starts. The multi-chain ESS of the predictive (``effective_sample_size`` over the
chains) is divided by the wall time of all chains.

As the workflow runs them: with ``hmc.chains_per_job: 1`` (the default) every chain is its own
job at ``compute.threads: 1``, and Snakemake runs as many jobs at once as it has cores. The row
"as the workflow runs them" does the same: a pool of as many worker processes as torch threads,
each one thread, each chain one task, the pool's start-up (every worker imports torch) timed too.

At equal settings both samplers run the same algorithm at the same cost per gradient (the rows
"time per gradient"), and the predictive's ESS is close to the number of draws for both (each
row's note gives ESS per draw), so the ESS/s ratio against Pyro's HMC is bounded by how much
more of the machine our chains use: 1x for one chain, and for several chains the speed-up of
chains in parallel processes over one chain on all threads.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from _common import REPO, Problem, Row, digits_problem, median_time, mnist_sized_problem


def _potential(problem: Problem, prior_std: float = 1.0):
    from workflow.inference.hmc_sampler import flatten
    from workflow.inference.hmc_bnn import bnn_potential

    model = problem.model(seed=0)
    like = {k: v.detach() for k, v in model.named_parameters()}
    return model, like, bnn_potential(model, problem.x, problem.y, prior_std, like), flatten(like)


def _pyro_kernel_run(kernel, init, warmup: int, samples: int) -> np.ndarray:
    from pyro.infer import MCMC

    mcmc = MCMC(kernel, num_samples=samples, warmup_steps=warmup, initial_params={"w": init.clone()},
                disable_progbar=True)
    mcmc.run()
    return mcmc.get_samples()["w"].numpy()


def cost_per_gradient(problem: Problem, *, iterations: int, n_leapfrog: int = 20, repeats: int = 3,
                      peers: bool = True) -> list[Row]:
    """Seconds per gradient inside fixed-step trajectories, ours and Pyro's, against fwd + bwd."""
    import torch

    from workflow.inference.hmc_sampler import HmcSettings, run_hmc, value_and_grad

    _, _, potential, theta = _potential(problem)
    fwd_bwd = median_time(lambda: value_and_grad(potential, theta), repeats=max(5, repeats * 3))
    settings = HmcSettings(step_size=1e-4, n_leapfrog=n_leapfrog, n_warmup=0, n_samples=iterations,
                           adapt_step_size=False, checkpoint_every=0)
    n_grads = iterations * n_leapfrog
    ours = median_time(lambda: run_hmc(potential, theta, settings, seed=0), repeats=repeats, warmup=0) / n_grads
    rows = [Row("HMC", f"{problem.name}: one gradient in a trajectory / one fwd+bwd", ours * 1e3, fwd_bwd * 1e3,
                "ms", fwd_bwd / ours, note=f"L = {n_leapfrog}")]
    if peers:
        from pyro.infer.mcmc import HMC

        def pyro():
            kernel = HMC(potential_fn=lambda p: potential(p["w"]), step_size=1e-4, num_steps=n_leapfrog,
                         adapt_step_size=False, adapt_mass_matrix=False)
            _pyro_kernel_run(kernel, theta, warmup=0, samples=iterations)

        torch.manual_seed(0)
        peer = median_time(pyro, repeats=repeats, warmup=0) / n_grads
        rows.append(Row("HMC", f"{problem.name}: Pyro HMC / ours, time per gradient", ours * 1e3, peer * 1e3, "ms",
                        peer / ours, note="same potential, fixed step"))
    return rows


def _predictive_ess(problem: Problem, model, like: dict, *flat_draws: np.ndarray) -> float:
    """Median over test points of the ESS of p(y_n | x_n, w), over one chain or several (one array each)."""
    import torch

    from workflow.evaluation.mcmc_diagnostics import effective_sample_size
    from workflow.evaluation.predict import Stacked, sample_label_log_probs

    probs = []
    for draws in flat_draws:
        columns = np.split(draws, np.cumsum([v.numel() for v in like.values()])[:-1], axis=1)
        stack = {k: torch.as_tensor(c.reshape(len(c), *v.shape)) for (k, v), c in zip(like.items(), columns)}
        probs.append(sample_label_log_probs(model, Stacked(stack), problem.x_test, problem.y_test).exp().numpy())
    return float(np.nanmedian(effective_sample_size(np.stack(probs))))


def _inits(problem: Problem, seeds) -> "torch.Tensor":
    """The architecture's initialisation for each seed, as flat vectors [chains, dim]."""
    import torch

    from workflow.inference.hmc_sampler import flatten

    return torch.stack([flatten({k: v.detach() for k, v in problem.model(seed=s).named_parameters()})
                        for s in seeds])


def chains_cost(problem: Problem, *, chains: int, iterations: int, n_leapfrog: int = 20,
                repeats: int = 3) -> list[Row]:
    """Time per chain-gradient: ``chains`` chains advanced together against the same chains one by one."""
    from workflow.inference.hmc_sampler import HmcSettings, run_hmc, run_hmc_chains

    _, _, potential, _ = _potential(problem)
    inits, seeds = _inits(problem, range(chains)), list(range(chains))
    settings = HmcSettings(step_size=1e-4, n_leapfrog=n_leapfrog, n_warmup=0, n_samples=iterations,
                           adapt_step_size=False, checkpoint_every=0)
    n_grads = chains * iterations * n_leapfrog
    together = median_time(lambda: run_hmc_chains(potential, inits, settings, seeds=seeds), repeats=repeats,
                           warmup=0) / n_grads
    apart = median_time(lambda: [run_hmc(potential, inits[c], settings, seed=c) for c in seeds], repeats=repeats,
                        warmup=0) / n_grads
    return [Row("HMC", f"{problem.name}: {chains} chains one by one / advanced together, time per chain-gradient",
                together * 1e3, apart * 1e3, "ms", apart / together, note=f"L = {n_leapfrog}, the same draws")]


def mixing(problem: Problem, hmc_config: dict, *, peers: bool = True, nuts_warmup: int | None = None,
           nuts_samples: int | None = None) -> list[Row]:
    """ESS per second of the test predictive: our chain (the config's settings) against Pyro NUTS and HMC."""
    import torch

    from workflow.inference.hmc_sampler import run_hmc

    model, like, potential, theta = _potential(problem)
    settings = _hmc_settings(hmc_config)
    # a short untimed chain first: the process's first gradients pay torch's one-time set-up, which
    # the peers, timed after ours in the same process, would otherwise be spared
    run_hmc(potential, theta, dataclasses.replace(settings, n_warmup=5, n_samples=5, thinning=1), seed=0)
    start = time.perf_counter()
    result = run_hmc(potential, theta, settings, seed=0)
    seconds = time.perf_counter() - start
    ess = _predictive_ess(problem, model, like, result.samples)
    ours = ess / seconds
    label = (f"{settings.n_warmup} warm-up + {settings.n_samples}x{settings.thinning} iterations, L = "
             f"{settings.n_leapfrog}, {settings.mass_matrix} metric")
    rows = [Row("HMC", f"{problem.name}: ESS/s of p(y|x), our HMC ({label})", ours, None, "ESS/s", None,
                note=f"{seconds:.0f} s, acceptance {result.acceptance_rate:.2f}, ESS {ess / settings.n_samples:.2f} "
                     "per draw")]
    if not peers:
        return rows
    from pyro.infer.mcmc import HMC, NUTS

    warmup = settings.n_warmup if nuts_warmup is None else nuts_warmup
    n_samples = settings.n_samples if nuts_samples is None else nuts_samples
    torch.manual_seed(0)
    start = time.perf_counter()
    draws = _pyro_kernel_run(NUTS(potential_fn=lambda p: potential(p["w"])), theta, warmup, n_samples)
    nuts_seconds = time.perf_counter() - start
    nuts_ess = _predictive_ess(problem, model, like, draws)
    nuts = nuts_ess / nuts_seconds
    rows.append(Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours / Pyro NUTS (its default adaptation)", ours, nuts,
                    "ESS/s", ours / nuts, target=3.0, note=f"NUTS {warmup} warm-up + {n_samples} draws, "
                    f"{nuts_seconds:.0f} s, ESS {nuts_ess / n_samples:.2f} per draw"))
    trajectory = result.step_size * settings.n_leapfrog
    torch.manual_seed(0)
    start = time.perf_counter()
    kernel = HMC(potential_fn=lambda p: potential(p["w"]), step_size=settings.step_size, trajectory_length=trajectory,
                 adapt_step_size=settings.adapt_step_size, adapt_mass_matrix=False,
                 target_accept_prob=settings.target_accept)
    draws = _pyro_kernel_run(kernel, theta, settings.n_warmup, settings.n_samples * settings.thinning)
    hmc_seconds = time.perf_counter() - start
    hmc_ess = _predictive_ess(problem, model, like, draws[settings.thinning - 1::settings.thinning])
    pyro_hmc = hmc_ess / hmc_seconds
    rows.append(Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours / Pyro HMC (same warm-up, draws, path length)",
                    ours, pyro_hmc, "ESS/s", ours / pyro_hmc, target=2.0,
                    note=f"Pyro HMC {hmc_seconds:.0f} s, ESS {hmc_ess / settings.n_samples:.2f} per draw"))
    return rows


def _hmc_settings(hmc_config: dict):
    from workflow.inference.hmc_sampler import HmcSettings

    keys = set(HmcSettings.__dataclass_fields__)
    return HmcSettings(**{k: v for k, v in hmc_config.items() if k in keys} | {"checkpoint_every": 0})


def _chain_as_job(problem: Problem, hmc_config: dict, seed: int):
    """One chain as the workflow's job runs it (one thread, the seed's own start): the draws
    [n_samples, dim], its final step size and acceptance rate. Runs in a worker process."""
    import torch

    from workflow.inference.hmc_sampler import run_hmc

    torch.set_num_threads(1)
    _, _, potential, _ = _potential(problem)
    result = run_hmc(potential, _inits(problem, [seed])[0], _hmc_settings(hmc_config), seed=seed)
    return result.samples, result.step_size, result.acceptance_rate


def _chains_as_jobs(problem: Problem, hmc_config: dict, seeds, workers: int):
    """Every seed's chain as its own one-thread task in a pool of ``workers`` processes (as
    Snakemake runs one-chain jobs on ``workers`` cores); returns the results and the wall time,
    the pool's start-up included."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_chain_as_job, [problem] * len(seeds), [hmc_config] * len(seeds), seeds))
    return results, time.perf_counter() - start


def mixing_chains(problem: Problem, hmc_config: dict, *, chains: int, peers: bool = True,
                  workers: int = 1) -> list[Row]:
    """ESS per second of the test predictive over ``chains`` chains: ours advanced together in one
    job, and ours as the workflow runs one-chain jobs on ``workers`` cores, against Pyro's HMC
    running the same chains one after another."""
    import torch

    from workflow.inference.hmc_sampler import run_hmc_chains

    model, like, potential, _ = _potential(problem)
    settings = _hmc_settings(hmc_config)
    seeds = list(range(chains))
    inits = _inits(problem, seeds)
    start = time.perf_counter()
    results = run_hmc_chains(potential, inits, settings, seeds=seeds)
    seconds = time.perf_counter() - start
    ess = _predictive_ess(problem, model, like, *(r.samples for r in results))
    ours = ess / seconds
    label = f"{chains} chains of one job, advanced together"
    draws_total = chains * settings.n_samples
    rows = [Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours, {label}", ours, None, "ESS/s", None,
                note=f"{seconds:.0f} s, acceptance {np.mean([r.acceptance_rate for r in results]):.2f}, "
                     f"ESS {ess / draws_total:.2f} per draw")]
    jobs = None
    if workers > 1:
        job_results, job_seconds = _chains_as_jobs(problem, hmc_config, seeds, workers)
        job_ess = _predictive_ess(problem, model, like, *(r[0] for r in job_results))
        jobs = job_ess / job_seconds
        jobs_label = f"{chains} one-chain jobs, {workers} at a time, 1 thread each (as the workflow runs them)"
        rows.append(Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours, {jobs_label}", jobs, None, "ESS/s", None,
                        note=f"{job_seconds:.0f} s with the workers' start-up, acceptance "
                             f"{np.mean([r[2] for r in job_results]):.2f}, ESS {job_ess / draws_total:.2f} per draw"))
    if not peers:
        return rows
    from pyro.infer.mcmc import HMC

    trajectory = float(np.median([r.step_size for r in results])) * settings.n_leapfrog
    draws = []
    start = time.perf_counter()
    for c in seeds:
        torch.manual_seed(c)
        kernel = HMC(potential_fn=lambda p: potential(p["w"]), step_size=settings.step_size,
                     trajectory_length=trajectory, adapt_step_size=settings.adapt_step_size,
                     adapt_mass_matrix=False, target_accept_prob=settings.target_accept)
        chain = _pyro_kernel_run(kernel, inits[c], settings.n_warmup, settings.n_samples * settings.thinning)
        draws.append(chain[settings.thinning - 1::settings.thinning])
    pyro_seconds = time.perf_counter() - start
    pyro_ess = _predictive_ess(problem, model, like, *draws)
    pyro = pyro_ess / pyro_seconds
    peer_label = f"Pyro HMC ({chains} chains one after another, as its MCMC on 2 CPUs)"
    note = f"Pyro {pyro_seconds:.0f} s, ESS {pyro_ess / draws_total:.2f} per draw"
    rows.append(Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours ({label}) / {peer_label}", ours, pyro, "ESS/s",
                    ours / pyro, target=2.0, note=note))
    if jobs is not None:
        rows.append(Row("HMC", f"{problem.name}: ESS/s of p(y|x), ours (as the workflow runs them) / {peer_label}",
                        jobs, pyro, "ESS/s", jobs / pyro, target=2.0, note=note))
    return rows


def run(opts) -> list[Row]:
    from workflow.config import load_config

    rows = []
    digits = digits_problem()
    rows += cost_per_gradient(digits, iterations=10 if opts.quick else 25, repeats=opts.repeats, peers=opts.peers)
    rows += cost_per_gradient(mnist_sized_problem(), iterations=1 if opts.quick else 3, repeats=opts.repeats,
                              peers=opts.peers)
    hmc_config = load_config(REPO / "config.yaml")["hmc"]
    if opts.quick:
        hmc_config = hmc_config | {"n_warmup": 30, "n_samples": 20}
    rows += chains_cost(digits, chains=4, iterations=10 if opts.quick else 25, repeats=opts.repeats)
    rows += mixing(digits, hmc_config, peers=opts.peers)
    rows += mixing_chains(digits, hmc_config, chains=4, peers=opts.peers, workers=opts.threads)
    return rows
