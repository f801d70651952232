import math

import numpy as np
import pytest
import torch

from workflow.evaluation.barriers import barrier_height, gaussian_path, mixture_path, t_grid
from workflow.storage.artifacts import Posterior, w2_distance
from workflow.alignment.matching import weight_matching
from workflow.architectures import build_model
from workflow.alignment.permutations import invert, random_permutations
from workflow.evaluation.predict import Gaussian, log_predictive, to_torch
from workflow.inference.mean_field import MeanField, ViSettings, local_reparam_logits, sampled_logits, train_vi

from .conftest import make_mlp


def gaussian(params, seed=0, hidden=(16, 12)):
    rng = np.random.default_rng(seed)
    std = {k: np.exp(rng.uniform(-4, -1, v.shape)).astype(np.float32) for k, v in params.items()}
    return Posterior(kind="gaussian", method="vi", architecture="mlp",
                     architecture_args={"hidden": list(hidden), "activation": "relu"}, dataset="toy",
                     input_shape=(1, 4, 4), n_classes=5, seed=seed, mean=params, std=std)


def test_w2_of_diagonal_gaussians_matches_the_closed_form():
    # 1-d: W2(N(m1, s1^2), N(m2, s2^2))^2 = (m1 - m2)^2 + (s1 - s2)^2
    assert w2_distance({"w": np.array([1.0])}, {"w": np.array([2.0])}, {"w": np.array([4.0])},
                       {"w": np.array([0.5])}) == pytest.approx(math.sqrt(9 + 2.25))
    # against the general Gaussian formula: ||m1-m2||^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2)
    rng = np.random.default_rng(1)
    m1, m2, s1, s2 = rng.normal(size=6), rng.normal(size=6), rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    S1, S2 = np.diag(s1 ** 2), np.diag(s2 ** 2)
    root = np.diag(np.sqrt(np.diag(np.diag(s2) @ S1 @ np.diag(s2))))
    general = np.sum((m1 - m2) ** 2) + np.trace(S1 + S2 - 2 * root)
    assert w2_distance({"w": m1}, {"w": s1}, {"w": m2}, {"w": s2}) == pytest.approx(math.sqrt(general))


def test_w2_alignment_recovers_the_permutation_of_a_permuted_copy(rng):
    _, spec, params = make_mlp((16, 12))
    q = gaussian(params)
    perms = random_permutations(spec.group_sizes(params), rng)
    q_perm = q.permuted(spec, perms)
    result = weight_matching(q.mean, q_perm.mean, spec, extra_channels=[(q.std, q_perm.std, 1.0)])
    for g in perms:
        np.testing.assert_array_equal(result.perms[g], invert(perms[g]))
    aligned = q_perm.permuted(spec, result.perms)
    assert q.distance_to(aligned) == ("w2", 0.0)
    assert q.distance_to(q_perm)[1] > 0


def test_w2_alignment_uses_the_standard_deviations():
    """Equal means, permuted stds: only the std channel can find the permutation; W2 does, means-only cannot."""
    _, spec, params = make_mlp((10,))
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    q = gaussian(zero, seed=3, hidden=(10,))
    perm = {"P0": np.roll(np.arange(10), 3)}
    q_perm = q.permuted(spec, perm)
    w2 = weight_matching(q.mean, q_perm.mean, spec, extra_channels=[(q.std, q_perm.std, 1.0)])
    assert q.distance_to(q_perm.permuted(spec, w2.perms))[1] == pytest.approx(0.0, abs=1e-6)
    means_only = weight_matching(q.mean, q_perm.mean, spec)
    assert q.distance_to(q_perm.permuted(spec, means_only.perms))[1] > 0.01


