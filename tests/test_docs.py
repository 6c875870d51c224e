"""The documentation: the site in docs/ builds warning-free and nitpicky, its internal links
resolve, a planted broken reference fails a build, and every code example of the site and the
README runs (python blocks executed, pycon blocks checked by doctest, bash blocks run or, where
marked not to run, their commands checked against the parser, the scripts, the extras and the
tox environments)."""

from __future__ import annotations

import contextlib
import doctest
import glob
import io
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "reports" / "example"
#: Every page the examples are read from: the site's and the README.
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
#: The languages a code block may have: run (python, bash), checked (pycon), shown (text).
LANGUAGES = {"python", "pycon", "bash", "text"}
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.*?)\s*-->\s*$", re.S)


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    """The site built as ``bash scripts/docs -W -n --keep-going`` builds it: warnings are
    errors, nitpicky references resolved."""
    return subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n",
                           "--keep-going", "-q", str(source), str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "html"
    start = time.perf_counter()
    res = sphinx_build(DOCS, out)
    return out, res, time.perf_counter() - start


@pytest.mark.slow
def test_the_site_builds_warning_free(site):
    out, res, seconds = site
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stderr.strip() == "", res.stderr
    for page in DOCS.glob("*.md"):
        assert (out / f"{page.stem}.html").is_file(), page.name
    # the generated parts are there: the API, the command line, the result fields
    api = (out / "api.html").read_text(encoding="utf-8")
    for name in ("gradbench.MLP", "gradbench.numerical_gradient", "gradbench.gradient_check",
                 "gradbench.Method", "gradbench.results.load_set"):
        assert f'id="{name}"' in api, name
    cli = re.sub(r"<[^>]+>", "", (out / "cli.html").read_text(encoding="utf-8"))
    for verb in ("run", "report", "compare", "ab", "history", "check", "train", "methods"):
        assert f"gradbench {verb} [-h]" in cli, verb
    assert "--budget" in cli and "--threshold" in cli
    fields = (out / "results.html").read_text(encoding="utf-8")
    assert "benchmarks[].extra_info.device" in fields and "epochs[].test_accuracy" in fields
    print(f"docs built in {seconds:.1f} s")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        for key in ("href", "src"):
            if a.get(key) is not None:
                self.links.append(a[key])


@pytest.mark.slow
def test_every_internal_link_resolves(site):
    out, res, _ = site
    assert res.returncode == 0, res.stdout + res.stderr
    pages = {}
    for html in out.rglob("*.html"):
        p = _Links()
        p.feed(html.read_text(encoding="utf-8"))
        pages[html.resolve()] = p
    broken = []
    for html, p in pages.items():
        for link in p.links:
            url = urlsplit(link)
            if url.scheme or url.netloc:  # http(s), mailto, data: outside the site
                continue
            target = (html.parent / unquote(url.path)).resolve() if url.path else html
            if not target.exists():
                broken.append(f"{html.name}: {link}")
            elif url.fragment and target.suffix == ".html":
                if unquote(url.fragment) not in pages[target].ids:
                    broken.append(f"{html.name}: {link} (no such anchor)")
    assert broken == []
    assert sum(len(p.links) for p in pages.values()) > 100


