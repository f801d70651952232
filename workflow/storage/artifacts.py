"""Self-describing HDF5 artifacts: posteriors and pairwise alignments.

Posterior file layout (format ``bnn-posterior``, version 1)::

    /                      attrs: format, format_version, kind ("samples" | "gaussian"), method,
                                  predictive (kind=gaussian: "sample" | "glm"; absent: "sample"),
                                  architecture, architecture_args (JSON), dataset, input_shape,
                                  n_classes, seed, param_names (JSON), code_revision, created,
                                  device, gpu_name, torch_version, cuda_version, compute (JSON:
                                  also cuDNN version, deterministic, mixed_precision)
    /config                JSON text: the resolved config the artifact was made from
    /versions              JSON text: library versions
    /samples/<param>       kind=samples: float32 [chain, draw, *param_shape]
    /mean/<param>          kind=gaussian: float32 [*param_shape]
    /std/<param>           kind=gaussian: float32 [*param_shape], finite and >= 0
    /diagnostics/<name>    traces (loss, ELBO, acceptance, ...); scalar diagnostics as attrs

Alignment file layout (format ``bnn-alignment``, version 1)::

    /                      attrs: format, format_version, alignment (kind), method, seed_a,
                                  seed_b, source_a, source_b, groups (JSON), not_total,
                                  sweeps, converged, distance_kind ("w2" | "l2"),
                                  distance_before, distance_after, code_revision, created,
                                  device, gpu_name, torch_version, cuda_version, compute (JSON)
    /perms/<group>         int64 permutation applied to B (new[i] = old[perm[i]]); attr ``not``
    /objective_trace       float64, the matching objective after every group update
    /aligned               a posterior group (layout above): B after the permutation
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .atomic import atomic_path
from ..alignment.permutations import apply_permutation, is_permutation, number_of_transpositions
from .provenance import provenance

POSTERIOR_FORMAT = "bnn-posterior"
ALIGNMENT_FORMAT = "bnn-alignment"
JOINT_FORMAT = "bnn-joint-alignment"
FORMAT_VERSION = 1
KINDS = ("samples", "gaussian")
# how a Gaussian predicts: networks at sampled weights, or the network linearised at the mean (GLM)
PREDICTIVES = ("sample", "glm")


class ArtifactError(ValueError):
    """An artifact is missing, truncated, foreign or inconsistent; the message names the file."""


@dataclass
class Posterior:
    kind: str  # "samples" or "gaussian"
    method: str
    architecture: str
    architecture_args: dict
    dataset: str
    input_shape: tuple[int, ...]
    n_classes: int
    seed: int
    samples: dict[str, np.ndarray] | None = None  # [chain, draw, *shape]
    mean: dict[str, np.ndarray] | None = None
    std: dict[str, np.ndarray] | None = None
    config: dict = field(default_factory=dict)
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)
    diagnostic_attrs: dict[str, Any] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # filled on read
    predictive: str = "sample"  # kind=gaussian: one of PREDICTIVES

    # ------------------------------------------------------------ operations

    def build_model(self):
        """(network, permutation spec) of this posterior's architecture."""
        from ..architectures import build_model

        return build_model(self.architecture, self.input_shape, self.n_classes, **self.architecture_args)

    def permutation_spec(self):
        """The permutation spec of this posterior's architecture (without torch where the registry can)."""
        from ..architectures import permutation_spec

        names = self.mean if self.kind == "gaussian" else self.samples
        return permutation_spec(self.architecture, list(names), self.input_shape, self.n_classes,
                                **self.architecture_args)

    def representative(self) -> dict[str, np.ndarray]:
        """The point that stands for the posterior in weight matching: the sample mean, or the Gaussian's mean."""
        if self.kind == "gaussian":
            return self.mean
        return {k: v.mean(axis=(0, 1)) for k, v in self.samples.items()}

    def permuted(self, spec, perms) -> "Posterior":
        """The same posterior with every sample (or mean and std) permuted."""
        if self.kind == "samples":
            return dataclasses.replace(self, samples=apply_permutation(self.samples, spec, perms, batch_dims=2))
        return dataclasses.replace(self, mean=apply_permutation(self.mean, spec, perms),
                                   std=apply_permutation(self.std, spec, perms))

    def distance_to(self, other: "Posterior") -> tuple[str, float]:
        """('w2', W2 between diagonal Gaussians in closed form) or ('l2', L2 between the representatives)."""
        if self.kind == "gaussian":
            return "w2", w2_distance(self.mean, self.std, other.mean, other.std)
        return "l2", l2_distance(self.representative(), other.representative())

    def check_compatible(self, other: "Posterior", where: str, same_kind: bool = True) -> None:
        """Refuse to pair posteriors of different architectures or data (or kinds, unless ``same_kind`` is off)."""
        for attr in ("architecture", "architecture_args", "dataset", "input_shape", "n_classes",
                     *(("kind",) if same_kind else ())):
            if getattr(self, attr) != getattr(other, attr):
                raise ArtifactError(f"{where}: posteriors differ in {attr}: {getattr(self, attr)!r} vs "
                                    f"{getattr(other, attr)!r}")

    def sample_source(self, n_mc: int, seed: int, predictive: str | None = None):
        """Weight samples of the predictive: every draw, or ``n_mc`` Monte Carlo draws of the Gaussian,
        through the network linearised at the mean where its predictive (or ``predictive``) is 'glm'."""
        from ..evaluation.predict import Gaussian, Stacked

        if self.kind == "samples":
            return Stacked(self.flat_samples())
        return Gaussian(self.mean, self.std, n_mc, seed, linearized=(predictive or self.predictive) == "glm")

    def mean_network(self):
        """The single network at the representative, as a one-sample source."""
        from ..evaluation.predict import Stacked

        return Stacked({k: np.asarray(v)[None] for k, v in self.representative().items()})

    @property
    def param_names(self) -> list[str]:
        return list((self.samples if self.kind == "samples" else self.mean) or {})

    def flat_samples(self) -> dict[str, np.ndarray]:
        """Samples with chain and draw merged: [chain * draw, *shape]."""
        if self.kind != "samples":
            raise ValueError("flat_samples() needs a posterior of kind 'samples'")
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in self.samples.items()}

    def validate(self, where: str = "posterior") -> None:
        """Internal consistency; raises ArtifactError naming ``where``."""
        if self.kind not in KINDS:
            raise ArtifactError(f"{where}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "samples":
            if not self.samples:
                raise ArtifactError(f"{where}: kind 'samples' but no samples")
            lead = {v.shape[:2] for v in self.samples.values()}
            if len(lead) != 1 or any(v.ndim < 3 for v in self.samples.values()):
                raise ArtifactError(f"{where}: samples must all be shaped [chain, draw, ...] with the same "
                                    f"chain and draw counts, got {sorted(lead)}")
            arrays = self.samples
        else:
            if not self.mean or self.std is None:
                raise ArtifactError(f"{where}: kind 'gaussian' needs both mean and std")
            if self.predictive not in PREDICTIVES:
                raise ArtifactError(f"{where}: predictive {self.predictive!r} is not one of {PREDICTIVES}")
            if set(self.mean) != set(self.std):
                raise ArtifactError(f"{where}: mean and std name different parameters")
            for k in self.mean:
                if self.mean[k].shape != self.std[k].shape:
                    raise ArtifactError(f"{where}: mean and std of {k!r} differ in shape")
                if not np.all(np.isfinite(self.std[k])) or np.any(self.std[k] < 0):
                    raise ArtifactError(f"{where}: std of {k!r} must be finite and >= 0")
            arrays = self.mean
        for k, v in arrays.items():
            if not np.all(np.isfinite(v)):
                raise ArtifactError(f"{where}: parameter {k!r} holds non-finite values")


def l2_distance(a, b) -> float:
    """Euclidean distance between two parameter sets (in float64)."""
    return float(np.sqrt(sum(np.sum((np.float64(a[k]) - b[k]) ** 2) for k in a)))


def w2_distance(mean_a, std_a, mean_b, std_b) -> float:
    """W2(N(mean_a, diag std_a^2), N(mean_b, diag std_b^2)) = sqrt(||mean_a - mean_b||^2 + ||std_a - std_b||^2)."""
    sq = sum(np.sum((np.float64(mean_a[k]) - mean_b[k]) ** 2) + np.sum((np.float64(std_a[k]) - std_b[k]) ** 2)
             for k in mean_a)
    return float(np.sqrt(sq))


@dataclass
class Alignment:
    alignment: str  # kind of alignment, e.g. "weight"
    method: str
    seed_a: int
    seed_b: int
    perms: dict[str, np.ndarray]
    objective_trace: np.ndarray
    aligned: Posterior
    source_a: str = ""
    source_b: str = ""
    sweeps: int = 0
    converged: bool = False
    distance_kind: str = ""  # "w2" for Gaussians, "l2" for point estimates
    distance_before: float = float("nan")
    distance_after: float = float("nan")
    provenance: dict = field(default_factory=dict)

    @property
    def not_per_group(self) -> dict[str, int]:
        return {g: number_of_transpositions(p) for g, p in self.perms.items()}


@dataclass
class JointAlignment:
    """Every seed of a method permuted into one basin together (MergeMany, leave-one-out reference):
    ``perms[seed]`` applied to that seed's posterior puts it there."""

    alignment: str  # "weight" or "w2"
    matcher: str
    method: str
    seeds: list[int]
    perms: dict[int, dict[str, np.ndarray]]
    iterations: int
    changed: list[int]  # seeds whose permutation changed, per reference update
    sources: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return bool(self.changed) and self.changed[-1] == 0


# ---------------------------------------------------------------- writing


def _dataset(group: h5py.Group, name: str, data) -> None:
    # track_times=False: identical content gives identical bytes
    group.create_dataset(name, data=data, track_times=False)


def _json_text(group: h5py.Group, name: str, obj) -> None:
    # large metadata as a dataset, not an attribute (64 KiB attribute limit)
    group.create_dataset(name, data=json.dumps(obj, sort_keys=True, default=str), track_times=False)


def _compute_attrs(prov: dict) -> dict:
    """Where the artifact was computed, as attributes: device, gpu_name, torch_version, cuda_version,
    and the whole record (cuDNN, deterministic, mixed_precision) as JSON."""
    c = prov["compute"]
    return {"device": c["device"], "gpu_name": c["gpu_name"], "torch_version": c["torch"],
            "cuda_version": c["cuda"], "compute": json.dumps(c, sort_keys=True)}


def _write_posterior_group(g: h5py.Group, post: Posterior, prov: dict) -> None:
    g.attrs.update({
        "format": POSTERIOR_FORMAT, "format_version": FORMAT_VERSION, "kind": post.kind,
        "method": post.method, "architecture": post.architecture,
        "architecture_args": json.dumps(post.architecture_args, sort_keys=True),
        "dataset": post.dataset, "input_shape": np.asarray(post.input_shape, dtype=np.int64),
        "n_classes": int(post.n_classes), "seed": int(post.seed),
        "param_names": json.dumps(post.param_names),
        **({"predictive": post.predictive} if post.kind == "gaussian" else {}),
        "code_revision": prov["code_revision"], "created": prov["created"], **_compute_attrs(prov),
    })
    _json_text(g, "config", post.config)
    _json_text(g, "versions", prov["versions"])
    blocks = {"samples": post.samples} if post.kind == "samples" else {"mean": post.mean, "std": post.std}
    for block, arrays in blocks.items():
        sub = g.create_group(block, track_order=True)
        for name, value in arrays.items():
            _dataset(sub, name, np.asarray(value, dtype=np.float32))
    diag = g.create_group("diagnostics")
    for name, value in post.diagnostics.items():
        _dataset(diag, name, np.asarray(value))
    diag.attrs.update({k: v for k, v in post.diagnostic_attrs.items()})


def write_posterior(path: str | os.PathLike, post: Posterior) -> None:
    """Validate and write atomically (temporary file, then rename)."""
    post.validate(str(path))
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        _write_posterior_group(f, post, provenance())


def write_alignment(path: str | os.PathLike, result: Alignment) -> None:
    result.aligned.validate(f"{path}:/aligned")
    prov = provenance()
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        nots = result.not_per_group
        f.attrs.update({
            "format": ALIGNMENT_FORMAT, "format_version": FORMAT_VERSION, "alignment": result.alignment,
            "method": result.method, "seed_a": int(result.seed_a), "seed_b": int(result.seed_b),
            "source_a": str(result.source_a), "source_b": str(result.source_b),
            "groups": json.dumps(list(result.perms)), "not_total": int(sum(nots.values())),
            "sweeps": int(result.sweeps), "converged": bool(result.converged),
            "distance_kind": result.distance_kind, "distance_before": float(result.distance_before),
            "distance_after": float(result.distance_after),
            "code_revision": prov["code_revision"], "created": prov["created"], **_compute_attrs(prov),
        })
        perms = f.create_group("perms", track_order=True)
        for gname, perm in result.perms.items():
            _dataset(perms, gname, np.asarray(perm, dtype=np.int64))
            perms[gname].attrs["not"] = nots[gname]
        _dataset(f, "objective_trace", np.asarray(result.objective_trace, dtype=np.float64))
        _write_posterior_group(f.create_group("aligned"), result.aligned, prov)


def write_joint_alignment(path: str | os.PathLike, joint: JointAlignment) -> None:
    prov = provenance()
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        f.attrs.update({
            "format": JOINT_FORMAT, "format_version": FORMAT_VERSION, "alignment": joint.alignment,
            "matcher": joint.matcher, "method": joint.method, "seeds": json.dumps([int(s) for s in joint.seeds]),
            "sources": json.dumps([str(p) for p in joint.sources]), "iterations": int(joint.iterations),
            "changed": json.dumps([int(c) for c in joint.changed]),
            "code_revision": prov["code_revision"], "created": prov["created"], **_compute_attrs(prov),
        })
        perms = f.create_group("perms", track_order=True)
        for seed in joint.seeds:
            g = perms.create_group(str(seed), track_order=True)
            for name, perm in joint.perms[seed].items():
                _dataset(g, name, np.asarray(perm, dtype=np.int64))


# ---------------------------------------------------------------- reading


def _open(path: str | os.PathLike, expected_format: str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such artifact file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ArtifactError(f"{path}: not a readable HDF5 file (truncated or foreign?): {err}") from err
    fmt = f.attrs.get("format")
    if fmt != expected_format:
        f.close()
        raise ArtifactError(f"{path}: expected an HDF5 artifact of format {expected_format!r}, found "
                            f"{fmt!r} (a foreign HDF5 file?)")
    version = f.attrs.get("format_version")
    if version != FORMAT_VERSION:
        f.close()
        raise ArtifactError(f"{path}: format version {version!r} is not supported (this code reads {FORMAT_VERSION})")
    return f


def _read_block(g: h5py.Group, block: str, where: str, names: list[str]) -> dict[str, np.ndarray]:
    if block not in g:
        raise ArtifactError(f"{where}: missing group /{block}")
    found = list(g[block])
    if sorted(found) != sorted(names):
        raise ArtifactError(f"{where}: /{block} holds parameters {sorted(found)}, the header lists {sorted(names)}")
    return {name: g[block][name][()] for name in names}


def _read_posterior_group(g: h5py.Group, where: str) -> Posterior:
    try:
        a = g.attrs
        kind = str(a["kind"])
        names = json.loads(a["param_names"])
        post = Posterior(
            kind=kind, method=str(a["method"]), architecture=str(a["architecture"]),
            architecture_args=json.loads(a["architecture_args"]), dataset=str(a["dataset"]),
            input_shape=tuple(int(s) for s in a["input_shape"]), n_classes=int(a["n_classes"]),
            seed=int(a["seed"]), config=json.loads(g["config"][()]),
            provenance={"versions": json.loads(g["versions"][()]), "code_revision": str(a["code_revision"]),
                        "created": str(a["created"]), "compute": json.loads(a.get("compute", "{}"))},
        )
        if kind == "samples":
            post.samples = _read_block(g, "samples", where, names)
        elif kind == "gaussian":
            post.mean = _read_block(g, "mean", where, names)
            post.std = _read_block(g, "std", where, names)
            post.predictive = str(a.get("predictive", "sample"))
        if "diagnostics" in g:
            post.diagnostics = {k: v[()] for k, v in g["diagnostics"].items()}
            post.diagnostic_attrs = dict(g["diagnostics"].attrs)
    except ArtifactError:
        raise
    except (KeyError, ValueError, OSError, TypeError) as err:
        raise ArtifactError(f"{where}: malformed posterior artifact: {err!r}") from err
    post.validate(where)
    _check_against_architecture(post, where)
    return post


def _check_against_architecture(post: Posterior, where: str) -> None:
    """The stored parameters must be exactly those of the named architecture."""
    from ..architectures import parameter_shapes

    try:
        expected = parameter_shapes(post.architecture, post.input_shape, post.n_classes, **post.architecture_args)
    except ValueError as err:
        raise ArtifactError(f"{where}: {err}") from err
    arrays = post.samples if post.kind == "samples" else post.mean
    lead = 2 if post.kind == "samples" else 0
    got = {k: tuple(v.shape[lead:]) for k, v in arrays.items()}
    if got != expected:
        raise ArtifactError(f"{where}: parameters {got} do not match architecture {post.architecture!r} "
                            f"{post.architecture_args} which has {expected}")


def read_posterior(path: str | os.PathLike) -> Posterior:
    with _open(path, POSTERIOR_FORMAT) as f:
        return _read_posterior_group(f, str(path))


def read_alignment(path: str | os.PathLike) -> Alignment:
    with _open(path, ALIGNMENT_FORMAT) as f:
        try:
            a = f.attrs
            groups = json.loads(a["groups"])
            perms = {g: f["perms"][g][()] for g in groups}
            result = Alignment(
                alignment=str(a["alignment"]), method=str(a["method"]), seed_a=int(a["seed_a"]),
                seed_b=int(a["seed_b"]), perms=perms, objective_trace=f["objective_trace"][()],
                aligned=_read_posterior_group(f["aligned"], f"{path}:/aligned"),
                source_a=str(a["source_a"]), source_b=str(a["source_b"]), sweeps=int(a["sweeps"]),
                converged=bool(a["converged"]), distance_kind=str(a["distance_kind"]),
                distance_before=float(a["distance_before"]), distance_after=float(a["distance_after"]),
                provenance={"code_revision": str(a["code_revision"]), "created": str(a["created"]),
                            "compute": json.loads(a.get("compute", "{}"))},
            )
        except ArtifactError:
            raise
        except (KeyError, ValueError, OSError, TypeError) as err:
            raise ArtifactError(f"{path}: malformed alignment artifact: {err!r}") from err
    for g, p in result.perms.items():
        if not is_permutation(p):
            raise ArtifactError(f"{path}: /perms/{g} is not a permutation")
    return result


def read_joint_alignment(path: str | os.PathLike) -> JointAlignment:
    with _open(path, JOINT_FORMAT) as f:
        try:
            a = f.attrs
            seeds = [int(x) for x in json.loads(a["seeds"])]
            perms = {s: {g: f["perms"][str(s)][g][()] for g in f["perms"][str(s)]} for s in seeds}
            joint = JointAlignment(
                alignment=str(a["alignment"]), matcher=str(a["matcher"]), method=str(a["method"]), seeds=seeds,
                perms=perms, iterations=int(a["iterations"]), changed=json.loads(a["changed"]),
                sources=json.loads(a["sources"]),
                provenance={"code_revision": str(a["code_revision"]), "created": str(a["created"]),
                            "compute": json.loads(a.get("compute", "{}"))},
            )
        except (KeyError, ValueError, OSError, TypeError) as err:
            raise ArtifactError(f"{path}: malformed joint-alignment artifact: {err!r}") from err
    for seed, groups in joint.perms.items():
        for g, p in groups.items():
            if not is_permutation(p):
                raise ArtifactError(f"{path}: /perms/{seed}/{g} is not a permutation")
    return joint
