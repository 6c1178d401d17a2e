"""`make docs`: rerun every command whose output or figure the pages show, and paste the results in.

A page marks what a command prints like this (the output goes between the two markers, in a text
block, replacing what was there):

    <!-- run: python -m demos.worked_example --config configs/worked_321.toml | head 12 -->
    <!-- end run -->

The command runs from the project folder with this Python, its output folder set to
`runs/docs/<name>` (`--out` and `--force` are added; `<name>` comes from the command). After a `|`,
options shape the output: `head N`, `tail N`, `lines A-B` (1-based, inclusive), `drop REGEX` (leave
out the lines that match), `figure FILE=NAME` (copy FILE of the run folder to `docs/figures/NAME`),
`no output` (run it for its figures only; nothing is pasted). Options are separated by `;`. A
command that appears in several markers runs once. Running this twice changes nothing but timings.

    python docs/build.py [PAGE ...]      # every page of docs/ and README.md, or only those named
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
MARKER = re.compile(
    r"(?P<open><!-- run: (?P<spec>.*?) -->\n)(?P<body>.*?)(?P<close><!-- end run -->)", re.DOTALL
)


@dataclass
class Block:
    """One marked command: what to run, how to shape its output, which figures to copy."""

    command: str
    head: int | None = None
    tail: int | None = None
    lines: tuple[int, int] | None = None
    drop: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)
    output: bool = True

    @classmethod
    def parse(cls, spec: str) -> Block:
        command, _, options = spec.partition(" | ")
        block = cls(command.strip())
        for option in filter(None, (part.strip() for part in options.split(";"))):
            word, _, value = option.partition(" ")
            if word == "head":
                block.head = int(value)
            elif word == "tail":
                block.tail = int(value)
            elif word == "lines":
                first, last = value.split("-")
                block.lines = (int(first), int(last))
            elif word == "drop":
                block.drop.append(value)
            elif word == "figure":
                source, target = value.split("=")
                block.figures[source.strip()] = target.strip()
            elif option == "no output":
                block.output = False
            else:
                raise SystemExit(f"docs: unknown option {option!r} in <!-- run: {spec} -->")
        return block

    @property
    def name(self) -> str:
        """The run folder's name: the command's words that say what it runs, joined."""
        words = [w for w in shlex.split(self.command) if not w.startswith("-") and w != "python"]
        words = [Path(w).stem if w.endswith(".toml") else w.split(".")[-1] for w in words]
        return "_".join(dict.fromkeys(re.sub(r"\W+", "_", w) for w in words if w))

    def shape(self, text: str) -> str:
        lines = text.splitlines()
        lines = [line for line in lines if not any(re.search(p, line) for p in self.drop)]
        if self.lines is not None:
            lines = lines[self.lines[0] - 1 : self.lines[1]]
        if self.head is not None:
            lines = lines[: self.head]
        if self.tail is not None:
            lines = lines[-self.tail :]
        return "\n".join(line.rstrip() for line in lines)


def run(block: Block, cache: dict[str, str]) -> str:
    """The command's printed output (stdout, then stderr), run once per command."""
    if block.command in cache:
        return cache[block.command]
    words = shlex.split(block.command)
    if words[0] != "python":
        raise SystemExit(f"docs: a marked command starts with python: {block.command!r}")
    out = Path("runs") / "docs" / block.name
    argv = [sys.executable, *words[1:], "--out", str(out), "--force"]
    environment = {**os.environ, "COLUMNS": "100", "PYTHONHASHSEED": "0"}
    print(f"docs: {block.command}", file=sys.stderr, flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=environment)
    text = done.stdout + done.stderr
    if done.returncode not in (0, 1):  # 1: a run that reports a fault (a diverged example) is shown
        raise SystemExit(f"docs: {block.command!r} failed ({done.returncode}):\n{text}")
    cache[block.command] = text
    return text


def build(page: Path, cache: dict[str, str]) -> bool:
    """Rerun the page's marked commands and paste their output in; True if the page changed."""
    original = page.read_text(encoding="utf-8")

    def replace(match: re.Match) -> str:
        block = Block.parse(match["spec"])
        text = run(block, cache)
        for source, target in block.figures.items():
            made = ROOT / "runs" / "docs" / block.name / source
            if not made.is_file():
                raise SystemExit(f"docs: {block.command!r} wrote no {source}")
            shutil.copyfile(made, FIGURES / target)
        body = f"```text\n{block.shape(text)}\n```\n" if block.output else ""
        return match["open"] + body + match["close"]

    updated = MARKER.sub(replace, original)
    if updated != original:
        page.write_text(updated, encoding="utf-8")
    return updated != original


def main(names: list[str]) -> int:
    pages = [Path(name).resolve() for name in names] or [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]
    FIGURES.mkdir(parents=True, exist_ok=True)
    cache: dict[str, str] = {}
    for page in pages:
        changed = build(page, cache)
        print(f"docs: {page.relative_to(ROOT)}: {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
