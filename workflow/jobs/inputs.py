"""Reading a job's input artifacts with the checks every stage needs (seed, data, kind, compatibility)."""

from __future__ import annotations

from ..storage import artifacts
from ..storage.artifacts import ArtifactError, Posterior
from ..storage.prepared import data_identity


def check_posterior(post: Posterior, path, *, seed: int | None = None, data: dict | None = None) -> None:
    """Refuse a posterior whose stored seed is not the one its place in the workflow says, or
    that was trained on another data set or split than the one it is evaluated with."""
    if seed is not None and post.seed != seed:
        raise ArtifactError(f"{path}: holds the posterior of seed {post.seed}, but is used as seed {seed} "
                            "(a file copied or renamed by hand?)")
    if data is not None and "data" in post.config:
        if data_identity(post.config["data"]) != data_identity(data["config"]):
            raise ArtifactError(f"{path}: was trained on data {data_identity(post.config['data'])}, but is "
                                f"evaluated on {data_identity(data['config'])}")


def read_posterior(path, *, seed: int | None = None, data: dict | None = None, kind: str | None = None,
                   what: str = "") -> Posterior:
    """A posterior artifact, checked for its seed, data and kind."""
    post = artifacts.read_posterior(path)
    check_posterior(post, path, seed=seed, data=data)
    if kind is not None and post.kind != kind:
        expected = {"gaussian": "a Gaussian posterior", "samples": "a sample posterior"}[kind]
        raise ArtifactError(f"{path}: {what or 'this step'} needs {expected}, found kind {post.kind!r} "
                            f"(method {post.method})")
    return post


def read_sample_sets(paths, seeds=None, data=None, what: str = "rebasin") -> list[Posterior]:
    """Sample posteriors of one method (HMC chains, ensemble members), checked to be compatible."""
    posts = [read_posterior(p, seed=seeds[i] if seeds else None, data=data, kind="samples", what=what)
             for i, p in enumerate(paths)]
    for p, post in zip(paths, posts):
        posts[0].check_compatible(post, f"{what} of {paths[0]} and {p}")
    return posts


def pooled_samples(posts: list[Posterior]) -> dict:
    """All draws of all chains (or all members) of several posteriors, [total, *shape]."""
    import numpy as np

    return {k: np.concatenate([p.flat_samples()[k] for p in posts]) for k in posts[0].samples}
