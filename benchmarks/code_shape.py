"""The shape of the code, as a newcomer meets it: lines per module of the package, its longest
functions, cycles in its module-level import graph, and the README's length. Reads a checkout,
runs nothing of it, so two revisions compare with the same command:

    python benchmarks/code_shape.py [--repo DIR] [--top 8]
    git worktree add /tmp/old <rev> && python benchmarks/code_shape.py --repo /tmp/old
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def modules(repo: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((repo / "workflow").rglob("*.py")):
        name = ".".join(path.relative_to(repo).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (imports inside functions are lazy: no cycle)."""
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                deps |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def functions(mods: dict[str, Path]) -> list[tuple[int, str]]:
    out = []
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return sorted(out, reverse=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--top", type=int, default=8, help="how many of the largest modules and functions")
    opts = parser.parse_args(argv)
    mods = modules(opts.repo)
    lines = {name: len(path.read_text().splitlines()) for name, path in mods.items()}
    funcs = functions(mods)
    found = cycles(import_graph(mods))
    readme = opts.repo / "README.md"
    print("| measure | value |\n|---|---|")
    print(f"| modules in workflow/ | {len(mods)} |")
    print(f"| lines in workflow/ | {sum(lines.values())} |")
    print(f"| largest modules | {', '.join(f'{n} {k}' for n, k in sorted(lines.items(), key=lambda x: -x[1])[:opts.top])} |")
    print(f"| longest functions (lines) | {', '.join(f'{n} {k}' for k, n in funcs[:opts.top])} |")
    print(f"| functions over 80 lines | {sum(1 for k, _ in funcs if k > 80)} |")
    print(f"| module-level import cycles | {'; '.join(' <-> '.join(c) for c in found) or 'none'} |")
    print(f"| README lines | {len(readme.read_text().splitlines()) if readme.exists() else 'n/a'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
