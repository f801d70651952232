import numpy as np
import pytest
import torch

from workflow.architectures import build_model
from workflow.training import MapSettings, train_map


def toy_data(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 3, generator=g)
    y = (x.flatten(1).sum(1) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return x, y


def fit(settings, seed=0, checkpoint=None):
    model, _ = build_model("mlp", (1, 2, 3), 3, hidden=[8])
    x, y = toy_data()
    return train_map(model, x, y, settings, seed=seed, device=torch.device("cpu"), checkpoint=checkpoint)


def test_map_training_fits_and_is_deterministic():
    s = MapSettings(epochs=30, batch_size=32, lr=0.01)
    a, b = fit(s), fit(s)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    loss = a.diagnostics["loss"]
    assert len(loss) == 30 and loss[-1] < 0.5 * loss[0]
    c = fit(s, seed=1)
    assert not np.array_equal(a.params["out.weight"], c.params["out.weight"])


def test_killed_training_resumes_to_the_same_result(tmp_path, monkeypatch):
    s = MapSettings(epochs=12, batch_size=32, lr=0.01, checkpoint_every=3)
    reference = fit(s)
    ckpt = tmp_path / "ckpt.pt"
    import workflow.training as training

    real_save, calls = training._save_checkpoint, []

    def save_then_die(path, state):
        real_save(path, state)
        calls.append(state["epoch"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed right after its second checkpoint

    monkeypatch.setattr(training, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(s, checkpoint=ckpt)
    monkeypatch.setattr(training, "_save_checkpoint", real_save)
    assert ckpt.exists()
    resumed = fit(s, checkpoint=ckpt)
    assert resumed.resumed_from_epoch == 6
    for k in reference.params:
        np.testing.assert_array_equal(resumed.params[k], reference.params[k])
    np.testing.assert_array_equal(resumed.diagnostics["loss"], reference.diagnostics["loss"])


def kill_at_first_checkpoint(monkeypatch, run):
    """Runs ``run()`` until it has written its first checkpoint, then kills it (KeyboardInterrupt)."""
    import workflow.training as training

    real_save = training._save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(training, "_save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            run()


@pytest.mark.parametrize("other", [{"seed": 1}, {"settings": MapSettings(epochs=6, batch_size=32, lr=0.02,
                                                                         checkpoint_every=2)}])
def test_a_real_checkpoint_of_another_seed_or_settings_is_ignored(tmp_path, monkeypatch, other):
    """A complete checkpoint, written by a run that differs only in its seed or one setting, is not
    resumed: the result equals a fresh run (and the matching run does resume from it)."""
    s = MapSettings(epochs=6, batch_size=32, lr=0.01, checkpoint_every=2)
    ckpt = tmp_path / "ckpt.pt"
    kill_at_first_checkpoint(monkeypatch, lambda: fit(other.get("settings", s), seed=other.get("seed", 0),
                                                      checkpoint=ckpt))
    saved = ckpt.read_bytes()
    result = fit(s, checkpoint=ckpt)
    assert result.resumed_from_epoch == 0
    fresh = fit(s)
    for k in fresh.params:
        np.testing.assert_array_equal(result.params[k], fresh.params[k])
    ckpt.write_bytes(saved)  # the run that wrote it does resume from it
    assert fit(other.get("settings", s), seed=other.get("seed", 0), checkpoint=ckpt).resumed_from_epoch == 2


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"lr": 0.0}, {"prior_std": -1.0}, {"batch_size": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        MapSettings(**kwargs)


def test_checkpoint_of_other_data_or_architecture_is_ignored(tmp_path, monkeypatch):
    """A killed run's checkpoint must not leak into a run with other data or another model."""
    s = MapSettings(epochs=6, batch_size=32, lr=0.01, checkpoint_every=2)
    ckpt = tmp_path / "ckpt.pt"
    kill_at_first_checkpoint(monkeypatch, lambda: fit(s, checkpoint=ckpt))
    import shutil

    saved = tmp_path / "saved.pt"
    shutil.copy(ckpt, saved)

    def resumed_epoch(hidden=8, data_seed=0, identity=None):
        shutil.copy(saved, ckpt)  # every attempt starts from the killed run's checkpoint
        model, _ = build_model("mlp", (1, 2, 3), 3, hidden=[hidden])
        x, y = toy_data(seed=data_seed)
        return train_map(model, x, y, s, seed=0, device=torch.device("cpu"), checkpoint=ckpt,
                         identity=identity).resumed_from_epoch

    assert resumed_epoch(hidden=9) == 0  # other architecture: ignored, no size-mismatch crash
    assert resumed_epoch(data_seed=1) == 0  # other data, same shapes
    assert resumed_epoch(identity={"activation": "tanh"}) == 0  # other job config
    assert resumed_epoch() == 2  # the same job resumes


def test_crop_augmentation_shifts_each_image_within_its_padding():
    from workflow.training import augment_batch

    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) + 1  # no zeros inside
    out = augment_batch(x, "crop", torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # pad = 8 / 8 = 1 pixel
    for i in range(2):  # each image is its zero-padded copy cropped at one offset
        crops = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)]
        assert sum(torch.equal(out[i], c) for c in crops) == 1
    again = augment_batch(x, "crop", torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    flipped = augment_batch(x, "crop_flip", torch.Generator().manual_seed(1))
    assert flipped.shape == x.shape
    assert augment_batch(x, "none", torch.Generator()) is x


def test_cosine_schedule_and_sgd_settings():
    from workflow.training import MapSettings, epoch_lr

    s = MapSettings(epochs=4, lr=0.1, lr_schedule="cosine", optimizer="sgd", momentum=0.9)
    assert [round(epoch_lr(s, e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    assert epoch_lr(MapSettings(epochs=4, lr=0.1), 3) == 0.1
    with pytest.raises(ValueError, match="optimizer 'lbfgs' is not one of"):
        MapSettings(optimizer="lbfgs")
    with pytest.raises(ValueError, match="momentum"):
        MapSettings(optimizer="sgd", momentum=1.0)


def test_minibatch_metrics_stay_on_the_device(monkeypatch):
    """Losses are summed on the device; the host reads them once per epoch, not per minibatch."""
    reads = []
    for name in ("__float__", "item", "tolist", "__bool__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _f=original: reads.append(1) or _f(t, *a))
    s = MapSettings(epochs=2, batch_size=8, lr=0.01, optimizer="sgd")  # 15 minibatches per epoch
    result = fit(s)
    assert len(reads) == 2 * len(result.diagnostics)  # loss and nll, once per epoch


def test_mixed_precision_training_runs_in_bfloat16():
    from workflow import device

    s = MapSettings(epochs=30, batch_size=32, lr=0.01)
    full = fit(s)
    try:
        device.set_job(mixed_precision="bf16")
        mixed = fit(s)
    finally:
        device.set_job()
    assert not np.array_equal(full.params["out.weight"], mixed.params["out.weight"])
    assert mixed.diagnostics["loss"][-1] < 0.5 * mixed.diagnostics["loss"][0]
    assert mixed.diagnostics["loss"][-1] == pytest.approx(full.diagnostics["loss"][-1], rel=0.1)