@pytest.mark.slow
def test_a_broken_reference_fails_the_build(tmp_path):
    """A positive control of the build's checks: a page with a reference to a function that
    does not exist, and a link to a page that does not exist, beside a good reference."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(f"import runpy\nglobals().update(runpy.run_path("
                                 f"{str(DOCS / 'conf.py')!r}))\n")
    (src / "index.md").write_text(
        "# A page\n\n```{eval-rst}\n.. autofunction:: gradbench.check.threshold\n```\n\n"
        "Good: {func}`gradbench.check.threshold`. Broken: {func}`gradbench.no_such_function`.\n\n"
        "A link to [no page](no-such-page.md).\n")
    res = sphinx_build(src, tmp_path / "out")
    assert res.returncode != 0
    missing = [line for line in res.stderr.splitlines() if "target not found" in line]
    assert len(missing) == 2, res.stderr
    assert "gradbench.no_such_function" in missing[0] + missing[1]
    assert "no-such-page.md" in missing[0] + missing[1]


# ----------------------------------------------------------------------------- the examples


@dataclass
class Example:
    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    code: str
    not_run: str | None  # why it is not run, from the comment above it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The fenced code blocks of a Markdown page (MyST directives, ```{...}, left out)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^(`{3,})(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2), i
        j = i + 1
        while not lines[j].startswith(fence):
            j += 1
        if not lang.startswith("{"):
            before = "\n".join(lines[max(0, start - 4):start])
            why = NOT_RUN.search(before)
            out.append(Example(page, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                               why.group("why") if why else None))
        i = j + 1
    return out


EXAMPLES = [e for page in PAGES for e in examples(page)]
RUN_PAGES = sorted({e.page for e in EXAMPLES if e.lang in ("python", "pycon")})


def commands(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``&&``
    splitting one line into several."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1:]
    return [c for c in out if c]


def test_every_example_is_of_a_known_kind():
    assert len(EXAMPLES) > 30
    for e in EXAMPLES:
        assert e.lang in LANGUAGES, f"{e.where}: a ```{e.lang} block: use one of {LANGUAGES}"
        if e.not_run is not None:
            assert e.lang == "bash", f"{e.where}: only bash blocks may be marked not run"
            assert len(e.not_run) > 10, f"{e.where}: say why it is not run"


def test_the_counts_of_the_examples():
    """How many examples the tests run (printed with -s): the README's and the site's."""
    by = {"python": 0, "pycon": 0, "bash run": 0, "bash not run": 0, "text": 0}
    for e in EXAMPLES:
        key = e.lang if e.lang != "bash" else ("bash not run" if e.not_run else "bash run")
        by[key] += 1
    run = by["python"] + by["pycon"] + by["bash run"]
    print(f"{len(EXAMPLES)} code blocks: {run} run ({by['python']} python executed, "
          f"{by['pycon']} pycon checked by doctest, {by['bash run']} bash run), "
          f"{by['bash not run']} bash not run (their commands checked), {by['text']} text")
    assert run > 0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A scratch folder as a reader's clone would have it after some runs: reports/example/
    (its result files and training records), results/ holding the same files, and
    results/base and results/head, one run of one machine each."""
    root = tmp_path_factory.mktemp("sandbox")
    for folder in ("reports/example", "results"):
        (root / folder).mkdir(parents=True)
        for f in EXAMPLE.glob("*.json"):
            shutil.copy(f, root / folder / f.name)
    for side, name in (("base", "zen5-2core-default-20261123-090501.json"),
                       ("head", "zen5-peers-default-20261123-134538.json")):
        (root / "results" / side).mkdir()
        shutil.copy(EXAMPLE / name, root / "results" / side / name)
    return root


@pytest.mark.parametrize("page", RUN_PAGES, ids=[p.name for p in RUN_PAGES])
def test_the_python_examples_run(page, sandbox, monkeypatch):
    """A page's python blocks executed in order, in one namespace, and its pycon blocks
    checked by doctest in the same namespace (outputs must match)."""
    monkeypatch.chdir(sandbox)
    ns = {"__name__": f"docs_example_{page.stem}"}
    parser = doctest.DocTestParser()
    for e in (e for e in EXAMPLES if e.page == page):
        if e.lang == "python":
            exec(compile(e.code, e.where, "exec"), ns)  # noqa: S102
        elif e.lang == "pycon":
            test = parser.get_doctest(e.code, ns, e.where, str(e.page), e.line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS
                                           | doctest.NORMALIZE_WHITESPACE)
            report = io.StringIO()
            runner.run(test, out=report.write, clear_globs=False)
            assert runner.failures == 0, report.getvalue()


def _shell_examples():
    """The bash blocks to run, each once (the README repeats a page's)."""
    once = {}
    for e in EXAMPLES:
        if e.lang == "bash" and e.not_run is None:
            once.setdefault(e.code, e)
    return list(once.values())


@pytest.mark.slow
@pytest.mark.parametrize("example", _shell_examples(), ids=[e.where for e in _shell_examples()])
def test_the_shell_examples_run(example, sandbox, monkeypatch):
    """Each gradbench command of a bash block run in this process, in the sandbox (its
    globs expanded there, as a shell would): exit status 0."""
    from gradbench.cli import main

    monkeypatch.chdir(sandbox)
    for words in commands(example.code):
        assert words[0] == "gradbench", (f"{example.where}: {words[0]} is not run here: mark "
                                         "the block <!-- not run: why -->")
        args = [m for w in words[1:] for m in (sorted(glob.glob(w)) if "*" in w else [w])]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(args)
        assert status == 0, f"{example.where}: {shlex.join(words)}: exit {status}\n" \
                            f"{out.getvalue()[-2000:]}{err.getvalue()[-2000:]}"


