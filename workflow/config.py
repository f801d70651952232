"""Config validation against the JSON schema, filling defaults, with messages naming the key.

The Snakefile calls :func:`validate_config` before any job runs; the package's command line and
tests use the same function, so a config means the same everywhere.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import itertools
from importlib import resources
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value is not allowed; the message names the key, the value and what is allowed."""


def load_schema() -> dict:
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict:
    """The config schema: schemas/config.schema.yaml, with the registries' branches filled in (the
    allowed architectures and methods, and one config section per method)."""
    from . import architectures, methods
    from .alignment import matchers

    text = resources.files("workflow").joinpath("schemas/config.schema.yaml").read_text()
    schema = yaml.safe_load(text)
    props = schema["properties"]
    props["model"]["properties"]["architecture"]["enum"] = architectures.names()
    props["methods"]["items"]["enum"] = methods.names()
    props["alignment"]["properties"]["matcher"]["enum"] = matchers.names(matchers.PAIR_MATCHERS)
    props["rebasin"]["properties"]["matchings"]["items"]["enum"] = matchers.names(matchers.SAMPLE_MATCHERS)
    for name, section in methods.section_schemas().items():
        if name in props:
            raise ValueError(f"method {name!r} clashes with the config section of the same name")
        props[name] = section
    return schema


def architecture_schema(name: str) -> dict:
    """The schema branch of one architecture's arguments (the model section less 'architecture')."""
    from . import architectures

    return {"type": "object", "additionalProperties": False, "properties": architectures.entry(name).args}


