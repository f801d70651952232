"""In-process speed measurements for benchmarks/gpu_check.py: the device's bf16 matrix-product rate,
the achieved rate of a ResNet20 training epoch and of a full-batch HMC gradient (the package's own
code: train_map, chunked_value_and_grad), ResNet prediction by a per-sample loop against vmap, and
HMC chains advanced together against one at a time.

Achieved TFLOP/s count 2 FLOPs per multiply-add of the convolutions and weight matrices
(workflow.job_sizes.macs) and 3 passes for a forward and backward pass (the usual 6 x MACs per
example); normalisation and activation FLOPs are left out, so the rates are slight underestimates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from workflow import device as dev


@dataclass
class Rate:
    name: str
    seconds: float  # per unit (one epoch, one gradient, one product)
    tflops: float | None  # achieved TFLOP/s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 1) -> float:
    """Seconds per call after one warm-up call (kernels chosen, caches filled)."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def use(device_name: str, mixed_precision: str = "off", deterministic: bool = True) -> torch.device:
    """The package's device policy for in-process work, as a job with --gpus 1 (or 0) sets it."""
    dev.set_job(deterministic=deterministic, mixed_precision=mixed_precision, gpus=1 if device_name == "cuda" else 0)
    return dev.use_device("auto")


def bf16_matmul_rate(device_name: str, n: int) -> Rate:
    """The device's measured bf16 matrix-product rate: n x n products, best of a few rounds."""
    device = use(device_name)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    repeat = 20 if device.type == "cuda" else 2
    seconds = min(timed(lambda: a @ b, device, repeat) for _ in range(3))
    return Rate(f"bf16 matrix product {n}x{n}", seconds, 2 * n ** 3 / seconds / 1e12)


def network(cfg: dict, data: dict):
    """The config's network for the data's input shape and classes."""
    from workflow import architectures
    from workflow.config import model_args

    model, _ = architectures.build_model(cfg["model"]["architecture"], data["input_shape"], data["n_classes"],
                                         **model_args(cfg))
    return model


def training_epoch(cfg: dict, data: dict, device_name: str, macs: int, deterministic: bool = True) -> Rate:
    """One epoch of the ensemble's MAP training (train_map, the config's batch size and augmentation,
    compute.mixed_precision), timed as two epochs less one (the set-up); ``deterministic`` False:
    cuDNN picks its fastest kernels (compute.deterministic: false)."""
    from workflow.inference.training import MapSettings, train_map

    device = use(device_name, cfg["compute"]["mixed_precision"], deterministic)
    opt = {k: cfg["ensemble"][k] for k in ("batch_size", "lr", "optimizer", "lr_schedule", "augment")}
    model = network(cfg, data)
    x, y = data["x_train"], data["y_train"]

    def epochs(k: int) -> float:
        sync(device)
        start = time.perf_counter()
        train_map(model, x, y, MapSettings(epochs=k, checkpoint_every=0, prior_std=1.0, **opt), seed=0, device=device)
        sync(device)
        return time.perf_counter() - start

    epochs(1)  # warm-up: kernels, allocator
    seconds = epochs(2) - epochs(1)
    flops = 6 * macs * len(x)
    return Rate(f"{cfg['model']['architecture']} x{cfg['model'].get('width', 1)} training epoch "
                f"({len(x)} images, batch {opt['batch_size']}, {cfg['compute']['mixed_precision']}"
                f"{'' if deterministic else ', not deterministic'})", seconds, flops / seconds / 1e12)


def hmc_gradient(cfg: dict, data: dict, device_name: str, macs: int) -> Rate:
    """One full-batch gradient of the HMC potential over all training images (the sampler's own
    chunked_value_and_grad, hmc.data_chunk examples per pass, bf16 forward passes when mixed)."""
    from workflow.inference.hmc_bnn import chunked_value_and_grad
    from workflow.inference.hmc_sampler import flatten

    device = use(device_name, cfg["compute"]["mixed_precision"])
    model = network(cfg, data).to(device)
    like = {k: v.detach() for k, v in model.named_parameters()}
    theta = flatten(like)
    x, y = data["x_train"].to(device), data["y_train"].to(device)
    chunk = cfg["hmc"]["data_chunk"] or len(x)
    grad_fn = chunked_value_and_grad(model, x, y, cfg["prior"]["std"], like, chunk,
                                     forward_context=lambda: dev.autocast(device))
    seconds = timed(lambda: grad_fn(theta), device, repeat=3)
    return Rate(f"HMC full-batch gradient ({len(x)} images, chunks of {chunk}, "
                f"{cfg['compute']['mixed_precision']})", seconds, 6 * macs * len(x) / seconds / 1e12)


