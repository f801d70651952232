"""Mutation score of the core modules: how many small, plausible bugs the unit tests catch.

    python benchmarks/mutation_score.py [--per-module N] [--modules alignment/permutations ...] [--doc] [--seed S]

For each core module it lists every mutation point of one of these kinds (from the AST):
comparison flipped (< <=, > >=, == !=, in / not in), arithmetic swapped (+ -, * /), a numeric
constant changed (0 <-> 1, c -> c + 1), a boolean negated (True / False, dropped `not`), a
`return x` turned into `return None` where x is not a name of a constant. It samples N of them
(seeded), writes each mutant into a scratch copy of the repository, and runs the module's test
files there (pytest -x, no end-to-end runs). A mutant is killed when the tests fail or time out.
Prints a table of killed / total per module and the surviving mutants (file:line and change), so
each survivor can be judged: a missing test, or an equivalent mutant.
Not part of CI: N = 20 per module takes about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_blocks import Transcript, stamp, write_block  # benchmarks/ is the script's folder, on sys.path

REPO = Path(__file__).resolve().parents[1]
# module (its path under workflow/, without .py) -> the test files that guard it
MODULES = {
    "alignment/permutations": ["tests/test_permutations.py", "tests/test_matching.py"],
    "alignment/matching": ["tests/test_matching.py", "tests/test_rebasin.py"],
    "alignment/rebasing": ["tests/test_rebasin.py"],
    "alignment/sinkhorn": ["tests/test_matchers.py"],
    "evaluation/compare": ["tests/test_compare.py", "tests/test_table1.py"],
    "evaluation/barriers": ["tests/test_barriers.py", "tests/test_matching.py"],
    "inference/hmc_sampler": ["tests/test_hmc.py", "tests/test_hmc_bnn.py"],
    "evaluation/mcmc_diagnostics": ["tests/test_mcmc_diagnostics.py"],
    "evaluation/repair": ["tests/test_repair.py"],
    "alignment/straight_through": ["tests/test_matchers.py"],
    "job_sizes": ["tests/test_job_sizes.py"],
}
FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
        ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    return skip


def mutation_points(tree: ast.AST) -> list[tuple[int, str]]:
    """(index of the node in ast.walk order, description) of every mutation point."""
    skip = _docstring_nodes(tree)
    points = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in FLIP:
            points.append((i, f"{type(node.ops[0]).__name__} -> {FLIP[type(node.ops[0])].__name__}"))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAP:
            points.append((i, f"{type(node.op).__name__} -> {SWAP[type(node.op)].__name__}"))
        elif isinstance(node, ast.Constant) and id(node) not in skip and type(node.value) in (int, float):
            points.append((i, f"constant {node.value!r} changed"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            points.append((i, f"{node.value} -> {not node.value}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            points.append((i, "`not` dropped"))
        elif isinstance(node, ast.Return) and node.value is not None and not isinstance(node.value, ast.Constant):
            points.append((i, "return None"))
    return points


class _Mutate(ast.NodeTransformer):
    def __init__(self, target: int, order: dict[int, int]):
        self.target, self.order = target, order

    def generic_visit(self, node):
        node = super().generic_visit(node)
        if self.order.get(id(node)) != self.target:
            return node
        if isinstance(node, ast.Compare):
            node.ops[0] = FLIP[type(node.ops[0])]()
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            node.op = SWAP[type(node.op)]()
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            node.value = not node.value
        elif isinstance(node, ast.Constant):
            node.value = {0: 1, 1: 0}.get(node.value, node.value + 1)
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Return):
            node.value = None
        return node


def mutant_source(source: str, target: int) -> tuple[str, int]:
    tree = ast.parse(source)
    order = {id(n): i for i, n in enumerate(ast.walk(tree))}
    line = next(n for i, n in enumerate(ast.walk(tree)) if i == target).lineno
    mutated = _Mutate(target, order).visit(tree)
    return ast.unparse(ast.fix_missing_locations(mutated)), line


def run_tests(root: Path, tests: list[str], timeout: float) -> str:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed (timeout)"
    return "survived" if proc.returncode == 0 else "killed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-module", type=int, default=20, help="mutants sampled per module (0: all)")
    parser.add_argument("--modules", nargs="+", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant's test run")
    parser.add_argument("--doc", action="store_true", help="write the table into docs/performance.md")
    args = parser.parse_args(argv)
    missing = [m for m in args.modules if not (REPO / "workflow" / f"{m}.py").is_file()]
    if missing:
        parser.error(f"no module workflow/<name>.py for {missing}; known: {list(MODULES)}")
    say = Transcript()

    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        root = scratch / "repo"
        shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".venv", ".git", "results", "data", ".snakemake",
                                                                  "__pycache__", "*.egg-info", ".pytest_cache"))
        # the scratch copy's own package must be the one imported: one crude mutant must fail its tests
        first = args.modules[0]
        path = root / "workflow" / f"{first}.py"
        original = path.read_text()
        path.write_text(original + "\nraise RuntimeError('mutation harness check')\n")
        if run_tests(root, MODULES[first], args.timeout) == "survived":
            print("the scratch copy's package is not the one the tests import; aborting", file=sys.stderr)
            return 2
        path.write_text(original)

        rng = random.Random(args.seed)
        rows, survivors = [], []
        start = time.time()
        for module in args.modules:
            path = root / "workflow" / f"{module}.py"
            original = path.read_text()
            points = mutation_points(ast.parse(original))
            chosen = points if args.per_module <= 0 else rng.sample(points, min(args.per_module, len(points)))
            killed = 0
            for target, description in sorted(chosen):
                source, line = mutant_source(original, target)
                path.write_text(source)
                outcome = run_tests(root, MODULES[module], args.timeout)
                killed += outcome.startswith("killed")
                if outcome == "survived":
                    survivors.append(f"workflow/{module}.py:{line}: {description}")
            path.write_text(original)
            rows.append((module, len(points), len(chosen), killed))
            print(f"{module}: {killed}/{len(chosen)} killed ({len(points)} points)", flush=True)
        say("| module | mutation points | mutants run | killed | score |")
        say("|---|---|---|---|---|")
        for module, points, run, killed in rows:
            say(f"| {module} | {points} | {run} | {killed} | {killed / max(run, 1):.0%} |")
        total_run, total_killed = sum(r[2] for r in rows), sum(r[3] for r in rows)
        say(f"| all | {sum(r[1] for r in rows)} | {total_run} | {total_killed} | "
            f"{total_killed / max(total_run, 1):.0%} |")
        say()
        say(f"{len(survivors)} survivors ({time.time() - start:.0f} s):")
        say()
        for s in survivors:
            say(f"- `{s}`")
        if args.doc:
            write_block("mutation-score", "\n".join([stamp(), "", *say.lines]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