# ------------------------------------------------- the commands of the examples not run

#: Names a not-run example uses for what its text says the reader has made: checkouts of
#: two commits (the gate), a plugin file of one's own.
READERS_OWN = {"./base", "./head", "mine.py"}


def _extras() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
               ["optional-dependencies"])


def _tox_envs() -> set[str]:
    return set(re.findall(r"^\[testenv:([\w-]+)\]", (ROOT / "tox.ini").read_text(), re.M))


def check_pip(args: list[str]) -> None:
    assert args[:1] == ["install"], args
    for a in args[1:]:
        if a.startswith("-"):
            continue
        m = re.fullmatch(r"(?P<what>[^\[@ ]+)(\[(?P<extras>[\w,-]+)\])?", a)
        assert m, a
        for extra in filter(None, (m.group("extras") or "").split(",")):
            assert extra in _extras(), f"no extra [{extra}] in pyproject.toml"
        what = m.group("what")
        if what in (".", "gradbench-fd") or what in READERS_OWN:
            continue
        assert (ROOT / what).exists(), f"pip install {a}: no such path"


def check_command(words: list[str]) -> None:
    """What a command a not-run example shows needs exists: its verb and options, its
    script, file, extra or tox environment."""
    from gradbench.cli import build_parser

    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before a command
        words = words[1:]
    name = words[0].rsplit("/", 1)[-1]
    if name == "gradbench":
        build_parser().parse_args(words[1:])  # raises on an unknown verb or option
    elif name == "bash":
        assert (ROOT / words[1]).is_file(), words[1]
    elif name == "pip":
        check_pip(words[1:])
    elif name == "python" and words[1:3] == ["-m", "pip"]:
        check_pip(words[3:])
    elif name == "python" and words[1:3] == ["-m", "venv"]:
        pass
    elif name == "python":
        assert (ROOT / words[1]).is_file(), words[1]
    elif name == "tox":
        assert words[1] == "-e" and words[2] in _tox_envs(), words
    else:
        raise AssertionError(f"no check for {name!r}: add one to tests/test_docs.py")


_NOT_RUN = [e for e in EXAMPLES if e.lang == "bash" and e.not_run is not None]


@pytest.mark.parametrize("example", _NOT_RUN, ids=[e.where for e in _NOT_RUN])
def test_the_commands_of_the_examples_not_run_exist(example):
    for words in commands(example.code):
        try:
            check_command(words)
        except Exception as exc:  # a UsageError from the parser, an assertion
            raise AssertionError(f"{example.where}: {shlex.join(words)}: {exc}") from exc


def test_the_command_checks_would_catch_a_stale_example():
    from gradbench.cli.common import UsageError

    with pytest.raises(UsageError):
        check_command(["gradbench", "run", "--no-such-option"])
    with pytest.raises(AssertionError):
        check_command(["bash", "scripts/no-such-script"])
    with pytest.raises(AssertionError):
        check_command(["pip", "install", ".[no-such-extra]"])
    with pytest.raises(AssertionError):
        check_command(["tox", "-e", "no-such-env"])


# ----------------------------------------------------------------------------- the README


README = ROOT / "README.md"


def test_the_readme_is_the_door():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    # the two commands, exactly (CI's .ci/run runs the second), and the fast lane
    for command in ("bash scripts/bench", "bash scripts/test", 'bash scripts/test -m "not slow"',
                    "bash scripts/docs"):
        assert command in text, command
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()
    # the headline figure exists, and the name note
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (ROOT / image).is_file(), image
    assert "reports/example/time.png" in text and "gradbench-fd" in text
    # nothing that changes with each commit: no test or job durations
    assert not re.search(r"\d+\s*(min|s)\b[^\n]*(fresh clone|tests? took)", text)
    for link in re.findall(r"\]\((?!https?:)([^)#]+)", text):
        assert (ROOT / link).exists(), link
