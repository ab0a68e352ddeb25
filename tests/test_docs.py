"""The documents cannot drift from the tree or the command line.

Every relative link in every Markdown file of the repository points at a file that exists (and, with a
``#anchor``, at one of its headings), and every ``cifar-tfx …`` command that README.md and docs/ show
parses with the real argument parser (built, never run).
"""

import contextlib
import io
import pathlib
import re
import shlex

import pytest

from cifar_tfx.cli import build_parser
from cifar_tfx.cli_common import BadArgumentError
from cifar_tfx.cli_hparams import hparams_from_args

REPO = pathlib.Path(__file__).resolve().parent.parent
SKIPPED_FOLDERS = {"runs", "build", "dist", "node_modules"}
COMMAND_DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
COMMAND_START = re.compile(r"(?:^|[\s(])(?:\S*/)?cifar-tfx(?=\s|$)")
COMMAND_END = re.compile(r"\s(?:#|\||&&|;|>|2>)\s?|\s*$")


def markdown_files():
    for path in sorted(REPO.rglob("*.md")):
        parts = path.relative_to(REPO).parts
        if any(part.startswith(".") or part in SKIPPED_FOLDERS or part.endswith(".egg-info") for part in parts):
            continue
        yield path


def without_code(text):
    """The prose of a Markdown text: fenced blocks and code spans blanked (a link there is an example)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return INLINE_CODE.sub("", text)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    """Every anchor the headings of a Markdown file define (repeats get -1, -2, … as on GitHub)."""
    seen, found = {}, set()
    for line in without_code_blocks(path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def without_code_blocks(text):
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def broken_links(path):
    """``(target, why)`` for each relative link of ``path`` that does not resolve."""
    broken = []
    for target in LINK.findall(without_code(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: …: not ours to check here
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append((target, "no such file"))
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append((target, f"no heading with anchor #{anchor} in {linked.relative_to(REPO)}"))
    return broken


def shown_commands(text):
    """``(command line, whole)`` for each ``cifar-tfx …`` the text shows.

    Code blocks: each logical line (``\\`` continues it) from ``cifar-tfx`` to a comment, pipe or
    redirection; ``whole`` is True. Code spans in prose: ``whole`` is False (a span may name a command
    without its required arguments, e.g. `cifar-tfx data synth`).
    """
    found = []
    for block in FENCE.finditer(text):
        body = re.sub(r"\\\n\s*", " ", block.group(0))
        for line in body.splitlines()[1:-1]:
            found += [(command, True) for command in _commands_in(line)]
    for span in INLINE_CODE.finditer(without_code_blocks(text)):
        found += [(command, False) for command in _commands_in(span.group(2))]
    return found


def _commands_in(line):
    start = COMMAND_START.search(line)
    if not start:
        return []
    rest = line[start.end():]
    masked = re.sub(r"\[[^\[\]]*\]", lambda m: "_" * len(m.group(0)), rest)  # `[A | B]` is not a pipe
    arguments = " ".join(rest[:COMMAND_END.search(masked).start()].split())
    return [arguments] if arguments not in ("", "…", "...") else []  # `cifar-tfx …` names no command


def argv_of(arguments):
    """The argv a reader would type: ``<placeholder>`` and ``…`` become a word, ``[A | B]`` becomes A."""
    arguments = re.sub(r"<[^<>]+>", "PLACEHOLDER", arguments)
    arguments = arguments.replace("…", "PLACEHOLDER")
    arguments = re.sub(r"(?<!\S)\[([^\[\]]*)\]", lambda m: m.group(1).split(" | ")[0], arguments)
    return shlex.split(arguments)


def parse_error(argv, whole=True):
    """What the real parser says about ``argv`` ('' when it parses); ``--help`` counts as parsed.

    A command with hyperparameter options (``run``, ``kubeflow compile``) also has its values read
    and bounds-checked as the command would, before it would run anything.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args = build_parser().parse_args(argv)
        if hasattr(args, "time_budget_minutes"):
            hparams_from_args(args)
    except BadArgumentError as err:
        return str(err)
    except SystemExit as stop:
        said = stderr.getvalue().strip().splitlines()
        if stop.code == 0:
            return ""
        message = said[-1] if said else f"exit {stop.code}"
        if not whole and "the following arguments are required" in message:
            return ""
        return message
    return ""


@pytest.mark.parametrize("path", list(markdown_files()), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("name", COMMAND_DOCS)
def test_every_command_shown_parses(name):
    commands = shown_commands((REPO / name).read_text(encoding="utf-8"))
    failures = [(arguments, parse_error(argv_of(arguments), whole)) for arguments, whole in commands]
    assert [failure for failure in failures if failure[1]] == []


def test_the_readme_shows_commands_of_every_group():
    shown = {argv_of(arguments)[0] for arguments, _ in shown_commands((REPO / "README.md").read_text())}
    assert {"data", "run", "predict", "serving", "kubeflow"} <= shown


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "REPO", tmp_path)
    (tmp_path / "guide.md").write_text("# Set-up: two commands\n\n## Set-up: two commands\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[a](guide.md#set-up-two-commands) [b](guide.md#set-up-two-commands-1) [c](gone.md) "
                    "[d](guide.md#results) [e](https://example.com/x.md) `[f](in-code.md)` [g](#here)\n\n"
                    "## Here\n", encoding="utf-8")
    assert broken_links(page) == [("gone.md", "no such file"),
                                  ("guide.md#results", "no heading with anchor #results in guide.md")]


def test_commands_are_read_across_continuations_and_checked_by_the_parser():
    text = ("Run `cifar-tfx data synth` first; every `cifar-tfx …` command parses.\n\n```\n"
            ".venv/bin/cifar-tfx run --data <folder> \\\n    --time-budget-minutes 30   # the budget\n"
            "cifar-tfx predict cat.png [--version 2 | --label stable] --top-k 3\n"
            "cifar-tfx run --data x --epochs lots\n```\n")
    commands = shown_commands(text)
    assert [arguments for arguments, _ in commands] == [
        "run --data <folder> --time-budget-minutes 30", "predict cat.png [--version 2 | --label stable] --top-k 3",
        "run --data x --epochs lots", "data synth"]
    assert argv_of(commands[1][0]) == ["predict", "cat.png", "--version", "2", "--top-k", "3"]
    verdicts = [parse_error(argv_of(arguments), whole) for arguments, whole in commands]
    assert verdicts[0] == verdicts[1] == verdicts[3] == ""
    assert "--epochs" in verdicts[2]
    assert "required" in parse_error(["data", "synth"])
    assert "epochs must be within" in parse_error(["run", "--data", "x", "--epochs", "1e12"])  # as `run` checks it
