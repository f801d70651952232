import dataclasses
import os

import h5py
import numpy as np
import pytest

from workflow.storage.artifacts import (Alignment, ArtifactError, Posterior, read_alignment, read_posterior,
                                write_alignment, write_posterior)
from workflow.alignment.permutations import random_permutations

from .conftest import make_mlp


def samples_posterior(params, chains=2, draws=3, seed=0):
    rng = np.random.default_rng(seed)
    samples = {k: v[None, None] + 0.1 * rng.standard_normal((chains, draws, *v.shape)).astype(np.float32)
               for k, v in params.items()}
    return Posterior(kind="samples", method="ensemble", architecture="mlp",
                     architecture_args={"hidden": [16, 12], "activation": "relu"}, dataset="digits",
                     input_shape=(1, 4, 4), n_classes=5, seed=seed, samples=samples,
                     config={"name": "t", "nested": {"a": [1, 2]}}, diagnostics={"loss": np.arange(5.0)},
                     diagnostic_attrs={"test_error": 0.25})


def gaussian_posterior(params):
    return Posterior(kind="gaussian", method="vi", architecture="mlp",
                     architecture_args={"hidden": [16, 12], "activation": "relu"}, dataset="digits",
                     input_shape=(1, 4, 4), n_classes=5, seed=3, mean=params,
                     std={k: np.full_like(v, 0.05) for k, v in params.items()})


def test_samples_posterior_round_trips(tmp_path):
    _, _, params = make_mlp()
    post = samples_posterior(params)
    write_posterior(tmp_path / "p.h5", post)
    back = read_posterior(tmp_path / "p.h5")
    assert back.kind == "samples" and back.seed == 0 and back.config == post.config
    assert back.input_shape == (1, 4, 4) and back.n_classes == 5
    for k in params:
        np.testing.assert_array_equal(back.samples[k], post.samples[k])
    np.testing.assert_array_equal(back.diagnostics["loss"], np.arange(5.0))
    assert back.diagnostic_attrs["test_error"] == 0.25
    assert set(back.provenance["versions"]) >= {"torch", "numpy", "h5py", "python"}
    assert back.provenance["code_revision"] and back.provenance["created"]
    assert back.flat_samples()["out.weight"].shape == (6, 5, 12)
    assert os.listdir(tmp_path) == ["p.h5"]  # no temporary file left behind


def test_gaussian_posterior_round_trips(tmp_path):
    _, _, params = make_mlp()
    write_posterior(tmp_path / "g.h5", gaussian_posterior(params))
    back = read_posterior(tmp_path / "g.h5")
    assert back.kind == "gaussian"
    for k in params:
        np.testing.assert_array_equal(back.mean[k], params[k])
        np.testing.assert_allclose(back.std[k], 0.05)


def test_identical_content_gives_identical_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    _, _, params = make_mlp()
    write_posterior(tmp_path / "a.h5", samples_posterior(params))
    write_posterior(tmp_path / "b.h5", samples_posterior(params))
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_truncated_file_is_refused_naming_it(tmp_path):
    _, _, params = make_mlp()
    path = tmp_path / "p.h5"
    write_posterior(path, samples_posterior(params))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=str(path)):
        read_posterior(path)


def test_foreign_hdf5_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ArtifactError, match=f"{path}.*foreign"):
        read_posterior(path)


def test_non_hdf5_and_missing_files_are_refused(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ArtifactError, match="text.h5"):
        read_posterior(tmp_path / "text.h5")
    with pytest.raises(ArtifactError, match="no such artifact"):
        read_posterior(tmp_path / "absent.h5")


def test_parameters_must_match_the_architecture(tmp_path):
    _, _, params = make_mlp()
    post = dataclasses.replace(samples_posterior(params), architecture_args={"hidden": [16, 13], "activation": "relu"})
    write_posterior(tmp_path / "p.h5", post)
    with pytest.raises(ArtifactError, match="do not match architecture"):
        read_posterior(tmp_path / "p.h5")


def test_missing_parameter_block_is_refused(tmp_path):
    _, _, params = make_mlp()
    path = tmp_path / "p.h5"
    write_posterior(path, samples_posterior(params))
    with h5py.File(path, "a") as f:
        del f["samples/out.bias"]
    with pytest.raises(ArtifactError, match="holds parameters"):
        read_posterior(path)


def test_invalid_posteriors_are_not_written(tmp_path):
    _, _, params = make_mlp()
    bad = gaussian_posterior(params)
    bad.std["out.bias"][0] = -1.0
    with pytest.raises(ArtifactError, match="std of 'out.bias'"):
        write_posterior(tmp_path / "g.h5", bad)
    nan = samples_posterior(params)
    nan.samples["out.bias"][0, 0, 0] = np.nan
    with pytest.raises(ArtifactError, match="non-finite"):
        write_posterior(tmp_path / "s.h5", nan)
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    _, _, params = make_mlp()
    path = tmp_path / "p.h5"
    write_posterior(path, samples_posterior(params))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("workflow.storage.artifacts._write_posterior_group", boom)
    with pytest.raises(RuntimeError):
        write_posterior(path, samples_posterior(params, seed=9))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.h5"]


def test_alignment_round_trips(tmp_path, rng):
    _, spec, params = make_mlp()
    post = samples_posterior(params, seed=1)
    perms = random_permutations(spec.group_sizes(params), rng)
    al = Alignment(alignment="weight", method="ensemble", seed_a=0, seed_b=1, perms=perms,
                   objective_trace=np.array([1.0, 2.0]), aligned=post.permuted(spec, perms),
                   source_a="a.h5", source_b="b.h5", sweeps=2, converged=True)
    write_alignment(tmp_path / "al.h5", al)
    back = read_alignment(tmp_path / "al.h5")
    assert back.alignment == "weight" and back.converged and back.sweeps == 2
    for g in perms:
        np.testing.assert_array_equal(back.perms[g], perms[g])
    assert back.not_per_group == al.not_per_group
    np.testing.assert_array_equal(back.aligned.samples["out.weight"], al.aligned.samples["out.weight"])
    with h5py.File(tmp_path / "al.h5") as f:
        assert f.attrs["not_total"] == sum(al.not_per_group.values())
    with pytest.raises(ArtifactError, match="bnn-posterior"):
        read_posterior(tmp_path / "al.h5")  # an alignment is not a posterior


def test_artifacts_get_the_usual_file_permissions(tmp_path):
    _, _, params = make_mlp()
    write_posterior(tmp_path / "p.h5", samples_posterior(params))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "p.h5").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_gaussians_predictive_round_trips_and_bad_ones_are_refused(tmp_path):
    """'glm' travels with the artifact and makes its sample source linearised; files written before
    the attribute existed read as 'sample'; anything else is refused by name."""
    import h5py

    from workflow.storage.artifacts import ArtifactError

    post = gaussian_posterior(make_mlp()[2])
    post.predictive = "glm"
    write_posterior(tmp_path / "glm.h5", post)
    back = read_posterior(tmp_path / "glm.h5")
    assert back.predictive == "glm" and back.sample_source(4, 0).linearized
    assert not back.sample_source(4, 0, predictive="sample").linearized
    with h5py.File(tmp_path / "glm.h5", "a") as f:
        del f.attrs["predictive"]
    assert read_posterior(tmp_path / "glm.h5").predictive == "sample"
    post.predictive = "probit"
    with pytest.raises(ArtifactError, match="predictive 'probit' is not one of"):
        write_posterior(tmp_path / "bad.h5", post)
