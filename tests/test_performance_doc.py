"""docs/performance.md and docs/alignment.md hold their numbers only in blocks that the benchmarks
write themselves (benchmarks/doc_blocks.py): every block is there, stamped by the command that
writes it, and the prose between the blocks repeats no measurement."""

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import doc_blocks  # noqa: E402

# page -> block -> the benchmark script that writes it
WRITERS = {
    doc_blocks.DOC: {"default-run": "default_run.py", "job-resources": "default_run.py", "peers": "run_all.py",
                     "predict-flops": "predict_flops.py", "predict-memory": "predict_memory.py",
                     "mutation-score": "mutation_score.py"},
    REPO / "docs" / "alignment.md": {"planted-recovery-trained": "planted_recovery.py",
                                     "planted-recovery-init": "planted_recovery.py",
                                     "planted-recovery-ste": "planted_recovery.py"},
}
STAMP = re.compile(r"^Written by `python benchmarks/(?P<script>\w+\.py)[^`]*` at commit [0-9a-f]{7,}\S* on "
                   r"\d{4}-\d{2}-\d{2}\.")
# a measurement in prose: a time, a speed-up, a memory size
MEASUREMENT = re.compile(r"\b\d+(\.\d+)?\s?(ms|s|min|minutes|seconds|MiB|MB|GiB|GFLOP/s)\b|\b\d+\.\d+x\b")


@pytest.mark.parametrize("doc", list(WRITERS), ids=lambda d: d.name)
def test_every_block_is_written_by_its_benchmark(doc):
    blocks = doc_blocks.blocks(doc)
    assert set(blocks) == set(WRITERS[doc])
    for key, text in blocks.items():
        stamp = STAMP.match(text)
        assert stamp, f"{doc.name}: block {key!r} does not start with its command's stamp: {text[:120]!r}"
        script = REPO / "benchmarks" / WRITERS[doc][key]
        assert stamp["script"] == script.name, f"block {key!r} names {stamp['script']}, written by {script.name}"
        assert f'"{key}"' in script.read_text(), f"{script.name} does not write block {key!r}"
        assert len(text.splitlines()) > 2, f"{doc.name}: block {key!r} holds no measurement"


@pytest.mark.parametrize("doc", list(WRITERS), ids=lambda d: d.name)
def test_the_prose_repeats_no_measurement(doc):
    page = doc.read_text()
    for key in WRITERS[doc]:
        head, rest = page.split(doc_blocks.begin(key), 1)
        page = head + rest.split(doc_blocks.end(key), 1)[1]
    found = [m.group(0) for m in MEASUREMENT.finditer(page)]
    assert not found, f"measurements typed into {doc.name} outside the generated blocks: {found}"


def test_a_block_is_replaced_alone_and_a_page_without_its_markers_is_refused(tmp_path):
    doc = tmp_path / "p.md"
    doc.write_text(f"a\n{doc_blocks.begin('x')}\nold\n{doc_blocks.end('x')}\nb\n"
                   f"{doc_blocks.begin('y')}\nkeep\n{doc_blocks.end('y')}\n")
    doc_blocks.write_block("x", "new\nlines\n", doc)
    assert doc_blocks.blocks(doc) == {"x": "new\nlines", "y": "keep"}
    assert doc.read_text().startswith("a\n") and doc.read_text().endswith(f"{doc_blocks.end('y')}\n")
    with pytest.raises(ValueError, match="needs exactly one line"):
        doc_blocks.write_block("z", "text", doc)
    assert doc_blocks.blocks(doc) == {"x": "new\nlines", "y": "keep"}  # untouched by the refusal


def test_the_stamp_names_the_command_and_the_commit():
    line = doc_blocks.stamp([str(REPO / "benchmarks" / "run_all.py"), "--doc"])
    assert STAMP.match(line) and "`python benchmarks/run_all.py --doc`" in line


def test_the_default_run_benchmark_times_the_readmes_own_first_command(tmp_path):
    import default_run

    install, run = default_run.readme_command(REPO / "README.md")
    assert run == default_run.RUN_COMMAND and "pip install" in install
    readme = tmp_path / "README.md"
    readme.write_text("```bash\npip install x && snakemake --cores 1\n```\n")
    with pytest.raises(ValueError, match="should end with"):
        default_run.readme_command(readme)