def _with_defaults(validator_class):
    """Validator that fills each property's default before validating it (so nested defaults apply)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = ""
    if error.validator == "enum":
        pass  # the message already lists the allowed values
    elif error.validator in ("minItems", "maxItems"):
        allowed = f" (needs {'at least' if error.validator == 'minItems' else 'at most'} {error.validator_value})"
    elif error.validator == "additionalProperties":
        allowed = f"; allowed keys: {', '.join(sorted(schema.get('properties', {})))}"
    elif schema.get("description"):
        allowed = f" ({schema['description']})"
    return f"config key {key}: {error.message}{allowed}"


_SCALARS = {"integer": int, "number": float, "boolean": lambda s: {"true": True, "false": False}[s.lower()],
            "null": lambda s: None if s.lower() in ("null", "none", "~") else {}[s]}


def coerce_strings(value, schema: dict):
    """Turn strings into the numbers, booleans or nulls the schema asks for.

    Snakemake's ``--config key=[1,2]`` parses nested values as strings only; this makes such
    overrides mean what they say. Strings the schema allows as strings are left alone.
    """
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: coerce_strings(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_strings(v, schema.get("items", {})) for v in value]
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if isinstance(value, float) and value.is_integer() and "integer" in types and "number" not in types:
        return int(value)  # YAML's 2.0 where a count is meant (JSON Schema accepts it as an integer)
    if isinstance(value, str) and "string" not in types:
        for t in types:
            try:
                return _SCALARS[t](value)
            except (KeyError, ValueError):
                continue
    return value


def validate_config(config: dict) -> dict:
    """Return a validated copy of ``config`` with every default filled in; raise ConfigError."""
    schema = load_schema()
    config = coerce_strings(copy.deepcopy(dict(config)), schema)
    base = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(base)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    messages = [_describe(e) for e in errors] + [f"config key {k}: {v!r} is not a finite number"
                                                 for k, v in _non_finite(config)]
    if not messages:
        messages += _check_model_args(config["model"], base)
    if not messages:
        messages += _cross_checks(config)
    if messages:
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages))
    return config


def _check_model_args(model: dict, base) -> list[str]:
    """The model section's arguments against its architecture's own branch (defaults filled in place)."""
    from . import architectures

    arch = model["architecture"]
    args = {k: v for k, v in model.items() if k != "architecture"}
    allowed = list(architectures.entry(arch).args)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        return [f"config key model: architecture {arch!r} takes no argument {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed) or 'none'}"]
    args = coerce_strings(args, architecture_schema(arch))  # --config model.hidden=[8] arrives as strings
    validator = _with_defaults(base)(architecture_schema(arch))
    errors = sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.absolute_path)))
    model.update(args)
    return [f"config key model.{_describe(e).removeprefix('config key ')} (architecture {arch})" for e in errors]


def _cross_checks(config: dict) -> list[str]:
    """Constraints between keys that the schema cannot state."""
    from . import methods

    messages = []
    n_seeds = len(config["seeds"])
    for m in methods.names():
        key = methods.seed_limit_key(m)
        limit = config[m].get(key) if key else None
        if limit is not None and limit > n_seeds:
            messages.append(f"config key {m}.{key}: {limit} asked for, but seeds lists only {n_seeds}")
    if config["not_study"]["seeds"] > n_seeds:
        messages.append(f"config key not_study.seeds: {config['not_study']['seeds']} seeds asked for, but seeds "
                        f"lists only {n_seeds}")
    from .alignment import matchers

    matcher = config["alignment"]["matcher"]
    if config["alignment"]["joint"] and matchers.get(matcher).compares != matchers.WEIGHTS:
        messages.append(f"config key alignment.matcher: {matcher!r} optimises the barrier of one pair, but "
                        f"alignment.joint aligns all seeds at once by a weight matcher "
                        f"({', '.join(matchers.names(matchers.WEIGHTS))}); pick one of those, or joint: false")
    basin, references = config["rebasin"]["basin_reference"], config["rebasin"]["references"]
    if basin is not None and basin not in references and methods.reference_method(config["methods"]):
        messages.append(f"config key rebasin.basin_reference: {basin!r} is not among rebasin.references {references}")
    return messages


def fill_defaults(sections: dict) -> dict:
    """A copy of some config sections (a job's --config) with the schema's defaults filled in, so job
    code reads every key directly; sections it does not hold stay absent."""
    schema = load_schema()
    props = schema["properties"]
    out = copy.deepcopy(sections)
    for name, sub in props.items():  # sections with a default of their own ({}), e.g. compute
        if name not in out and isinstance(sub.get("default"), dict):
            out[name] = copy.deepcopy(sub["default"])
    validator = _with_defaults(jsonschema.validators.validator_for(schema))
    for name, value in out.items():
        if name in props and isinstance(value, dict):
            list(validator(props[name]).iter_errors(value))  # fills defaults in place
            if name == "model" and value.get("architecture") in props["model"]["properties"]["architecture"]["enum"]:
                list(validator(architecture_schema(value["architecture"])).iter_errors(value))
    return out


def basin_reference(config: dict) -> str:
    """The reference whose HMC q_r other methods are aligned into: as configured, else the last listed."""
    return config["rebasin"]["basin_reference"] or config["rebasin"]["references"][-1]


def _non_finite(value, path=""):
    """(dotted key, value) of every NaN or infinite number in a config."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, f"{path}.{i}")
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, value


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, found {type(raw).__name__}")
    return validate_config(raw)


def model_args(config: dict) -> dict:
    """Architecture keyword arguments: the model section less its architecture name."""
    return {k: v for k, v in config["model"].items() if k != "architecture"}


def method_seeds(config: dict, method: str) -> list[int]:
    """The seeds a method runs on: all of them, or the first N where the method has a seed limit
    (hmc.chains); a method fitted around another runs on that one's seeds."""
    from . import methods

    around = methods.fitted_around(method)
    if around is not None:
        return method_seeds(config, around)
    seeds = list(config["seeds"])
    key = methods.seed_limit_key(method)
    limit = config.get(method, {}).get(key) if key else None
    return seeds[:limit] if limit is not None else seeds


def seed_groups(config: dict, method: str) -> list[list[int]]:
    """The method's seeds as its jobs take them: consecutive groups of ``<method>.chains_per_job`` for
    a method that fits several seeds together (HMC's chains), else one seed per job."""
    from . import methods

    seeds = method_seeds(config, method)
    size = config.get(method, {}).get("chains_per_job", 1) if methods.fits_together(method) else 1
    return [seeds[i:i + size] for i in range(0, len(seeds), size)]


def seed_pairs(config: dict, method: str | None = None) -> list[tuple[int, int]]:
    """All unordered pairs of distinct seeds (of one method's seeds, if given), smaller seed first."""
    seeds = method_seeds(config, method) if method else config["seeds"]
    return list(itertools.combinations(sorted(seeds), 2))


# ---------------------------------------------------------------- sweeps

BASE_VARIANT = "base"


def _sweepable_top() -> tuple[str, ...]:
    from . import methods

    return ("data", "model", "prior", *methods.names(), "alignment", "barrier", "rebasin")


def _format_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_format_value(v) for v in value)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.-]+", "", text) or "none"


def variant_name(overrides: dict) -> str:
    """'base' for no overrides, else e.g. 'model.hidden-512_prior.std-0.1' (sorted keys)."""
    if not overrides:
        return BASE_VARIANT
    return "_".join(f"{k}-{_format_value(v)}" for k, v in sorted(overrides.items()))


def _unsweepable() -> tuple[str, ...]:
    """Keys that decide which jobs exist (read once for the whole workflow): they cannot differ by variant."""
    from . import methods

    limits = tuple(f"{m}.{methods.seed_limit_key(m)}" for m in methods.names() if methods.seed_limit_key(m))
    groups = tuple(f"{m}.chains_per_job" for m in methods.names() if methods.fits_together(m))
    return (*limits, *groups, "rebasin.references", "rebasin.basin_reference")


