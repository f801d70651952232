"""VI benchmarks: one mean-field VI step against one MAP step at the same batch size (our
training loop, Adam, one weight sample per step), and one VI epoch against Pyro's SVI with an
AutoNormal guide (Trace_ELBO, the same MLP, N(0, 1) prior, data, batch size, minibatch order,
learning rate and initial sigma).
"""

from __future__ import annotations

import statistics
import time

from _common import Problem, Row, digits_problem, median_time, mnist_sized_problem


def _epoch_seconds(fn, epochs: int) -> float:
    """Seconds per epoch of ``fn(epochs)`` (a training run), less a one-epoch run's fixed start-up."""
    start = time.perf_counter()
    fn(1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    fn(epochs + 1)
    return (time.perf_counter() - start - one) / epochs


def _interleaved_medians(fns, epochs: int, repeats: int) -> list[float]:
    """Median seconds per epoch of each training run, measured in turns (run 1, run 2, run 1, ...)
    after one untimed run each (lazy initialisation, caches): a machine whose speed drifts slows
    every run alike, so the ratio of the medians holds where one-off timings do not."""
    for fn in fns:
        fn(1)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            out.append(_epoch_seconds(fn, epochs))
    return [statistics.median(t) for t in times]


def ours(problem: Problem, batch_size: int, epochs: int, repeats: int = 3) -> tuple[float, float, float]:
    """Seconds per epoch of MAP (a deep-ensemble member), of mean-field VI and of VI with local
    reparameterisation, measured in turns."""
    import torch

    from workflow.inference.training import MapSettings, train_map
    from workflow.inference.mean_field import ViSettings, train_vi

    cpu = torch.device("cpu")

    def map_run(n):
        train_map(problem.model(), problem.x, problem.y, MapSettings(epochs=n, batch_size=batch_size,
                                                                     checkpoint_every=0), seed=0, device=cpu)

    def vi_run(n, local_reparam=False):
        train_vi(problem.model(), problem.x, problem.y,
                 ViSettings(epochs=n, batch_size=batch_size, checkpoint_every=0, sigma_init=0.05,
                            local_reparam=local_reparam), seed=0, device=cpu)

    return tuple(_interleaved_medians([map_run, vi_run, lambda n: vi_run(n, True)], epochs, repeats))


def vi_only_operations(problem: Problem, repeats: int) -> float:
    """Seconds per step of the per-weight operations a VI step cannot skip and a MAP step does not
    have: D normal draws, sigma = softplus(rho), its derivative sigmoid(rho) and log sigma for the
    KL. Timed in a loop on warm caches, so MAP step + this is a lower bound of a VI step."""
    import torch

    d = sum(p.numel() for p in problem.model().parameters())
    rho = torch.full((d,), -3.0)
    sigma = torch.nn.functional.softplus(rho)

    def operations(steps=50):
        for _ in range(steps):
            torch.randn(d)
            torch.nn.functional.softplus(rho)
            torch.sigmoid(rho)
            torch.log(sigma)

    return median_time(operations, max(3, repeats)) / 50


def pyro_svi(problem: Problem, batch_size: int, epochs: int, repeats: int = 3) -> float:
    """Seconds per epoch of Pyro SVI (AutoNormal, Trace_ELBO, Adam 1e-3) on the same Bayesian MLP."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.nn import PyroSample
    from pyro.nn.module import to_pyro_module_

    pyro.clear_param_store()
    bayes = problem.model()  # our MLP, its layers made Bayesian in place
    to_pyro_module_(bayes)
    for module in bayes.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight = PyroSample(dist.Normal(0.0, 1.0).expand(list(module.weight.shape)).to_event(2))
            module.bias = PyroSample(dist.Normal(0.0, 1.0).expand(list(module.bias.shape)).to_event(1))
    n = len(problem.x)

    def model(xb, yb):
        logits = bayes(xb)
        with pyro.plate("data", n, subsample_size=len(xb)):
            pyro.sample("y", dist.Categorical(logits=logits), obs=yb)

    guide = AutoNormal(model, init_scale=0.05)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    gen = torch.Generator().manual_seed(0)

    def run(n_epochs):
        for _ in range(n_epochs):
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                svi.step(problem.x[idx], problem.y[idx])

    return _interleaved_medians([run], epochs, repeats)[0]


def run(opts) -> list[Row]:
    rows = []
    for problem, batch, epochs in ((digits_problem(), 64, 3 if opts.quick else 10),
                                   (mnist_sized_problem(), 64, 1 if opts.quick else 2)):
        map_epoch, vi_epoch, local_epoch = ours(problem, batch, epochs, opts.repeats)
        steps = -(-len(problem.x) // batch)
        map_step = map_epoch / steps
        # the target bounds the cost ratio itself: at most 2 MAP steps
        rows.append(Row("VI", f"{problem.name}: one VI step, in MAP steps (batch {batch})", vi_epoch / map_epoch,
                        None, "x MAP", None, target=2.0, at_most=True,
                        note=f"{vi_epoch / steps * 1e3:.2f} ms against {map_step * 1e3:.2f} ms"))
        rows.append(Row("VI", f"{problem.name}: one VI step with local reparameterisation, in MAP steps",
                        local_epoch / map_epoch, None, "x MAP", None,
                        note=f"{local_epoch / steps * 1e3:.2f} ms"))
        floor = vi_only_operations(problem, opts.repeats)
        rows.append(Row("VI", f"{problem.name}: lower bound of a VI step, in MAP steps: a MAP step plus D normal "
                              "draws, softplus, sigmoid and log over the D weights", (map_step + floor) / map_step,
                        None, "x MAP", None, note=f"{floor * 1e3:.2f} ms of such operations per step"))
        if opts.peers:
            svi_epoch = pyro_svi(problem, batch, epochs, opts.repeats)
            rows.append(Row("VI", f"{problem.name}: Pyro SVI epoch / our VI epoch (AutoNormal, batch {batch})",
                            vi_epoch, svi_epoch, "s", svi_epoch / vi_epoch, target=3.0))
    return rows
