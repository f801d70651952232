import numpy as np
import pytest
import torch

from workflow.architectures import build_model
from workflow.inference.training import MapSettings, train_map


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
    import workflow.inference.resume as resume

    real_save, calls = resume.save_checkpoint, []

    def save_then_die(path, state):
        real_save(path, state)
        calls.append(state["epoch"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the job is killed right after its second checkpoint

    monkeypatch.setattr(resume, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(s, checkpoint=ckpt)
    monkeypatch.setattr(resume, "save_checkpoint", real_save)
    assert ckpt.exists()
    resumed = fit(s, checkpoint=ckpt)
    assert resumed.resumed_from_epoch == 6
    for k in reference.params:
        np.testing.assert_array_equal(resumed.params[k], reference.params[k])
    np.testing.assert_array_equal(resumed.diagnostics["loss"], reference.diagnostics["loss"])


def kill_at_first_checkpoint(monkeypatch, run):
    """Runs ``run()`` until it has written its first checkpoint, then kills it (KeyboardInterrupt)."""
    import workflow.inference.resume as resume

    real_save = resume.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(resume, "save_checkpoint", save_then_die)
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
    from workflow.inference.training import augment_batch

    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) + 1  # no zeros inside
    from workflow.inference.training import draw_augmentation

    def augment(x, mode, seed):
        return augment_batch(x, mode, draw_augmentation([len(x)], mode, x.shape[-2], torch.Generator().manual_seed(seed)))

    out = augment(x, "crop", 0)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # pad = 8 / 8 = 1 pixel
    for i in range(2):  # each image is its zero-padded copy cropped at one offset
        crops = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)]
        assert sum(torch.equal(out[i], c) for c in crops) == 1
    again = augment(x, "crop", 0)
    torch.testing.assert_close(out, again)
    flipped = augment(x, "crop_flip", 1)
    assert flipped.shape == x.shape
    assert augment_batch(x, "none", ()) is x


def test_cosine_schedule_and_sgd_settings():
    from workflow.inference.training import MapSettings, epoch_lr

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


# --- what a GPU would change (CPU stand-ins) -----------------------------------------------


def test_checkpoints_are_read_onto_the_cpu_whatever_the_jobs_device(tmp_path, monkeypatch):
    """torch.load(map_location=<the data's device>) put the saved RNG states on the GPU, where
    Generator.set_state refuses them ('RNG state must be a torch.ByteTensor'): every resumed job on
    a GPU crashed, and so did each retry. Training and HMC read checkpoints onto the CPU by name
    (load_state_dict then copies the weights and the optimizer's state onto the parameters' device)."""
    import workflow.inference.training as training
    import workflow.inference.resume as resume

    s = MapSettings(epochs=6, batch_size=32, lr=0.01, checkpoint_every=2)
    ckpt = tmp_path / "ckpt.pt"
    kill_at_first_checkpoint(monkeypatch, lambda: fit(s, checkpoint=ckpt))
    asked, real_load = [], torch.load

    def spy(f, *args, map_location=None, **kwargs):
        asked.append(map_location)
        return real_load(f, *args, map_location=map_location, **kwargs)

    monkeypatch.setattr(training.torch, "load", spy)
    assert fit(s, checkpoint=ckpt).resumed_from_epoch == 2
    assert asked == ["cpu"]  # the string: a torch.device would be the data's device (a GPU there)
    state = resume.load_checkpoint(ckpt)
    assert state["generator"].device.type == "cpu" and state["generator"].dtype == torch.uint8


def test_only_the_jobs_own_gpus_random_state_is_saved_and_restored(monkeypatch):
    """get/set_rng_state_all failed with IndexError when a retry saw fewer GPUs than the run that
    saved; the job's own GPU's state is what its draws come from, and the state goes back as a CPU
    ByteTensor to that GPU."""
    import workflow.inference.resume as resume

    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved every GPU's state"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("restored every GPU's state"))
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.arange(8, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append((state, device)))
    gpu = torch.device("cuda:0")
    state = resume.rng_state(gpu)
    resume.set_rng_state(state, gpu)
    (restored, device), = calls
    assert device == gpu and restored.device.type == "cpu" and restored.dtype == torch.uint8
    assert "cuda" not in resume.rng_state(torch.device("cpu"))


def image_data(n=120):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 8, 8, generator=g)
    return x, (x.mean((1, 2, 3)) > 0).long()


def test_an_epochs_batches_and_augmentation_reach_the_device_in_one_copy_each(monkeypatch):
    """A host-to-GPU copy of each minibatch's crop offsets made the host wait for the GPU stream every
    batch: the order and the augmentation draws travel once per epoch (4 copies with crop_flip),
    drawn from the generator in the same order as before (the same numbers)."""
    real_to = torch.Tensor.to

    def copies(epochs):
        moved = []

        def to(t, *args, **kwargs):
            moved.append(tuple(t.shape))
            return real_to(t, *args, **kwargs)

        s = MapSettings(epochs=epochs, batch_size=8, lr=0.01, augment="crop_flip")  # 15 minibatches per epoch
        model, _ = build_model("mlp", (1, 8, 8), 2, hidden=[8])
        monkeypatch.setattr(torch.Tensor, "to", to)
        result = train_map(model, *image_data(), s, seed=0, device=torch.device("cpu"))
        monkeypatch.setattr(torch.Tensor, "to", real_to)
        assert len(result.diagnostics["loss"]) == epochs
        return len(moved)

    per_epoch = (copies(3) - copies(1)) / 2
    assert per_epoch == 4  # order, offsets y and x, flips: not 1 + 3 per minibatch


