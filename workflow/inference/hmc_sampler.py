"""Full-batch Hamiltonian Monte Carlo on a flat parameter vector, resumable from checkpoints.

``run_hmc`` samples exp(-U(w)) for any differentiable potential U of a flat vector (for a BNN,
U(w) = -log p(D|w) - log p(w) over the whole data set; ``flatten``/``unflatten`` go between the
vector and named parameters): leapfrog with an identity mass matrix or a diagonal one adapted in
warm-up (Stan's windows: estimated from the draws, or given by a ``metric_fn`` of the position
such as the diagonal Laplace variance of a BNN), a Metropolis correction on
H = U + p^T M^-1 p / 2, and a step size tuned by dual averaging during warm-up only. Given the
same seed and checkpoint file, a killed run resumes to exactly the result of an uninterrupted
one. ``run_hmc_chains`` advances several chains together as one batch; each chain's result is
the one it has alone.

Convergence diagnostics of the draws (R-hat, bulk and tail ESS) are in ``mcmc_diagnostics``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .resume import Resume, fingerprint
from ..methods.hmc import SETTINGS as HMC_SETTINGS
from .training import check_positive, data_digest, schema_default

log = logging.getLogger(__name__)

# potential(x) -> U(x): x is [dim] (or [chains, dim] for the batched kernel), U is [] (or [chains])
Potential = Callable[[torch.Tensor], torch.Tensor]
# grad_fn(x) -> (U(x), dU/dx), both detached
GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

MASS_MATRICES = tuple(HMC_SETTINGS["mass_matrix"]["enum"])
# metric_fn(x) -> the diagonal inverse mass matrix at positions x ([chains, dim] -> [chains, dim], row by row)
MetricFn = Callable[[torch.Tensor], torch.Tensor]

# an energy error this large counts as a divergence (Stan's threshold); its acceptance is ~exp(-1000) anyway
DIVERGENCE_THRESHOLD = 1000.0


@dataclass
class HmcSettings:
    # the defaults are the config schema's (workflow/methods/hmc.py)
    step_size: float = schema_default(HMC_SETTINGS, "step_size")  # initial leapfrog step size
    n_leapfrog: int = schema_default(HMC_SETTINGS, "n_leapfrog")  # leapfrog steps per proposal (L)
    n_warmup: int = schema_default(HMC_SETTINGS, "n_warmup")  # iterations of step-size adaptation; never kept
    n_samples: int = schema_default(HMC_SETTINGS, "n_samples")  # samples kept after warm-up
    thinning: int = schema_default(HMC_SETTINGS, "thinning")  # keep every k-th post-warm-up iteration
    target_accept: float = schema_default(HMC_SETTINGS, "target_accept")
    adapt_step_size: bool = schema_default(HMC_SETTINGS, "adapt_step_size")
    # "diagonal": a diagonal mass matrix adapted in warm-up (Stan's windows), the draws' variances;
    # "ggn": the same windows, the metric from ``metric_fn`` at the position (BNNs: the diagonal
    # Laplace variance 1 / (GGN + prior precision)); "identity": none
    mass_matrix: str = schema_default(HMC_SETTINGS, "mass_matrix")
    checkpoint_every: int = schema_default(HMC_SETTINGS, "checkpoint_every")  # iterations; 0 disables checkpoints

    def __post_init__(self):
        for key in ("n_leapfrog", "n_warmup", "n_samples", "thinning", "checkpoint_every"):
            value = getattr(self, key)
            # int() would silently truncate 2.5 (e.g. from a YAML config) to 2
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{key} must be an integer, got {value!r}")
        check_positive(self, ints=("n_leapfrog", "n_samples", "thinning"), floats=("step_size",))
        if not math.isfinite(float(self.step_size)):
            raise ValueError(f"step_size must be finite, got {self.step_size!r}")
        if self.n_warmup < 0:
            raise ValueError(f"n_warmup must be >= 0, got {self.n_warmup!r}")
        if self.adapt_step_size and self.n_warmup < 1:
            raise ValueError("n_warmup must be >= 1 when adapt_step_size is on (adaptation happens only in "
                             "warm-up); set adapt_step_size: false to sample with a fixed step size")
        if not 0.0 < float(self.target_accept) < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        if self.mass_matrix not in MASS_MATRICES:
            raise ValueError(f"mass_matrix must be one of {', '.join(MASS_MATRICES)}, got {self.mass_matrix!r}")
        if self.mass_matrix != "identity" and self.n_warmup < 20:
            raise ValueError(f"mass_matrix {self.mass_matrix!r} is adapted in warm-up: n_warmup must be >= 20, got "
                             f"{self.n_warmup!r}")


@dataclass
class HmcResult:
    samples: np.ndarray  # [n_samples, dim], in the dtype of the initial position
    accepted: np.ndarray  # bool, one per post-warm-up iteration (n_samples * thinning)
    acceptance_rate: float  # over post-warm-up iterations
    divergences: int  # post-warm-up proposals with a non-finite energy or an energy error > 1000
    step_size: float  # final (adapted) step size, used for every post-warm-up iteration
    energy: np.ndarray  # potential U at each kept sample
    resumed_from: int = 0  # iteration resumed from (0 = fresh)
    inv_mass: np.ndarray | None = None  # the adapted diagonal inverse mass matrix (None: identity)


# ---------------------------------------------------------------------------------------------
# the kernel: pure functions of the state (plus a generator for the randomness)


def value_and_grad(potential: Potential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U(x) and dU/dx, detached. For a batch of chains, x is [chains, dim] and U is [chains]."""
    # the kernel may be called under no_grad (e.g. from evaluation code); it needs the graph
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        u = potential(x)
        (grad,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), grad.detach()