def test_geodesic_endpoints_are_the_two_posteriors():
    model, spec, params = make_mlp()
    _, _, other = make_mlp(seed=4)
    qa, qb = gaussian(params), gaussian(other, seed=1)
    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 5, (64,))
    curve = gaussian_path(model, qa.mean, qa.std, qb.mean, qb.std, 30, 0, x, y, t_grid(5))
    eps = Gaussian(qa.mean, qa.std, 30, 0).noise(0, 30)
    for t, q in ((0.0, qa), (1.0, qb)):
        stack = {k: torch.as_tensor(q.mean[k]) + torch.as_tensor(q.std[k]) * eps[k] for k in q.mean}
        logp = log_predictive(model, stack, x)
        nll = -logp.gather(1, y[:, None]).mean().item()
        assert curve.loc[curve.t == t, "loss"].item() == pytest.approx(nll, rel=1e-5)


def test_barrier_of_a_posterior_with_itself_is_zero_up_to_mc_noise():
    model, _, params = make_mlp()
    q = gaussian({k: 3 * v for k, v in params.items()})
    x = torch.randn(200, 1, 4, 4)
    y = torch.func.functional_call(model, to_torch({k: 3 * v for k, v in params.items()}), (x,)).argmax(1)
    m, s = q.mean, q.std
    # common random numbers: the same eps at every t makes the curve exactly flat
    same = gaussian_path(model, m, s, m, s, 50, 0, x, y, t_grid(6))
    assert barrier_height(same.t, same.loss) == pytest.approx(0.0, abs=1e-6)
    # fresh noise per t: flat up to Monte Carlo noise
    losses = [gaussian_path(model, m, s, m, s, 50, i, x, y, np.array([0.0]))
              .loss.item() for i in range(6)]
    assert np.std(losses) < 0.05 * np.mean(losses) + 1e-3


def test_mixture_path_barrier_is_never_positive(rng):
    """-log is convex, so the mixture of two predictives never rises above the straight line."""
    ts = t_grid(21)
    for trial in range(20):
        n, c = 50, 4
        logp_a = torch.log_softmax(torch.randn(n, c) * 3, -1)
        logp_b = torch.log_softmax(torch.randn(n, c) * 3, -1)
        y = torch.randint(0, c, (n,))
        curve = mixture_path(logp_a, logp_b, y, ts)
        assert barrier_height(curve.t, curve.loss) <= 1e-12
        line = (1 - curve.t) * curve.loss.iloc[0] + curve.t * curve.loss.iloc[-1]
        assert (curve.loss <= line + 1e-9).all()


def test_kl_matches_the_closed_form_and_monte_carlo():
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[3])
    q = MeanField(model, sigma_init=0.3)
    prior = 0.7
    kl = q.kl(prior).item()
    expected = 0.0
    for mu, s in zip(q.mu, q.sigmas()):
        mu, s = mu.detach().double(), s.detach().double()
        expected += (torch.log(prior / s) + (s ** 2 + mu ** 2) / (2 * prior ** 2) - 0.5).sum().item()
    assert kl == pytest.approx(expected, rel=1e-5)
    # Monte Carlo estimate of E_q[log q - log p]
    w = q.sample(20000)
    logq = sum(torch.distributions.Normal(mu, s).log_prob(w[n]).sum(tuple(range(1, w[n].ndim)))
               for n, mu, s in zip(q.names, q.mu, q.sigmas()))
    logp = sum(torch.distributions.Normal(0.0, prior).log_prob(v).sum(tuple(range(1, v.ndim))) for v in w.values())
    mc = (logq - logp).detach()
    assert abs(mc.mean().item() - kl) < 5 * mc.std().item() / math.sqrt(len(mc))


def test_gaussian_kl_gradients_are_the_closed_form_ones():
    """The KL's hand-written backward pass against finite differences, and against autograd
    through the elementwise formula, including through softplus(rho) as VI uses it."""
    from workflow.inference.mean_field import gaussian_kl

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    sigma = (torch.rand(7, generator=g, dtype=torch.float64) + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m, s: gaussian_kl(m, s, 0.8), (mu, sigma))
    rho = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.nn.functional.softplus(rho)
    ours = torch.autograd.grad(gaussian_kl(mu, s, 0.8), (mu, rho))
    s = torch.nn.functional.softplus(rho)
    plain = torch.autograd.grad((math.log(0.8) - torch.log(s) + (s ** 2 + mu ** 2) / (2 * 0.64) - 0.5).sum(), (mu, rho))
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="flat vectors"):
        gaussian_kl(mu[None], sigma[None], 1.0)