def test_augmentation_draws_follow_the_generator_batch_by_batch():
    """The epoch's draws equal drawing each minibatch's offsets and flips in turn from the generator."""
    from workflow.inference.training import draw_augmentation

    oy, ox, flip = draw_augmentation([8, 8, 4], "crop_flip", 32, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    parts = [(torch.randint(0, 9, (n,), generator=g), torch.randint(0, 9, (n,), generator=g),
              torch.rand(n, generator=g) < 0.5) for n in (8, 8, 4)]
    for got, want in zip((oy, ox, flip), zip(*parts)):
        assert torch.equal(got, torch.cat(want))
    assert draw_augmentation([8], "none", 32, torch.Generator()) == ()


@pytest.mark.parametrize("method", ["ensemble", "vi"])
def test_the_data_fingerprint_is_taken_before_the_data_move_to_the_device(monkeypatch, method):
    """Hashing the data after it moved to a GPU copied the whole training set back to the host at
    every job start (600 MB for CIFAR): the digest is taken on the host copy, before the move."""
    import workflow.inference.training as training
    import workflow.inference.mean_field as vi

    events = []
    x, y = toy_data()
    real_to, real_digest = torch.Tensor.to, training.data_digest

    def to(t, *args, **kwargs):
        if t is x or t is y:
            events.append("move")
        return real_to(t, *args, **kwargs)

    def digest(*tensors):
        events.append("digest")
        return real_digest(*tensors)

    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(training, "data_digest", digest)
    monkeypatch.setattr(vi, "data_digest", digest)
    model, _ = build_model("mlp", (1, 2, 3), 3, hidden=[8])
    if method == "ensemble":
        train_map(model, x, y, MapSettings(epochs=1, batch_size=32), seed=0, device=torch.device("cpu"))
    else:
        vi.train_vi(model, x, y, vi.ViSettings(epochs=1, batch_size=32), seed=0, device=torch.device("cpu"))
    monkeypatch.setattr(torch.Tensor, "to", real_to)
    assert events[:3] == ["digest", "move", "move"]
    with pytest.raises(ValueError, match="before the data moves"):
        real_digest(torch.empty(3, device="meta"))


def test_a_checkpoint_made_on_another_device_is_not_resumed(tmp_path, monkeypatch):
    """A CPU checkpoint resumed on CUDA (or one GPU model's on another) would not match an
    uninterrupted run on either: the fingerprint holds the device type and GPU model."""
    import workflow.inference.resume as resume

    s = MapSettings(epochs=6, batch_size=32, lr=0.01, checkpoint_every=2)
    ckpt = tmp_path / "ckpt.pt"
    monkeypatch.setattr(resume, "device_identity", lambda d: "cuda (NVIDIA A100-SXM4-80GB)")
    kill_at_first_checkpoint(monkeypatch, lambda: fit(s, checkpoint=ckpt))
    saved = ckpt.read_bytes()
    monkeypatch.setattr(resume, "device_identity", lambda d: "cuda (NVIDIA H200)")
    assert fit(s, checkpoint=ckpt).resumed_from_epoch == 0
    ckpt.write_bytes(saved)
    monkeypatch.undo()  # the real identity: 'cpu'
    assert fit(s, checkpoint=ckpt).resumed_from_epoch == 0
    ckpt.write_bytes(saved)
    monkeypatch.setattr(resume, "device_identity", lambda d: "cuda (NVIDIA A100-SXM4-80GB)")
    assert fit(s, checkpoint=ckpt).resumed_from_epoch == 2


def test_map_without_a_prior_has_no_weight_decay():
    """All-zero inputs give the first layer's weights no data gradient: without a prior (prior_std None,
    the NoT study in Xiao et al.'s setting) they stay at their initial values; with one they shrink."""
    from workflow.inference.training import reset_parameters

    model, _ = build_model("mlp", (1, 2, 2), 3, hidden=[8])
    x, y = torch.zeros(40, 1, 2, 2), torch.arange(40) % 3
    reset_parameters(model, 5)
    w0 = model.hidden[0].weight.detach().clone()
    kw = dict(epochs=3, batch_size=10, lr=0.1, optimizer="sgd", momentum=0.0, checkpoint_every=0)
    free = train_map(model, x, y, MapSettings(prior_std=None, **kw), seed=5, device=torch.device("cpu"))
    np.testing.assert_array_equal(free.params["hidden.0.weight"], w0.numpy())
    decayed = train_map(model, x, y, MapSettings(prior_std=0.1, **kw), seed=5, device=torch.device("cpu"))
    assert np.abs(decayed.params["hidden.0.weight"]).sum() < 0.99 * np.abs(w0.numpy()).sum()
