"""The documentation is tested like code.

* Every ```python block of ``README.md`` and ``docs/*.md`` runs. The blocks of one file run in
  order in one namespace, in a temporary working directory. Tracebacks point at the Markdown
  file's own line numbers.
* A block is only left out with the visible marker ```` ```python no-test: <reason> ````. Such
  blocks must be rare, and each must give its reason.
* ``mobilecnn ...`` lines in ```bash blocks are parsed by the real argument parser, so a renamed
  flag or command breaks the docs test.
* Every relative link (and ``#anchor`` into a Markdown page) points at something that exists.
* Every public name is documented in ``docs/api.md`` with its real parameter names, and every
  public callable has a docstring.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, is_typeddict

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
API_PAGE = DOCS / "api.md"
PUBLIC_MODULES = ("mobilecnn", "mobilecnn.data", "mobilecnn.deploy", "mobilecnn.train")

SKIP_MARKER = "no-test:"
MAX_SKIPPED_FRACTION = 0.2  # at most one python block in five may be left out
PYTHON_LIKE = {"py", "python3", "pycon", "ipython"}  # must be spelled ``python`` to be tested
SHELL_LANGS = {"bash", "sh", "shell", "console"}

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line number of the first line of code
    lang: str
    info: str  # the rest of the info string after the language
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path, text: str | None = None) -> list[CodeBlock]:
    """The fenced code blocks of a Markdown file (CommonMark fences, backticks or tildes)."""
    blocks: list[CodeBlock] = []
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    opening: re.Match[str] | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if opening is None:
            if match and not (match["fence"][0] == "`" and "`" in match["info"]):
                opening, start, body = match, number + 1, []
            continue
        closing = match is not None and not match["info"].strip()
        if closing and match["fence"][0] == opening["fence"][0] and len(match["fence"]) >= len(
            opening["fence"]
        ):
            lang, _, info = opening["info"].strip().partition(" ")
            indent = len(opening["indent"])
            code = "\n".join(text[indent:] if text[:indent].isspace() else text for text in body)
            blocks.append(CodeBlock(path, start, lang.lower(), info.strip(), code))
            opening = None
        else:
            body.append(line)
    assert opening is None, f"{path.relative_to(ROOT)}:{start - 1}: unclosed code fence"
    return blocks


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _file_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --------------------------------------------------------------------------- python blocks


@pytest.mark.slow  # api.md and deployment.md train and export models: 20-60 s each
@pytest.mark.parametrize("path", markdown_files(), ids=_file_id)
def test_python_blocks_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not path.exists():
        pytest.skip(f"{_file_id(path)} does not exist yet")
    blocks = [b for b in code_blocks(path) if b.lang == "python" and SKIP_MARKER not in b.info]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for block in blocks:
        # pad with blank lines so that tracebacks show the Markdown file's line numbers
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(block.path), "exec"), namespace)


def test_skipped_blocks_are_rare_and_justified() -> None:
    python_blocks: list[CodeBlock] = []
    for path in markdown_files():
        if path.exists():
            python_blocks += [b for b in code_blocks(path) if b.lang == "python"]
    assert python_blocks, "no python code block found in README.md or docs/"
    skipped = [b for b in python_blocks if SKIP_MARKER in b.info]
    for block in skipped:
        reason = block.info.split(SKIP_MARKER, 1)[1].strip()
        assert len(reason) >= 10, f"{block.where}: say why this block can't run: '{block.info}'"
    assert len(skipped) <= MAX_SKIPPED_FRACTION * len(python_blocks), (
        f"{len(skipped)} of {len(python_blocks)} python blocks are not tested: "
        + ", ".join(b.where for b in skipped)
    )


@pytest.mark.parametrize("path", markdown_files(), ids=_file_id)
def test_python_blocks_are_tagged_python(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{_file_id(path)} does not exist yet")
    for block in code_blocks(path):
        assert block.lang not in PYTHON_LIKE, (
            f"{block.where}: tag Python code as ```python so that the docs test runs it"
        )


def test_fence_parser_finds_blocks_and_their_lines(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```python\nx = 1\n```\n\n"
        "- item\n\n  ```bash\n  mobilecnn compare\n  ```\n\n"
        "````text\n```python\nnot a block\n```\n````\n"
        "```python no-test: needs a CUDA device\ny = 2\n```\n",
        encoding="utf-8",
    )
    found = [(b.line, b.lang, b.info, b.code) for b in code_blocks(page)]
    assert found == [
        (4, "python", "", "x = 1"),
        (10, "bash", "", "mobilecnn compare"),
        (14, "text", "", "```python\nnot a block\n```"),
        (19, "python", "no-test: needs a CUDA device", "y = 2"),
    ]


# --------------------------------------------------------------------------- CLI lines


def cli_invocations(code: str) -> list[list[str]]:
    """Argument lists of every ``mobilecnn ...`` / ``python -m mobilecnn ...`` command."""
    logical = re.sub(r"\\\n", " ", code)
    invocations: list[list[str]] = []
    for line in logical.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token in {";", "&&", "||", "|", "&"}:
                invocations += _mobilecnn_args(command)
                command = []
            else:
                command.append(token)
    return invocations


def _mobilecnn_args(command: list[str]) -> list[list[str]]:
    words = [w for w in command if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)] or [""]
    if words[0] == "mobilecnn":
        return [words[1:]]
    for index in range(len(words) - 1):
        if words[index] == "-m" and words[index + 1] == "mobilecnn":
            return [words[index + 2 :]]
    return []


def assert_cli_lines_parse(code: str, where: str) -> None:
    """Fail if a ``mobilecnn`` command in the shell ``code`` is rejected by the real parser."""
    from mobilecnn.cli import build_parser

    for argv in cli_invocations(code):
        try:
            build_parser().parse_args(argv)
        except SystemExit as exit_:
            if exit_.code not in (0, None):  # --help and --version exit 0
                pytest.fail(f"{where}: `mobilecnn {shlex.join(argv)}` does not parse")


def test_cli_invocations_are_found() -> None:
    code = (
        "# a comment\n$ mobilecnn compare --in 64\n"
        "mobilecnn summary mobilenet_v2 \\\n  --input-size 64 | head\n"
        "CUDA_VISIBLE_DEVICES=0,1 torchrun --nproc_per_node=2 -m mobilecnn train --epochs 1\n"
        "pip install mobilecnn  # not a mobilecnn command\n"
    )
    assert cli_invocations(code) == [
        ["compare", "--in", "64"],
        ["summary", "mobilenet_v2", "--input-size", "64"],
        ["train", "--epochs", "1"],
    ]


def test_renamed_flag_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    assert_cli_lines_parse("mobilecnn summary mobilenet_v2 --input-size 64", "ok")
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        assert_cli_lines_parse("mobilecnn summary mobilenet_v2 --image-size 64", "page.md:3")
    assert "unrecognized arguments: --image-size" in capsys.readouterr().err


@pytest.mark.parametrize("path", markdown_files(), ids=_file_id)
def test_cli_lines_parse(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{_file_id(path)} does not exist yet")
    for block in code_blocks(path):
        if block.lang in SHELL_LANGS:
            assert_cli_lines_parse(block.code, block.where)


# --------------------------------------------------------------------------- links


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def _prose(path: Path, text: str | None = None) -> str:
    """The text without fenced code blocks and inline code spans, where links are not links."""
    text = path.read_text(encoding="utf-8") if text is None else text
    for block in code_blocks(path, text):
        text = text.replace(block.code, "")
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text, flags=re.DOTALL)


def github_anchors(path: Path) -> set[str]:
    """Anchors GitHub makes for the headings of a Markdown file."""
    anchors: set[str] = set()
    for line in _prose_lines(path):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading[1])  # link text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        candidate, suffix = slug, 0
        while candidate in anchors:
            suffix += 1
            candidate = f"{slug}-{suffix}"
        anchors.add(candidate)
    return anchors


def _prose_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    in_code = {
        number
        for block in code_blocks(path)
        for number in range(block.line - 1, block.line + block.code.count("\n") + 2)
    }
    return [line for number, line in enumerate(lines, start=1) if number not in in_code]


def test_github_anchors() -> None:
    page = DOCS / "concepts.md"
    assert "1-standard-vs-depthwise-separable-convolution" in github_anchors(page)
    assert "5-small-inputs-total_stride-16-and-8" in github_anchors(page)


def broken_links(path: Path, text: str | None = None) -> list[str]:
    """Relative links of the Markdown ``text`` (default: the file) that lead nowhere."""
    prose = _prose(path, text)
    broken: list[str] = []
    for target in LINK.findall(prose) + REFERENCE.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in github_anchors(linked):
            broken.append(f"{target} (no heading with anchor #{anchor})")
    return sorted(set(broken))


@pytest.mark.parametrize("path", markdown_files(), ids=_file_id)
def test_relative_links_resolve(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{_file_id(path)} does not exist yet")
    broken = broken_links(path)
    assert not broken, f"{_file_id(path)} has broken links: " + "; ".join(broken)


def _notebook_markdown(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n\n".join(
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in cells
        if cell["cell_type"] == "markdown"
    )


@pytest.mark.parametrize(
    "notebook", sorted((ROOT / "examples").glob("*.ipynb")), ids=lambda p: p.name
)
def test_notebook_text_links_and_commands(notebook: Path) -> None:
    """The Markdown cells of the notebooks follow the same rules as the docs."""
    text = _notebook_markdown(notebook)
    broken = broken_links(notebook, text)
    assert not broken, f"{notebook.name} has broken links: " + "; ".join(broken)
    for block in code_blocks(notebook, text):
        if block.lang in SHELL_LANGS:
            assert_cli_lines_parse(block.code, notebook.name)


def test_docs_home_links_every_page() -> None:
    home = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(home)}
    pages = {"concepts.md", "api.md", "data.md", "training.md", "deployment.md", "results.md"}
    pages |= {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


# --------------------------------------------------------------------------- API reference


def public_names() -> list[tuple[str, str]]:
    names: list[tuple[str, str]] = []
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        names += [(module_name, name) for name in getattr(module, "__all__", [])]
    return names


def _signature_lines(api_text: str, name: str) -> list[str]:
    return re.findall(rf"^(?:[\w.]+\.)?{re.escape(name)}\((.*)\)(?:\s*->.*)?$", api_text, re.M)


def _documented_parameters(signature: str) -> list[str]:
    """Parameter names of ``a: int = 1, *args, b: dict[str, int] = {}, **kwargs``."""
    params, depth, current = [], 0, ""
    for char in signature + ",":
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            name = re.split(r"[:=]", current)[0].strip().lstrip("*")
            if name and name != "/":
                params.append(name)
            current = ""
        else:
            current += char
    return params


def _real_parameters(obj: Any) -> list[str] | None:
    """Parameter names of a function, or of a class's own constructor; None if it has none."""
    if inspect.isclass(obj):
        # TypedDicts, base classes and subclasses of torch/builtin types that keep the
        # inherited constructor are described in words instead
        if is_typeddict(obj) or "__init__" not in vars(obj):
            return None
    elif not inspect.isfunction(obj):
        return None
    return [p for p in inspect.signature(obj).parameters if p != "self"]


