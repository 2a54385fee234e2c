"""The README and docs/ stay literally true: every command block marked runnable runs, and every
relative link resolves.

A block is runnable when the last non-blank line above its ```bash fence is a marker comment
(docs/extending.md, "Docs that stay true", documents it)::

    <!-- runnable [slow] [rc=N] [timeout=S] [expect="text"]... -->

Each such block runs with ``bash -eo pipefail`` in a fresh temporary folder whose ``spanfirst/``,
``pipelines/``, ``search_spaces/`` and ``mlflow_server/`` link to the repository's, so commands read
as typed at the repository root while what they write stays out of it. ``slow`` blocks start Ray.

Not run here, because other tests already run them end to end:

- the serving commands and every request form: ``tests/serving/test_serve_e2e.py``;
- ``pipelines/sweep.py`` itself: ``tests/sweep/test_sweep_e2e.py`` runs that entry script with a
  small RE search space. No test runs the quickstart sweep (``search_spaces/quickstart.yaml``, about
  5 minutes) end to end: ``tests/test_search_spaces.py`` validates the file, and
  ``pipelines/benchmark.py sweep`` runs it as the README does. This test checks that the README's set-up line runs ``pipelines/sweep.py``
  with no argument and that this means the quickstart space;
- the cluster walk-through: ``tests/cluster/``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED_INTO_WORKDIR = ("spanfirst", "pipelines", "search_spaces", "mlflow_server")
DEFAULT_TIMEOUT = 300

MARKER = re.compile(r"^<!--\s*runnable\b(?P<args>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    code: str
    slow: bool = False
    rc: int = 0
    timeout: float = DEFAULT_TIMEOUT
    expect: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO).as_posix()}:{self.line}"


def _parse_marker(args: str, where: str) -> dict:
    opts: dict = {"expect": []}
    for token in shlex.split(args):
        key, eq, value = token.partition("=")
        if not eq and key == "slow":
            opts["slow"] = True
        elif key == "rc" and eq:
            opts["rc"] = int(value)
        elif key == "timeout" and eq:
            opts["timeout"] = float(value)
        elif key == "expect" and eq:
            opts["expect"].append(value)
        else:
            raise ValueError(f"{where}: unknown runnable-marker option {token!r}")
    return opts


def _scan(doc: Path) -> tuple[list[Block], list[str], list[str]]:
    """(runnable blocks, the text outside fences, problems such as a marker with no bash block)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks, prose, problems = [], [], []
    pending: tuple[int, dict] | None = None
    fence: str | None = None
    body: list[str] = []
    start = 0
    for n, line in enumerate(lines, 1):
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                if pending is not None:
                    blocks.append(Block(doc, start, "\n".join(body) + "\n", **pending[1]))
                    pending = None
                fence = None
            else:
                body.append(line)
            continue
        opening = FENCE.match(line.lstrip())
        if opening:
            if pending is not None and opening["lang"] not in ("bash", "sh"):
                problems.append(f"{doc.name}:{pending[0]}: runnable marker above a '{opening['lang']}' block")
                pending = None
            fence, body, start = opening["fence"], [], n
            continue
        prose.append(line)
        marker = MARKER.match(line.strip())
        if pending is not None and line.strip():
            problems.append(f"{doc.name}:{pending[0]}: runnable marker not directly above a ```bash block")
            pending = None
        if marker:
            pending = (n, _parse_marker(marker["args"], f"{doc.name}:{n}"))
    if pending is not None:
        problems.append(f"{doc.name}:{pending[0]}: runnable marker at the end of the file")
    return blocks, prose, problems


SCANS = {doc: _scan(doc) for doc in DOCS}
BLOCKS = [b for blocks, _, _ in SCANS.values() for b in blocks]


def test_markers_are_well_formed_and_found():
    problems = [p for _, _, found in SCANS.values() for p in found]
    assert not problems, problems
    # a parser that silently found nothing would pass every block test below
    assert len([b for b in BLOCKS if b.doc.name == "README.md"]) >= 3, [b.id for b in BLOCKS]


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else [])
                                   for b in BLOCKS])