@pytest.mark.parametrize("param", ["softplus", "exp"])
@pytest.mark.parametrize("n", [1, 3])
def test_training_draw_has_autograds_values_and_gradients(param, n):
    """The training step's samples and KL (one function, backward pass written out) against
    autograd through the elementwise formulas, and against finite differences."""
    from workflow.inference.mean_field import _DrawWithKL

    g = torch.Generator().manual_seed(n)
    mu = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)
    rho = (torch.randn(9, generator=g, dtype=torch.float64) - 1).requires_grad_(True)
    eps = torch.randn(n, 9, generator=g, dtype=torch.float64)
    probe = torch.randn(n, 9, generator=g, dtype=torch.float64)  # a linear functional of the samples

    def loss(w, kl):
        return (probe * w).sum() + 0.3 * kl

    w, kl = _DrawWithKL.apply(mu, rho, eps, 0.8, param)
    ours = torch.autograd.grad(loss(w, kl), (mu, rho))
    sigma = torch.nn.functional.softplus(rho) if param == "softplus" else torch.exp(rho)
    w_ref = mu + sigma * eps
    kl_ref = (math.log(0.8) - torch.log(sigma) + (sigma ** 2 + mu ** 2) / (2 * 0.64) - 0.5).sum()
    plain = torch.autograd.grad(loss(w_ref, kl_ref), (mu, rho))
    torch.testing.assert_close(w, w_ref, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(ours, plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda m, r: _DrawWithKL.apply(m, r, eps, 0.8, param), (mu, rho))


def test_training_draw_follows_the_global_seed_like_sample():
    """A step's samples are those ``sample`` draws from the same global RNG state."""
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[3])
    q = MeanField(model, sigma_init=0.3)
    torch.manual_seed(5)
    drawn, kl = q.draw(2, 0.7)
    torch.manual_seed(5)
    sampled = q.sample(2)
    for name in q.names:
        torch.testing.assert_close(drawn[name], sampled[name], rtol=0, atol=0)
    torch.testing.assert_close(kl, q.kl(0.7), rtol=1e-6, atol=0)


@pytest.mark.parametrize("param", ["softplus", "exp"])
def test_sigma_parameterisations_start_at_sigma_init(param):
    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[3])
    q = MeanField(model, sigma_init=0.05, sigma_param=param)
    for s in q.sigmas():
        torch.testing.assert_close(s, torch.full_like(s, 0.05))


def test_local_reparameterisation_has_the_same_predictive_moments():
    """Pre-activation sampling of the first layer matches weight sampling in mean and variance."""
    torch.manual_seed(0)
    model, _ = build_model("mlp", (1, 1, 3), 2, hidden=[4], activation="relu")
    q = MeanField(model, sigma_init=0.3)
    x = torch.randn(2, 1, 1, 3)
    with torch.no_grad():
        a = sampled_logits(model, q, x, 40000)
        b = local_reparam_logits(model, q, x, 40000)
    torch.testing.assert_close(a.mean(0), b.mean(0), atol=0.03, rtol=0.05)
    torch.testing.assert_close(a.std(0), b.std(0), atol=0.03, rtol=0.05)