def _set_dotted(config: dict, key: str, value) -> None:
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in _sweepable_top():
        raise ConfigError(f"config key sweep: {key!r} cannot be swept; use a dotted key under one of "
                          f"{', '.join(_sweepable_top())} (e.g. model.hidden, prior.std, vi.temperature)")
    if key in _unsweepable():
        raise ConfigError(f"config key sweep: {key!r} cannot be swept: it decides which jobs run for every "
                          f"variant ({', '.join(_unsweepable())} are fixed per experiment)")
    config.setdefault(parts[0], {})[parts[1]] = copy.deepcopy(value)


def expand_variants(config: dict) -> dict[str, dict]:
    """Variant name -> (overrides, validated config of that variant), in a stable order."""
    grids = config.get("sweep") or []
    combos: list[dict] = []
    for grid in grids:
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            overrides = dict(zip(keys, values))
            if overrides not in combos:
                combos.append(overrides)
    if not combos:
        combos = [{}]
    variants = {}
    for overrides in combos:
        cfg = copy.deepcopy(config)
        cfg["sweep"] = []
        for key, value in overrides.items():
            _set_dotted(cfg, key, value)
        name = variant_name(overrides)
        try:
            cfg = validate_config(cfg)
        except ConfigError as err:
            raise ConfigError(f"sweep variant {name}: {err}") from None
        # one-at-a-time grids all contain the base point: compute it once
        if not any(cfg == other for _, other in variants.values()):
            variants[name] = (overrides, cfg)
    return variants


def variant_configs(config: dict) -> dict[str, dict]:
    """Variant name -> its validated config (expand_variants without the overrides)."""
    return {name: cfg for name, (_, cfg) in expand_variants(config).items()}


def table_cell(value):
    """A swept value as a table cell: numbers stay numbers, widths [512] become 512, [512, 512] '512x512'."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else "x".join(map(str, value))
    return value


def swept_keys(config: dict) -> list[str]:
    return sorted({k for grid in config.get("sweep") or [] for k in grid})


def get_dotted(config: dict, key: str):
    section, name = key.split(".")
    return config.get(section, {}).get(name)


def sweep_table(config: dict, variants: dict) -> dict:
    """{"base": {key: base value}, "variants": {variant: {key: its value}}} for every swept key."""
    keys = swept_keys(config)
    return {"base": {k: get_dotted(config, k) for k in keys},
            "variants": {name: {k: get_dotted(cfg, k) for k in keys} for name, (_, cfg) in variants.items()}}


# ---------------------------------------------------------------- what a job's result depends on

def runtime_keys() -> dict:
    """Settings that change how a job runs but not what it computes: kept out of the config a job is
    rerun for (and so out of Snakemake's params trigger), passed to it separately."""
    from . import methods

    keys = {"compute": None, "data": ("root", "download")}
    keys.update({m: methods.runtime_keys(m) for m in methods.names() if methods.runtime_keys(m)})
    return keys


def not_result_keys() -> dict:
    """Settings that choose which jobs run, not what one job computes (a method's seed limit, which
    alignment kinds, ks and seeds of the NoT study, which reference's basin): in neither."""
    from . import methods

    keys = {"alignment": ("kinds",), "not_study": ("ks", "seeds"), "rebasin": ("basin_reference",)}
    keys.update({m: (methods.seed_limit_key(m),) for m in methods.names() if methods.seed_limit_key(m)})
    return keys


def result_config(config: dict, sections) -> dict:
    """The config sections a job's result depends on, without runtime settings; 'name' included.
    A 'section.key' entry takes that one key of the section."""
    out = {"name": config["name"]}
    for s in sections:
        if "." in s:  # one key of a section, e.g. "barrier.n_points"
            section, key = s.split(".", 1)
            if key in config.get(section, {}):
                out.setdefault(section, {})[key] = config[section][key]
            continue
        if s not in config:
            continue
        keys = runtime_keys().get(s, ())
        if keys is None:
            continue
        keys = (*keys, *not_result_keys().get(s, ()))
        out[s] = {k: v for k, v in config[s].items() if k not in keys} if isinstance(config[s], dict) else config[s]
    return out


def runtime_config(config: dict) -> dict:
    """The runtime settings (device, threads, checkpoint interval, data root, download)."""
    out = {}
    for s, keys in runtime_keys().items():
        if s in config:
            out[s] = dict(config[s]) if keys is None else {k: config[s][k] for k in keys if k in config[s]}
    return out


def merge_configs(base: dict, extra: dict) -> dict:
    """Recursive merge of ``extra`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merge_configs(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out