def test_runnable_block(block: Block, tmp_path):
    for name in LINKED_INTO_WORKDIR:
        (tmp_path / name).symlink_to(REPO / name, target_is_directory=True)
    env = {k: v for k, v in os.environ.items()
           # a block never reaches a cluster or a tracking server the caller happens to have set
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SPANFIRST_SWEEP_STORAGE")}
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        out = subprocess.run(["bash", "-eo", "pipefail", "-c", block.code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=block.timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{block.id}: still running after {block.timeout:.0f} s:\n{block.code}\n{err.stdout or ''}"
                    f"{err.stderr or ''}"[-6000:])
    text = out.stdout + out.stderr
    assert out.returncode == block.rc, (f"{block.id}: exit status {out.returncode}, expected {block.rc}\n"
                                        f"{block.code}\n--- output (tail) ---\n{text[-6000:]}")
    for expected in block.expect:
        assert expected in text, f"{block.id}: {expected!r} not in the output:\n{text[-6000:]}"


# -- links ------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _inline(text: str) -> str:
    """Inline code spans blanked, so a `[x](y)` shown as code is not a link."""
    return re.sub(r"(`+)(?:(?!\1).)+\1", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    found: dict[str, int] = {}
    out = set()
    for line in SCANS[doc][1] if doc in SCANS else _scan(doc)[1]:
        m = HEADING.match(line)
        if m:
            base = slug(m[2])
            n = found.get(base, 0)
            found[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links() -> list[tuple[Path, str]]:
    found = {(doc, target) for doc, (_, prose, _) in SCANS.items() for line in prose
             for target in LINK.findall(_inline(line))}
    return sorted(found, key=lambda link: (DOCS.index(link[0]), link[1]))


def test_links_are_found():
    assert len([1 for doc, _ in _links() if doc.name == "README.md"]) >= 10


@pytest.mark.parametrize("doc,target", _links(), ids=[f"{d.relative_to(REPO).as_posix()}->{t}" for d, t in _links()])
def test_relative_link_resolves(doc: Path, target: str):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    path, _, anchor = target.partition("#")
    dest = (doc.parent / path).resolve() if path else doc
    assert dest.exists(), f"{doc.relative_to(REPO)}: link to {target} - {dest} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in anchors(dest), f"{doc.relative_to(REPO)}: no heading '#{anchor}' in {dest.name}: {sorted(anchors(dest))}"


# -- the set-up commands are the ones CI and the quickstart use --------------------------------


def _setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```bash\n(.*?)```", section, re.S)
    assert code, "README.md: no bash block in the Set-up section"
    return [line.strip() for line in code[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_setup_installs_as_ci_does_then_runs_the_quickstart_sweep():
    install, tests = _setup_commands()
    steps = [s.strip() for s in install.split("&&")]
    assert steps[-1] == "python pipelines/sweep.py", steps  # no argument: the quickstart space
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_pip = [shlex.split(line.split("install", 1)[1]) for line in ci.splitlines()
              if re.match(r"\s*(python -m )?pip install", line)]
    for step in steps:
        if step.startswith("pip install"):
            wanted = [a for a in shlex.split(step)[2:] if not a.startswith("-") or a == "-e"]
            assert any(all(a in line for a in wanted) for line in ci_pip), (step, ci_pip)
    assert tests == "python -m pytest -q"
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert ci_commands[-1] == tests, f".ci/run ends with {ci_commands[-1]!r}, the README's test command is {tests!r}"


def test_sweep_without_arguments_runs_the_quickstart_space():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_sweep_cli", REPO / "pipelines" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert Path(module.DEFAULT_SPACE) == REPO / "search_spaces" / "quickstart.yaml"
    # the end-to-end sweep test drives this same entry script
    assert '"pipelines" / "sweep.py"' in (REPO / "tests" / "sweep" / "conftest.py").read_text(encoding="utf-8")