def hamiltonian(u: torch.Tensor, p: torch.Tensor, inv_mass: torch.Tensor | None = None) -> torch.Tensor:
    """H = U + p^T M^-1 p / 2 (M = identity, or diag(1 / inv_mass)), in float64 so the Metropolis test is
    not rounded away."""
    if inv_mass is None:
        return u.double() + 0.5 * p.double().pow(2).sum(-1)
    return u.double() + 0.5 * (inv_mass.double() * p.double().pow(2)).sum(-1)


def leapfrog(grad_fn: GradFn, x: torch.Tensor, p: torch.Tensor, grad: torch.Tensor,
             step_size: float | torch.Tensor, n_steps: int, inv_mass: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_steps`` leapfrog steps from (x, p), given grad = dU/dx at x (velocity M^-1 p).

    Returns (x, p, U, grad) at the end, and a mask of trajectories that met a non-finite potential
    or gradient anywhere on the way. The mask stays on the device: nothing here waits for the
    GPU, the caller reads the outcome once per trajectory.
    """
    bad = torch.zeros(x.shape[:-1], dtype=torch.bool, device=x.device)
    u = torch.full(x.shape[:-1], float("nan"), dtype=x.dtype, device=x.device)
    p = p - 0.5 * step_size * grad
    for i in range(n_steps):
        x = x + step_size * (p if inv_mass is None else inv_mass * p)
        u, grad = grad_fn(x)
        bad = bad | ~torch.isfinite(u) | ~torch.isfinite(grad).all(-1)
        p = p - (step_size if i + 1 < n_steps else 0.5 * step_size) * grad
    return x, p, u, grad, bad


@dataclass
class Step:
    """Outcome of one HMC transition (per chain for a batch)."""
    x: torch.Tensor
    u: torch.Tensor
    grad: torch.Tensor
    accepted: torch.Tensor  # bool
    accept_prob: torch.Tensor  # min(1, exp(-energy error)); 0 for a non-finite proposal
    diverged: torch.Tensor  # bool
    energy_error: torch.Tensor


def hmc_step(grad_fn: GradFn, x: torch.Tensor, u: torch.Tensor, grad: torch.Tensor,
             step_size: float | torch.Tensor, n_leapfrog: int, generator: torch.Generator | Sequence[torch.Generator],
             energy_fn: Potential | None = None, inv_mass: torch.Tensor | None = None) -> Step:
    """One HMC transition from position x (potential u, gradient grad), with a fresh momentum.

    Works on one chain (x is [dim]) or independent chains in a batch (x is [chains, dim], the
    potential then returning [chains]). With one ``generator``, the momenta of all chains, then one
    uniform per chain, are drawn from it. With a sequence of generators, one per chain, each chain
    draws its momentum and then its uniform from its own, and its energies are summed on its own
    row: a chain's transition is then the same whichever batch it runs in. ``step_size`` is a number
    or one per chain ([chains, 1]). ``energy_fn``, if given, recomputes U at the proposal for the
    Metropolis test (full precision when the gradients are taken in mixed precision); ``u`` must
    then come from it too. ``inv_mass``: the diagonal of the inverse mass matrix (None: identity),
    shared or one row per chain; momenta are then drawn from N(0, diag(1 / inv_mass)).
    """
    per_chain = not isinstance(generator, torch.Generator)
    if per_chain:
        if x.ndim != 2 or len(generator) != len(x):
            raise ValueError(f"one generator per chain: got {len(generator)} for positions of shape {tuple(x.shape)}")
        draws = [(torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=x.device),
                  torch.rand((), generator=g, dtype=torch.float64, device=x.device)) for g in generator]
        p0, log_uniform = torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws]).log()
    else:
        p0 = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        log_uniform = torch.rand(x.shape[:-1], generator=generator, dtype=torch.float64, device=x.device).log()
    if inv_mass is not None:
        p0 = p0 / inv_mass.sqrt()
    x1, p1, u1, grad1, bad = leapfrog(grad_fn, x, p0, grad, step_size, n_leapfrog, inv_mass)
    if energy_fn is not None:
        with torch.no_grad():
            u1 = energy_fn(x1)
    if per_chain:
        # row by row, on copies: a reduction over a [chains, dim] block, or over a row at an offset,
        # may sum in another order than over the chain alone
        masses = chain_rows(inv_mass.expand_as(x)) if inv_mass is not None else [None] * len(x)
        energy_error = torch.stack([hamiltonian(a, b, m) for a, b, m in zip(u1, chain_rows(p1), masses)]) - \
            torch.stack([hamiltonian(a, b, m) for a, b, m in zip(u, chain_rows(p0), masses)])
    else:
        energy_error = hamiltonian(u1, p1, inv_mass) - hamiltonian(u, p0, inv_mass)
    finite = torch.isfinite(energy_error) & ~bad
    # a non-finite proposal has acceptance probability 0: it is rejected and its NaNs never enter the state
    accept_prob = torch.where(finite, torch.exp(torch.clamp(-energy_error, max=0.0)), 0.0)
    accepted = finite & (log_uniform < -energy_error)
    diverged = ~finite | (energy_error > DIVERGENCE_THRESHOLD)
    keep = accepted.unsqueeze(-1)
    return Step(torch.where(keep, x1, x), torch.where(accepted, u1, u), torch.where(keep, grad1, grad),
                accepted, accept_prob, diverged, energy_error)


@dataclass(frozen=True)
class DualAveraging:
    """State of the dual averaging of log step size (Hoffman & Gelman 2014, Algorithm 5)."""
    mu: float  # log step size the iterates shrink towards: log(10 * initial step)
    log_step: float  # step size to use next (during warm-up)
    log_step_bar: float = 0.0  # averaged iterate: the step size after warm-up
    h_bar: float = 0.0  # running mean of (target - acceptance probability)
    count: int = 0

    @classmethod
    def start(cls, step_size: float) -> DualAveraging:
        return cls(mu=math.log(10.0 * step_size), log_step=math.log(step_size))


def dual_averaging_update(state: DualAveraging, accept_prob: float, target: float, gamma: float = 0.05,
                          t0: float = 10.0, kappa: float = 0.75) -> DualAveraging:
    """One adaptation step after an iteration with Metropolis acceptance probability ``accept_prob``."""
    m = state.count + 1
    w = 1.0 / (m + t0)
    h_bar = (1.0 - w) * state.h_bar + w * (target - accept_prob)
    log_step = state.mu - math.sqrt(m) / gamma * h_bar
    eta = m ** -kappa
    log_step_bar = eta * log_step + (1.0 - eta) * state.log_step_bar
    return replace(state, log_step=log_step, log_step_bar=log_step_bar, h_bar=h_bar, count=m)


def adaptation_windows(n_warmup: int, init_buffer: int = 75, term_buffer: int = 50,
                       base_window: int = 25) -> list[tuple[int, int]]:
    """Stan's slow windows of mass-matrix adaptation, as [start, end) iterations of warm-up: a fast
    initial buffer (step size only), windows doubling from ``base_window`` (the last one stretched to
    the terminal buffer), then a fast terminal buffer. A warm-up shorter than the three defaults
    together uses 15% / 75% / 10% of it, as Stan does."""
    if n_warmup < init_buffer + term_buffer + base_window:
        init_buffer, term_buffer = int(0.15 * n_warmup), int(0.1 * n_warmup)
        base_window = n_warmup - init_buffer - term_buffer
    end_slow = n_warmup - term_buffer
    windows, start, size = [], init_buffer, base_window
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:  # the next window would not fit: this one takes the rest
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


@dataclass
class Welford:
    """Running mean and variance of positions (float64), merged per iteration."""
    count: int
    mean: torch.Tensor
    m2: torch.Tensor

    @classmethod
    def start(cls, like: torch.Tensor) -> Welford:
        zeros = torch.zeros(like.shape, dtype=torch.float64, device=like.device)
        return cls(0, zeros, zeros.clone())

    def add(self, x: torch.Tensor) -> Welford:
        count = self.count + 1
        delta = x.double() - self.mean
        mean = self.mean + delta / count
        return Welford(count, mean, self.m2 + delta * (x.double() - mean))

    def inv_mass(self, dtype) -> torch.Tensor:
        """Stan's regularised estimate: the variance shrunk towards 1e-3 by 5 pseudo-draws."""
        n = self.count
        var = self.m2 / max(n - 1, 1)
        return ((n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))).to(dtype)


