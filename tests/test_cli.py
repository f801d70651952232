"""Bad input through the command line (`python -m workflow ...`): every class of bad input stops the
job with exit code 1 and one line naming what is wrong, never a traceback from inside a library.
docs/configuration.md's bad-input table lists these rows; keep them in step."""

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import yaml

from workflow.storage.artifacts import write_posterior

from .conftest import make_mlp
from .test_artifacts import gaussian_posterior, samples_posterior

REPO = Path(__file__).resolve().parents[1]
DIGITS = {"name": "t", "data": {"dataset": "digits", "n_train": 200, "n_test": 100}}
MLP = {"model": {"architecture": "mlp", "hidden": [8]}}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workflow", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good inputs to break: two MLP posteriors of seeds 0 and 3, a prepared digits data file."""
    d = tmp_path_factory.mktemp("inputs")
    params = make_mlp()[2]
    write_posterior(d / "samples0.h5", samples_posterior(params, seed=0))
    write_posterior(d / "gaussian3.h5", gaussian_posterior(params))
    proc = cli("prepare-data", "--config", json.dumps(DIGITS), "--out", str(d / "digits.npz"), cwd=d)
    assert proc.returncode == 0, proc.stderr
    return d


def _truncated(d: Path) -> Path:
    data = (d / "samples0.h5").read_bytes()
    (d / "truncated.h5").write_bytes(data[: len(data) // 2])
    return d / "truncated.h5"


def _truncated_data(d: Path) -> Path:
    data = (d / "digits.npz").read_bytes()
    (d / "cut.npz").write_bytes(data[: len(data) // 2])
    return d / "cut.npz"


def _train_on(data: Path) -> list[str]:
    return ["train", "--method", "ensemble", "--seed", "0", "--data", str(data), "--out", str(data.parent / "t.h5"),
            "--config", json.dumps({**DIGITS, **MLP})]


def _foreign(d: Path) -> Path:
    with h5py.File(d / "foreign.h5", "w") as f:
        f["x"] = [1, 2, 3]
    return d / "foreign.h5"


def _other_architecture(d: Path) -> Path:
    from workflow.storage.artifacts import Posterior

    params = make_mlp(hidden=(5,))[2]
    post = gaussian_posterior(params)
    post = Posterior(**{**post.__dict__, "architecture_args": {"hidden": [5], "activation": "relu"}, "seed": 4})
    write_posterior(d / "other_arch.h5", post)
    return d / "other_arch.h5"


def _bad_config(d: Path) -> Path:
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["model"]["activation"] = "softmax"
    (d / "bad.yaml").write_text(yaml.safe_dump(cfg))
    return d / "bad.yaml"


def _unknown_key(d: Path) -> Path:
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["vi"]["learning_rate"] = 0.1
    (d / "unknown.yaml").write_text(yaml.safe_dump(cfg))
    return d / "unknown.yaml"


def _blocked_folder(d: Path) -> Path:
    (d / "a_file").write_text("not a folder")
    return d / "a_file" / "out.h5"  # a folder that cannot be made (root ignores permissions)


def _align(a, b, out="out.h5", seeds=None):
    return ["align", "--kind", "weight", "--a", str(a), "--b", str(b), "--out", str(out),
            *(["--seeds", *map(str, seeds)] if seeds else [])]


def _train(d, **method):
    return ["train", "--method", "ensemble", "--seed", "0", "--data", str(d / "digits.npz"), "--out",
            str(d / "trained.h5"), "--config", json.dumps({**DIGITS, **MLP, "ensemble": {"epochs": 2, **method}})]


def _hmc(d, **settings):
    return ["train", "--method", "hmc", "--seed", "0", "--data", str(d / "digits.npz"), "--out",
            str(d / "hmc.h5"), "--config", json.dumps({**DIGITS, **MLP, "hmc": {"n_warmup": 0, "n_samples": 2,
                                                                               "adapt_step_size": False, **settings}})]


# (docs/configuration.md row, arguments given the input folder, words the one-line error must hold)
CASES = [
    ("config: a bad value", lambda d: ["validate-config", str(_bad_config(d))],
     ["model.activation", "'softmax'", "'relu'"]),
    ("config: an unknown key", lambda d: ["validate-config", str(_unknown_key(d))],
     ["vi", "learning_rate"]),
    ("config: a missing file", lambda d: ["validate-config", str(d / "nowhere.yaml")], ["nowhere.yaml"]),
    ("data: a missing data root", lambda d: ["prepare-data", "--config", json.dumps(
        {"name": "t", "data": {"dataset": "mnist", "root": str(d / "no-data")}}), "--out", str(d / "m.npz")],
     ["no-data", "MNIST"]),
    ("data: a truncated prepared data file", lambda d: _train_on(_truncated_data(d)), ["cut.npz",
                                                                                     "not a prepared data set"]),
    ("HDF5: truncated", lambda d: _align(_truncated(d), d / "samples0.h5"), ["truncated.h5"]),
    ("HDF5: not a posterior", lambda d: _align(_foreign(d), d / "samples0.h5"), ["foreign.h5"]),
    ("HDF5: not an HDF5 file", lambda d: _align(d / "digits.npz", d / "samples0.h5"), ["digits.npz"]),
    ("HDF5: wrong kind for the step", lambda d: ["align", "--kind", "w2", "--a", str(d / "samples0.h5"), "--b",
                                                 str(d / "samples0.h5"), "--out", str(d / "o.h5")],
     ["'w2'", "gaussian"]),
    ("HDF5: another architecture", lambda d: _align(d / "gaussian3.h5", _other_architecture(d)),
     ["other_arch.h5", "architecture"]),
    ("seeds: a file of another seed", lambda d: _align(d / "samples0.h5", d / "gaussian3.h5", seeds=(0, 1)),
     ["gaussian3.h5", "seed 3"]),
    ("training: a NaN loss", lambda d: _train(d, lr=1e12, optimizer="sgd"), ["diverged", "loss nan",
                                                                              "learning rate"]),
    ("HMC: a chain whose every proposal diverges", lambda d: _hmc(d, step_size=1e6),
     ["every one of the 2", "diverged", "step size"]),
    ("output: a folder that cannot be written", lambda d: _align(d / "samples0.h5", d / "samples0.h5",
                                                                 out=_blocked_folder(d)),
     ["a_file"]),
]


@pytest.mark.parametrize("row, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(files, row, args, words):
    proc = cli(*args(files), cwd=files)
    err = proc.stderr
    assert proc.returncode != 0, f"{row}: accepted\n{proc.stdout[-500:]}{err[-1500:]}"
    assert "Traceback" not in err, f"{row}: a traceback\n{err[-3000:]}"
    # one ERROR record, possibly continued by detail lines (every invalid key, every missing file)
    lines = err.splitlines()
    first = next((i for i, line in enumerate(lines) if " ERROR " in line), None)
    assert first is not None, f"{row}: no error line\n{err[-1500:]}"
    record = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
    assert not any(record.match(line) for line in lines[first + 1:]), f"{row}: more than one message\n{err[-1500:]}"
    message = " ".join(lines[first:])
    for word in words:
        assert word in message, f"{row}: {word!r} missing from {message!r}"


@pytest.mark.parametrize("command", ["concat-tables", "table-html", "summarize-barriers"])
def test_light_commands_start_without_torch(tmp_path, command):
    """Summaries and tables never compute with torch: their jobs do not pay for importing it."""
    curve = tmp_path / "c.csv"
    curve.write_text("variant,method,alignment,pair,t,loss,error,distance_kind,distance,not_total,units_total\n"
                     + "".join(f"base,vi,naive,0-1,{t},{1 + t * (1 - t)},0.1,w2,1.0,,\n" for t in (0, 0.5, 1)))
    args = {"concat-tables": ["--tables", str(curve), "--out", str(tmp_path / "o.csv")],
            "table-html": ["--table", str(curve), "--title", "t", "--out", str(tmp_path / "o.html")],
            "summarize-barriers": ["--curves", str(curve), "--variants", "{}", "--out-curves", str(tmp_path / "a.csv"),
                                   "--out-csv", str(tmp_path / "b.csv"), "--out-md", str(tmp_path / "b.md")]}[command]
    code = (f"import sys; from workflow import cli; code = cli.main({[command, *args]!r}); "
            "print(code, 'torch' in sys.modules, 'scipy.optimize' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.stdout.split() == ["0", "False", "False"], proc.stdout + proc.stderr[-2000:]


def test_an_internal_error_keeps_its_traceback(monkeypatch, tmp_path):
    """A bug (here a KeyError from inside a job) is not bad input: it propagates with its traceback
    instead of becoming the one-line error of the table above."""
    from workflow import cli as cli_module

    def buggy(args, cfg, device):
        return {}["a key the code forgot"]

    monkeypatch.setattr(cli_module, "JOBS", (cli_module.Job("buggy", "a job with a bug", run=buggy),))
    with pytest.raises(KeyError, match="a key the code forgot"):
        cli_module.main(["buggy"])


def test_a_new_job_is_one_declaration(monkeypatch, tmp_path, capsys):
    """A job kind is declared once (cli.JOBS): its command, arguments and the common job arguments come
    from the declaration alone, and a light job starts without importing torch."""
    from workflow import cli as cli_module

    ran = {}
    job = cli_module.Job("echo-rows", "count a CSV's rows", common=True,
                         run=lambda a, c, d: ran.update(rows=len(open(a.table).readlines()) - 1, device=d),
                         args=(cli_module.arg("--table", required=True),))
    monkeypatch.setattr(cli_module, "JOBS", (*cli_module.JOBS, job))
    (tmp_path / "t.csv").write_text("a\n1\n2\n")
    assert cli_module.main(["echo-rows", "--table", str(tmp_path / "t.csv"), "--threads", "3", "--config",
                            '{"compute": {"device": "cpu"}}']) == 0
    assert ran == {"rows": 2, "device": "cpu"}
    with pytest.raises(SystemExit):
        cli_module.main(["echo-rows"])  # --table is required
    assert "--table" in capsys.readouterr().err