def test_every_public_name_is_in_the_api_reference() -> None:
    api_text = API_PAGE.read_text(encoding="utf-8")
    names = public_names()
    assert len(names) >= 15
    missing = [
        f"{module}.{name}"
        for module, name in names
        if not re.search(rf"^#+ .*`{re.escape(name)}`", api_text, re.MULTILINE)
    ]
    assert not missing, f"docs/api.md has no heading for: {', '.join(missing)}"


def test_api_reference_signatures_match_the_code() -> None:
    api_text = API_PAGE.read_text(encoding="utf-8")
    problems: list[str] = []
    for module_name, name in public_names():
        expected = _real_parameters(getattr(importlib.import_module(module_name), name))
        if expected is None:
            continue
        lines = _signature_lines(api_text, name)
        if not lines:
            problems.append(f"{module_name}.{name}: no signature line `{name}(...)`")
        elif all(_documented_parameters(line) != expected for line in lines):
            problems.append(f"{module_name}.{name}: documented {lines} but the code has {expected}")
    assert not problems, "docs/api.md is out of date:\n" + "\n".join(problems)


def test_public_callables_have_docstrings() -> None:
    undocumented: list[str] = []
    for module_name, name in public_names():
        obj = getattr(importlib.import_module(module_name), name)
        if not callable(obj) or isinstance(obj, dict):
            continue
        # a class's own docstring (getdoc would fall back to nn.Module's)
        own_doc = vars(obj).get("__doc__") if inspect.isclass(obj) else inspect.getdoc(obj)
        if not own_doc:
            undocumented.append(f"{module_name}.{name}")
        if inspect.isclass(obj) and not is_typeddict(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                if not inspect.getdoc(member):
                    undocumented.append(f"{module_name}.{name}.{attr}")
    assert not undocumented, "public callables without a docstring: " + ", ".join(undocumented)


# --------------------------------------------------------------------------- results tables


@pytest.mark.slow
def test_results_tables_are_generated_from_the_library() -> None:
    """docs/results.md holds exactly what scripts/results_tables.py computes now."""
    spec = importlib.util.spec_from_file_location(
        "results_tables", ROOT / "scripts" / "results_tables.py"
    )
    assert spec is not None and spec.loader is not None
    results_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_tables)
    page = (DOCS / "results.md").read_text(encoding="utf-8")
    assert results_tables.render(page) == page, (
        "docs/results.md is out of date: run python scripts/results_tables.py --write"
    )