# ---------------------------------------------------------------------------------------------
# the sampler


def _checked_metric(inv_mass: torch.Tensor, x: torch.Tensor, desc: str) -> torch.Tensor:
    """A metric_fn's inverse mass matrix, refused unless it is [chains, dim], finite and positive."""
    if not torch.is_tensor(inv_mass) or inv_mass.shape != x.shape:
        shape = tuple(inv_mass.shape) if torch.is_tensor(inv_mass) else type(inv_mass).__name__
        raise ValueError(f"{desc}: metric_fn must return the inverse mass matrix as a {tuple(x.shape)} tensor, "
                         f"got {shape}")
    if not (torch.isfinite(inv_mass).all() and (inv_mass > 0).all()):
        raise ValueError(f"{desc}: metric_fn returned a non-finite or non-positive inverse mass matrix")
    return inv_mass.to(dtype=x.dtype, device=x.device)


def run_hmc(potential: Potential | None, init: torch.Tensor, settings: HmcSettings, *, seed: int,
            checkpoint: str | os.PathLike | None = None, identity: dict | None = None,
            desc: str = "HMC", grad_fn: GradFn | None = None, energy_fn: Potential | None = None,
            metric_fn: MetricFn | None = None) -> HmcResult:
    """One HMC chain from ``init`` (a flat vector): ``run_hmc_chains`` with one chain."""
    if init.ndim != 1:
        raise ValueError(f"init must be a flat parameter vector, got shape {tuple(init.shape)}")
    return run_hmc_chains(potential, init[None], settings, seeds=[seed], checkpoint=checkpoint, identity=identity,
                          desc=desc, grad_fn=grad_fn, energy_fn=energy_fn, metric_fn=metric_fn)[0]