def predict_loop_vs_vmap(cfg: dict, data: dict, device_name: str, n_samples: int, n_points: int) -> dict:
    """ResNet logits under S weight sets: the architecture's per-sample loop (its sample_logits hook,
    the CPU's choice) against vmap(functional_call); seconds each and their largest difference."""
    from torch.func import functional_call, vmap

    from workflow.architectures import resnet

    device = use(device_name)
    model = network(cfg, data).to(device)
    gen = torch.Generator().manual_seed(0)
    stack = {k: (v.detach().cpu() + 0.01 * torch.randn((n_samples, *v.shape), generator=gen)).to(device)
             for k, v in model.named_parameters()}
    x = data["x_test"][:n_points].to(device)
    def by_loop():
        return resnet.sample_logits(model, stack, x)

    def by_vmap():
        return vmap(lambda p, xb: functional_call(model, p, (xb,)), in_dims=(0, None))(stack, x)

    with torch.no_grad():
        loop, vm = timed(by_loop, device), timed(by_vmap, device)
        diff = float((by_loop() - by_vmap()).abs().max())
    return {"loop_s": loop, "vmap_s": vm, "max_abs_diff": diff, "samples": n_samples, "points": len(x)}


def chains_together_vs_alone(cfg: dict, data: dict, device_name: str, n_chains: int) -> dict:
    """Seconds of n_chains HMC chains advanced together in one call of the sampler, against the same
    chains one after another (start-up of a job excluded: the sampler alone)."""
    from workflow.inference.hmc_bnn import sample_bnn_chains
    from workflow.inference.hmc_sampler import HmcSettings
    from workflow.methods.hmc import NOT_SETTINGS

    device = use(device_name, cfg["compute"]["mixed_precision"])
    settings = HmcSettings(**{**{k: v for k, v in cfg["hmc"].items() if k not in NOT_SETTINGS}, "checkpoint_every": 0})
    model = network(cfg, data)
    seeds = list(range(n_chains))

    def run(group: list[int]):
        return sample_bnn_chains(model, data["x_train"], data["y_train"], settings, prior_std=cfg["prior"]["std"],
                                 seeds=group, device=device, data_chunk=cfg["hmc"]["data_chunk"])

    run([0])  # warm-up
    sync(device)
    start = time.perf_counter()
    together = run(seeds)
    sync(device)
    t_together = time.perf_counter() - start
    start = time.perf_counter()
    alone = [run([s])[0] for s in seeds]
    sync(device)
    t_alone = time.perf_counter() - start
    same = all(np.array_equal(a[0][k], b[0][k]) for a, b in zip(together, alone) for k in a[0])
    return {"together_s": t_together, "alone_s": t_alone, "chains": n_chains, "same_draws": same}


def convolution_ceiling(cfg: dict, data: dict, device_name: str, batch: int) -> Rate:
    """The network's convolutions alone: every convolution shape of one forward pass (recorded by
    hooks), each timed standalone, forward and backward, at ``batch`` images in the config's
    precision, summed by count. What a step could reach if it were only its convolutions."""
    from collections import Counter

    device = use(device_name, cfg["compute"]["mixed_precision"])
    model = network(cfg, data).to(device)
    shapes: Counter = Counter()

    def record(module, inputs, output):
        shapes[(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                tuple(inputs[0].shape[2:]), tuple(output.shape[2:]))] += 1

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(data["x_train"][:1].to(device))
    for h in hooks:
        h.remove()
    seconds = flops = 0.0
    for (c_in, c_out, k, stride, pad, size_in, size_out), count in shapes.items():
        conv = torch.nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=False).to(device)
        x = torch.randn(batch, c_in, *size_in, device=device, requires_grad=True)

        def step():
            with dev.autocast(device):
                out = conv(x)
            out.float().sum().backward()

        seconds += count * timed(step, device, repeat=5 if device.type == "cuda" else 1)
        flops += count * 6 * c_out * c_in * k[0] * k[1] * size_out[0] * size_out[1] * batch
    return Rate(f"its {sum(shapes.values())} convolutions alone ({len(shapes)} shapes), batch {batch}, forward and "
                f"backward ({cfg['compute']['mixed_precision']})", seconds, flops / seconds / 1e12)
