"""Config settings shared by the optimisation-based methods (their sections include these)."""

OPTIM_SETTINGS = {
    "epochs": {"type": "integer", "minimum": 1, "default": 30, "description": "training epochs"},
    "batch_size": {"type": "integer", "minimum": 1, "default": 128, "description": "minibatch size"},
    "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.001, "description": "learning rate"},
    "optimizer": {"type": "string", "enum": ["adam", "sgd"], "default": "adam",
                  "description": "Adam, or SGD with momentum"},
    "momentum": {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.9,
                 "description": "SGD momentum (optimizer sgd)"},
    "lr_schedule": {"type": "string", "enum": ["constant", "cosine"], "default": "constant",
                    "description": "constant learning rate, or cosine decay to 0 over the epochs"},
    "augment": {"type": "string", "enum": ["none", "crop", "crop_flip"], "default": "none",
                "description": "random crop after zero padding by 1/8 of the side (crop), plus a horizontal flip "
                               "(crop_flip; for CIFAR, not digits)"},
    "checkpoint_every": {"type": "integer", "minimum": 0, "default": 5,
                         "description": "epochs between resume checkpoints (0 = none)"},
}


def with_defaults(**overrides) -> dict:
    """The shared settings with some defaults changed."""
    out = {k: dict(v) for k, v in OPTIM_SETTINGS.items()}
    for k, v in overrides.items():
        out[k]["default"] = v
    return out
