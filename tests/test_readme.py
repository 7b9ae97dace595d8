"""The README's commands and the outputs it shows are what the tool does today.

- The set-up commands are the ones CI runs, and every command written in a code block parses with
  today's options and is written as a newcomer can paste it (``.venv/bin/...``).
- A code block that the README introduces with ``<!-- shown: backprop-oracle ARGS -->`` is that
  command's output: the command is run and its output compared line by line. Numbers at the level
  of rounding (below 1e-9: the max |Δ| columns) may differ between machines and BLAS builds and
  only have to stay at that level; so may the worst element of a tensor that is ``ok``.
"""
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from backprop_oracle.compare.cli import main
from backprop_oracle.compare.cli.main import build_parser
from tests.test_mutations import MUTATIONS

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "examples" / "student_layer" / "README.md",
        ROOT / "examples" / "student_adam" / "README.md"]
ROUNDING = 1e-9
BARE = ("backprop-oracle", "tensorboard", "torchrun", "python", "pytest", "pip")


def code_blocks(path):
    """[(the line before the block, [lines])] of every fenced block in a Markdown file."""
    blocks, lines, inside, before, prev = [], None, False, "", ""
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            if inside:
                blocks.append((before, lines))
            else:
                lines, before = [], prev
            inside = not inside
        elif inside:
            lines.append(line)
        elif line.strip():
            prev = line
    return blocks


def commands(lines):
    """The command lines of a block, continuations joined and comments dropped."""
    out, current = [], ""
    for line in lines:
        if not current and line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            out.append(re.sub(r"\s+#\s.*$", "", current).strip())
            current = ""
    return [c for c in out if c]


def test_the_set_up_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    bash = [commands(lines) for before, lines in code_blocks(ROOT / "README.md")[:2]]
    assert bash[1] == [ci], f"README's test command {bash[1]} is not what .ci/run runs: {ci}"
    assert bash[0][0].startswith("python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e . &&")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_a_code_block_parses_and_can_be_pasted(doc):
    parser = build_parser()
    for before, lines in code_blocks(doc):
        for cmd in commands(lines):
            for part in cmd.split("&&"):
                if not part.split() or part.split()[0] not in (*BARE, ".venv/bin/backprop-oracle"):
                    continue          # not a command line (a table, a folder layout, printed output)
                words = shlex.split(part.strip(), comments=True)
                tool = words[0]
                assert tool not in BARE, (
                    f"{doc.name}: `{part.strip()}` is written bare; a newcomer who followed the set-up has "
                    f"it as .venv/bin/{tool}")
                if tool == ".venv/bin/backprop-oracle":
                    try:
                        parser.parse_args(words[1:])
                    except SystemExit as e:
                        if e.code not in (0, None):          # 0: --help
                                pytest.fail(f"{doc.name}: `{part.strip()}` does not parse with today's options")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_in_the_prose_can_be_pasted_too(doc):
    bare = re.findall(r"`((?:tensorboard|torchrun|python|pytest|pip) [^`]*)`", doc.read_text())
    assert not bare, f"{doc.name}: written bare (a newcomer has them as .venv/bin/...): {bare}"


def cells(line):
    return re.split(r"\s{2,}", line.strip())


def is_rounding(a, b):
    try:
        return abs(float(a)) < ROUNDING and abs(float(b)) < ROUNDING
    except ValueError:
        return False


def assert_shown(shown, actual, what):
    """``shown`` (the README's lines) against ``actual`` (what the command printed today)."""
    actual = [line for line in actual]
    i = 0
    for n, line in enumerate(shown):
        if line.strip() in ("...", "…"):
            # skip to the next shown line
            following = shown[n + 1] if n + 1 < len(shown) else None
            while i < len(actual) and following is not None and cells(actual[i]) != cells(following) \
                    and not (set(following.strip()) <= {"-", " "}):
                i += 1
            continue
        assert i < len(actual), f"{what}: the README shows {line!r} where the output has ended"
        got = actual[i]
        i += 1
        if line.strip() and set(line.strip()) <= {"-", " "}:
            assert got.strip() and set(got.strip()) <= {"-", " "}, f"{what}: README {line!r}, printed {got!r}"
            continue
        a, b = cells(line), cells(got)
        if a != b and len(a) == len(b) and b[-1] == "ok" and a[-1] == "ok":
            a, b = a[:2], b[:2]      # a tensor that is ok: its worst element may be another one
        if a != b and len(a) == len(b):
            a = [x if not is_rounding(x, y) else "~0" for x, y in zip(a, b)]
            b = [y if not is_rounding(x, y) else "~0" for x, y in zip(cells(line), b)]
        assert a == b, f"{what}: the README shows\n  {line!r}\nbut it prints\n  {got!r}"


def shown_blocks(doc):
    """[(command words, shown lines)] of the blocks introduced by <!-- shown: ... -->."""
    out = []
    for before, lines in code_blocks(doc):
        m = re.fullmatch(r"<!-- shown: (.*?)(?: \(with (.*)\))? -->", before.strip())
        if m:
            out.append((m.group(1), m.group(2), lines))
    return out


SHOWN = [(doc, cmd, mistake, lines) for doc in DOCS for cmd, mistake, lines in shown_blocks(doc)]


def test_the_readme_shows_outputs_to_check():
    assert len(SHOWN) >= 4, [s[1] for s in SHOWN]


@pytest.mark.parametrize("doc,cmd,mistake,lines", SHOWN, ids=[f"{s[0].parent.name}:{s[1]}" for s in SHOWN])
def test_a_shown_output_is_what_the_command_prints(doc, cmd, mistake, lines, capsys, monkeypatch, tmp_path):
    words = shlex.split(cmd)
    monkeypatch.chdir(tmp_path)
    if mistake:
        m = MUTATIONS[mistake]
        monkeypatch.setattr(m.target, m.method, m.body)
    if words[0] == "backprop-oracle":
        main(words[1:])
        out = capsys.readouterr().out.splitlines()
    else:                                  # python FILE: an example script, run as a user runs it
        proc = subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)
        out = (proc.stdout + proc.stderr).splitlines()
    start = next((k for k, line in enumerate(out) if cells(line) == cells(lines[0])
                  or (lines[0].strip() not in ("...", "…") and cells(line)[:1] == cells(lines[0])[:1])), None)
    assert start is not None, f"{cmd}: the README's first line {lines[0]!r} is not in the output:\n" + "\n".join(out)
    assert_shown(lines, out[start:], f"{doc.name}, `{cmd}`")