def chain_rows(xb: torch.Tensor) -> list[torch.Tensor]:
    """Each chain's row of a [chains, dim] batch as a fresh copy, not a view at the row's offset:
    a kernel may be chosen by its input's alignment (cuBLASLt does), and a chain's numbers must not
    depend on where in a batch it sits. Differentiable: gradients reach the batch."""
    return [row.clone() for row in xb.unbind(0)]


def chains_value_and_grad(potential: Potential | None, grad_fn: GradFn | None):
    """(U, dU/dx) of a [chains, dim] batch from a one-chain potential or grad_fn, chain by chain.

    With a potential, the chains share one autograd graph (one backward call for all); with a
    grad_fn, it is called per chain. Either way each chain's numbers are those of its own
    evaluation on a copy of its row, so a chain does not depend on the batch it runs in."""
    if grad_fn is not None:
        def batch(xb):
            pairs = [grad_fn(row) for row in chain_rows(xb)]
            return torch.stack([u for u, _ in pairs]), torch.stack([g for _, g in pairs])
        return batch
    if potential is None:
        raise ValueError("run_hmc needs a potential or a grad_fn")
    return lambda xb: value_and_grad(lambda v: torch.stack([potential(row) for row in chain_rows(v)]), xb)


def run_hmc_chains(potential: Potential | None, init: torch.Tensor, settings: HmcSettings, *, seeds: Sequence[int],
                   checkpoint: str | os.PathLike | None = None, identity: dict | None = None, desc: str = "HMC",
                   grad_fn: GradFn | None = None, energy_fn: Potential | None = None,
                   metric_fn: MetricFn | None = None) -> list[HmcResult]:
    """Independent HMC chains advanced together, one per row of ``init`` ([chains, dim]) and seed:
    ``n_warmup`` adaptation iterations, then ``n_samples * thinning`` iterations of which every
    ``thinning``-th is kept. Returns one result per chain.

    The chains step as one batch: one trajectory loop, one host sync per iteration for all of
    them, the positions, momenta and adaptation state as [chains, ...] tensors. Each chain keeps its
    own generator (seeded by its seed: momenta and acceptance uniforms), step size, dual averaging
    and mass matrix, and its potential and energies are evaluated on its own row, so a chain's
    result is the same, bit for bit on one machine, whether it runs alone or with others.

    ``potential`` and ``grad_fn`` take one chain's flat vector: U(x) (scalar), or (U, dU/dx)
    replacing autograd, e.g. to sum a full-batch gradient over data chunks. ``energy_fn``
    (position -> U), if given, is the potential of the Metropolis test, e.g. in full precision when
    ``grad_fn`` runs in mixed precision. The step size is adapted by dual averaging during warm-up
    only; from the first post-warm-up iteration on it is fixed to the averaged value exp(log
    eps_bar). A checkpoint is resumed only if it was made for the same seeds, settings, initial
    positions, dtype, device and ``identity`` (e.g. the job's config and data); otherwise it is
    ignored with a warning.

    ``metric_fn`` (``mass_matrix: ggn``): positions [chains, dim] -> the diagonal inverse mass
    matrix there, row by row (a row must depend on its own chain only). It is taken at the start
    and at the end of each of Stan's slow windows of warm-up (not estimated from draws), and the
    step size is adapted afresh after each.
    """
    seeds = _checked_seeds(init, seeds)
    n_chains, n_post = len(init), settings.n_samples * settings.thinning
    total = settings.n_warmup + n_post
    batch_grad = chains_value_and_grad(potential, grad_fn)
    batch_energy = None
    if energy_fn is not None:
        def batch_energy(xb):
            return torch.stack([energy_fn(row) for row in chain_rows(xb)])

    x = init.detach().clone()
    u, grad = batch_grad(x)
    if batch_energy is not None:
        with torch.no_grad():
            u = batch_energy(x)
    _check_start(u, grad, seeds, desc)
    gens = [torch.Generator(device=x.device).manual_seed(s) for s in seeds]
    # diagonal mass matrix, per chain: estimated from the positions of each slow window of warm-up
    # ("diagonal"), or metric_fn at each window's start and end ("ggn")
    adapt = _Adaptation.plan(settings, metric_fn, desc)
    st = _Chains(x, u, grad, das=[DualAveraging.start(settings.step_size)] * n_chains,
                 step_sizes=[float(settings.step_size)] * n_chains,
                 inv_mass=torch.ones_like(x) if adapt.metric else None,
                 welford=Welford.start(x) if adapt.diagonal else None,
                 # the kept draws on the CPU: they may be large
                 samples=torch.empty(n_chains, settings.n_samples, x.shape[1], dtype=x.dtype),
                 energy=np.empty((n_chains, settings.n_samples)), accepted=np.zeros((n_chains, n_post), dtype=bool),
                 divergences=np.zeros(n_chains, dtype=int))
    kept_settings = {k: v for k, v in asdict(settings).items() if k != "checkpoint_every"}
    resume = Resume(checkpoint, fingerprint(x.device, identity, seeds=seeds, settings=kept_settings, dim=x.shape[1],
                                            dtype=str(x.dtype), init=data_digest(x.cpu())), desc)
    start = 0
    state = resume.saved_state()  # on the CPU: a CUDA generator's state is a CPU tensor too
    if state is not None:
        start = st.restore(state, gens, init.device, adapt)
        log.info("%s: resumed from %s at iteration %d", desc, resume.path, start)

    bar = tqdm(range(start, total), desc=desc, disable=None)
    for it in bar:
        eps = torch.tensor(st.step_sizes, dtype=st.x.dtype, device=st.x.device).unsqueeze(1)
        step = hmc_step(batch_grad, st.x, st.u, st.grad, eps, settings.n_leapfrog, gens, batch_energy, st.inv_mass)
        st.x, st.u, st.grad = step.x, step.u, step.grad
        # the trajectories' outcome in one transfer: the one host sync of the iteration
        accept_prob, was_accepted, diverged, u_now = torch.stack(
            [step.accept_prob.double(), step.accepted.double(), step.diverged.double(), st.u.double()]).tolist()
        if it < settings.n_warmup:
            adapt.update(st, it, accept_prob, settings, metric_fn, desc)
        else:
            st.record(it - settings.n_warmup, was_accepted, diverged, u_now, settings.thinning)
        done = it + 1
        if done % 10 == 0:
            bar.set_postfix(step=" ".join(f"{e:.3g}" for e in st.step_sizes), div=int(st.divergences.sum()))
        if done % max(1, total // 20) == 0 or done == settings.n_warmup:
            st.log_progress(desc, done, total, settings.n_warmup)
        if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < total:
            resume.save(st.checkpoint_state(done, gens, settings))
    return [st.result(c, seed, desc if n_chains == 1 else f"{desc} (seed {seed})", n_post, start)
            for c, seed in enumerate(seeds)]


def _checked_seeds(init: torch.Tensor, seeds: Sequence[int]) -> list[int]:
    if init.ndim != 2 or len(init) < 1:
        raise ValueError(f"init must be [chains, dim] flat parameter vectors, got shape {tuple(init.shape)}")
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(init):
        raise ValueError(f"one seed per chain: got {len(seeds)} seeds for {len(init)} initial positions")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the chains' seeds must differ, got {seeds}")
    return seeds


def _check_start(u: torch.Tensor, grad: torch.Tensor, seeds: list[int], desc: str) -> None:
    n_chains = len(seeds)
    if u.shape != (n_chains,):
        raise ValueError(f"{desc}: the potential must return a scalar, got shape {tuple(u.shape[1:])}")
    for c in range(n_chains):
        if not (torch.isfinite(u[c]) and torch.isfinite(grad[c]).all()):
            raise ValueError(f"{desc}: the potential or its gradient is not finite at the initial position"
                             f"{f' of seed {seeds[c]}' if n_chains > 1 else ''}")


@dataclass
class _Chains:
    """The state of chains advanced together: positions, potentials and gradients ([chains, ...]),
    per-chain step-size adaptation and mass matrix, and what the sampling phase has kept so far."""

    x: torch.Tensor
    u: torch.Tensor
    grad: torch.Tensor
    das: list
    step_sizes: list
    inv_mass: torch.Tensor | None
    welford: Welford | None
    samples: torch.Tensor
    energy: np.ndarray
    accepted: np.ndarray
    divergences: np.ndarray

    def record(self, j: int, was_accepted, diverged, u_now, thinning: int) -> None:
        """Post-warm-up iteration j: its acceptances and divergences; every thinning-th draw kept."""
        self.accepted[:, j] = np.asarray(was_accepted, dtype=bool)
        self.divergences += np.asarray(diverged, dtype=bool)
        if (j + 1) % thinning == 0:
            k = j // thinning
            self.samples[:, k] = self.x.detach().cpu()
            self.energy[:, k] = u_now

    def log_progress(self, desc: str, done: int, total: int, n_warmup: int) -> None:
        # progress in the job's log (the bar is off when output is not a terminal): about 20 lines
        post = max(0, done - n_warmup)
        log.info("%s: iteration %d / %d (%s), step size %s, acceptance so far %s, divergences %s", desc, done,
                 total, "warm-up" if done <= n_warmup else "sampling", " ".join(f"{e:.4g}" for e in self.step_sizes),
                 " ".join(f"{r:.3f}" for r in self.accepted[:, :post].mean(1)) if post else "-",
                 " ".join(str(d) for d in self.divergences))

    def checkpoint_state(self, done: int, gens, settings: HmcSettings) -> dict:
        post = max(0, done - settings.n_warmup)
        kept = post // settings.thinning
        # clone: saving a slice would write the whole preallocated buffer
        return {"iteration": done, "x": self.x, "u": self.u, "grad": self.grad,
                "dual_averaging": [asdict(d) for d in self.das], "step_sizes": self.step_sizes,
                "generators": [g.get_state() for g in gens],
                "samples": self.samples[:, :kept].clone(), "energy": self.energy[:, :kept].copy(),
                "accepted": self.accepted[:, :post].copy(), "divergences": self.divergences.tolist(),
                "inv_mass": self.inv_mass, "welford": asdict(self.welford) if self.welford is not None else None}

    def restore(self, state: dict, gens, device, adapt: "_Adaptation") -> int:
        """Back to a checkpoint's state; returns the iteration it was saved after."""
        self.x, self.u, self.grad = (state[k].to(device) for k in ("x", "u", "grad"))
        self.das = [DualAveraging(**d) for d in state["dual_averaging"]]
        self.step_sizes = [float(e) for e in state["step_sizes"]]
        for g, g_state in zip(gens, state["generators"]):
            g.set_state(g_state)
        kept, post = state["samples"].shape[1], state["accepted"].shape[1]
        self.samples[:, :kept], self.energy[:, :kept], self.accepted[:, :post] = (state["samples"], state["energy"],
                                                                                  state["accepted"])
        self.divergences = np.asarray(state["divergences"], dtype=int)
        if adapt.metric:
            self.inv_mass = state["inv_mass"].to(device)
        if adapt.diagonal:
            w = state["welford"]
            self.welford = Welford(int(w["count"]), w["mean"].to(device), w["m2"].to(device))
        return int(state["iteration"])

    def result(self, c: int, seed: int, name: str, n_post: int, start: int) -> HmcResult:
        if n_post and self.divergences[c] == n_post:
            # a chain that never left its start is no posterior sample: stop rather than write it
            raise FloatingPointError(f"{name}: every one of the {n_post} post-warm-up proposals diverged (non-finite "
                                     f"or energy error > {DIVERGENCE_THRESHOLD:g}) at step size "
                                     f"{self.step_sizes[c]:.4g}; lower the step size, or adapt it in warm-up "
                                     "(adapt_step_size, n_warmup)")
        if self.divergences[c]:
            log.warning("%s: %d of %d post-warm-up proposals diverged; consider a smaller target step size "
                        "(higher target_accept)", name, self.divergences[c], n_post)
        rate = float(self.accepted[c].mean())
        log.info("%s: acceptance %.3f, step size %.4g", name, rate, self.step_sizes[c])
        return HmcResult(self.samples[c].numpy(), self.accepted[c], rate, int(self.divergences[c]),
                         self.step_sizes[c], self.energy[c], start,
                         self.inv_mass[c].cpu().numpy() if self.inv_mass is not None else None)


@dataclass
class _Adaptation:
    """Warm-up: dual averaging of each chain's step size, and the mass matrix of Stan's slow windows."""

    metric: bool  # a mass matrix is adapted
    diagonal: bool  # estimated from the draws' variances (else metric_fn at the windows' bounds)
    windows: list
    metric_points: set

    @classmethod
    def plan(cls, settings: HmcSettings, metric_fn, desc: str) -> "_Adaptation":
        metric = settings.mass_matrix != "identity"
        diagonal = settings.mass_matrix == "diagonal"
        if settings.mass_matrix == "ggn" and metric_fn is None:
            raise ValueError(f"{desc}: mass_matrix 'ggn' takes its metric from a metric_fn (the BNN sampler gives "
                             "one); none was given")
        windows = adaptation_windows(settings.n_warmup) if metric else []
        points = set() if diagonal else {bound for window in windows for bound in window}
        return cls(metric, diagonal, windows, points)

    def update(self, st: _Chains, it: int, accept_prob, settings: HmcSettings, metric_fn, desc: str) -> None:
        if settings.adapt_step_size:
            st.das = [dual_averaging_update(d, a, settings.target_accept) for d, a in zip(st.das, accept_prob)]
            # the last warm-up iteration hands over the averaged step size, fixed from then on
            last = it + 1 == settings.n_warmup
            st.step_sizes = [math.exp(d.log_step_bar if last else d.log_step) for d in st.das]
        window = next((w for w in self.windows if w[0] <= it < w[1]), None) if self.diagonal else None
        if it + 1 in self.metric_points:
            st.inv_mass = _checked_metric(metric_fn(st.x.detach()), st.x, desc)
            if settings.adapt_step_size:
                st.das = [DualAveraging.start(e) for e in st.step_sizes]
        if window is not None:
            st.welford = st.welford.add(st.x)
            if it + 1 == window[1]:
                # a new metric: the step size is adapted afresh from the current one (as Stan)
                st.inv_mass, st.welford = st.welford.inv_mass(st.x.dtype), Welford.start(st.x)
                if settings.adapt_step_size:
                    st.das = [DualAveraging.start(e) for e in st.step_sizes]


# ---------------------------------------------------------------------------------------------
# named parameters <-> flat vector


def flatten(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate the parameters, in the dict's order, into one flat vector."""
    if not params:
        raise ValueError("flatten needs at least one parameter")
    return torch.cat([t.reshape(-1) for t in params.values()])


def unflatten(vec: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector into tensors shaped as ``like``'s, in ``like``'s key order.

    The pieces are views of ``vec``, so gradients of a potential built on them reach ``vec``.
    """
    sizes = [t.numel() for t in like.values()]
    if vec.ndim != 1 or vec.numel() != sum(sizes):
        raise ValueError(f"vector of shape {tuple(vec.shape)} does not hold the {sum(sizes)} values of {list(like)}")
    return {k: piece.reshape(t.shape) for (k, t), piece in zip(like.items(), torch.split(vec, sizes))}