@pytest.mark.parametrize("local", [False, True])
def test_vi_learns_and_stores_traces(local):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 1, 2, 3, generator=g)
    y = (x.flatten(1)[:, :3].sum(1) > 0).long()
    model, _ = build_model("mlp", (1, 2, 3), 2, hidden=[16])
    s = ViSettings(epochs=40, batch_size=50, lr=0.01, mc_samples=2, local_reparam=local, checkpoint_every=0)
    mean, std, traces, _ = train_vi(model, x, y, s, seed=0, device=torch.device("cpu"))
    assert set(traces) == {"loss", "nll", "kl", "elbo"} and len(traces["elbo"]) == 40
    assert traces["nll"][-1] < 0.6 * traces["nll"][0]
    acc = (log_predictive(model, Gaussian(mean, std, 50, 1), x).argmax(1) == y).float().mean().item()
    assert acc > 0.85


def test_vi_resumes_to_the_same_result(tmp_path, monkeypatch):
    import workflow.inference.resume as resume

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(100, 1, 2, 3, generator=g), torch.randint(0, 2, (100,), generator=g)

    def fit(checkpoint=None):
        model, _ = build_model("mlp", (1, 2, 3), 2, hidden=[8])
        s = ViSettings(epochs=8, batch_size=25, lr=0.01, mc_samples=2, checkpoint_every=2)
        return train_vi(model, x, y, s, seed=3, device=torch.device("cpu"), checkpoint=checkpoint)

    reference = fit()
    real_save = resume.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["epoch"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(resume, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "c.pt")
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    resumed = fit(tmp_path / "c.pt")
    assert resumed[3] == 4
    for k in reference[0]:
        np.testing.assert_array_equal(resumed[0][k], reference[0][k])
        np.testing.assert_array_equal(resumed[1][k], reference[1][k])


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_sigma_lr_scale_moves_rho_that_much_faster_than_mu(scale):
    """Adam's first step moves every parameter by about its learning rate: rho by scale x lr, mu by lr."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 2, 3, generator=g), torch.randint(0, 2, (40,), generator=g)
    model, _ = build_model("mlp", (1, 2, 3), 2, hidden=[8])
    s = ViSettings(epochs=1, batch_size=40, lr=0.001, sigma_init=0.05, sigma_lr_scale=scale, checkpoint_every=0)
    mean, std, _, _ = train_vi(model, x, y, s, seed=1, device=torch.device("cpu"))
    q0 = MeanField(build_model("mlp", (1, 2, 3), 2, hidden=[8])[0], 0.05)
    rho = np.concatenate([np.log(np.expm1(v.ravel())) for v in std.values()])
    drho = np.abs(rho - q0.rho_flat.detach().numpy())
    assert np.median(drho) == pytest.approx(scale * 0.001, rel=0.05)
    reset = MeanField(model, 0.05)  # train_vi reset the model to its initialisation at seed 1
    mu0 = np.concatenate([m.detach().numpy().ravel() for m in reset.mu])
    dmu = np.abs(np.concatenate([v.ravel() for v in mean.values()]) - mu0)
    assert np.median(dmu[dmu > 0]) == pytest.approx(0.001, rel=0.05)


def test_bad_vi_settings_are_refused():
    with pytest.raises(ValueError, match="sigma_param"):
        ViSettings(sigma_param="relu")
    with pytest.raises(ValueError, match="temperature"):
        ViSettings(temperature=0)
    with pytest.raises(ValueError, match="sigma_lr_scale"):
        ViSettings(sigma_lr_scale=0)


def test_the_learning_record_reads_sigma_and_the_kl_share():
    from workflow.methods.vi import learning_record

    std = {"a": np.array([0.1, 0.2, 0.3, 0.4]), "b": np.array([[0.5, 0.6], [0.7, 0.8]])}
    traces = {"nll": np.array([2.0, 0.5]), "kl": np.array([9.0, 30.0])}
    rec = learning_record(std, traces, {"sigma_init": 0.05, "temperature": 0.5}, n=100)
    assert rec["median_sigma"] == pytest.approx(0.45) and rec["sigma_init"] == 0.05
    assert rec["sigma_q10"] == pytest.approx(np.percentile(np.arange(1, 9) / 10, 10))
    assert rec["kl_share"] == pytest.approx(15.0 / (100 * 0.5 + 15.0))  # T KL / (N NLL + T KL), last epoch
