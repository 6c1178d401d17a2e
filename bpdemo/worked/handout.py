"""The walk-through as a handout: plain text, and Markdown with LaTeX maths and the network pictures.

walkthrough.txt is the text the command prints. walkthrough.md is the same walk-through for slides
and notes: headings for each step and pass, every equation as display maths ($$ … $$, which GitHub,
Jupyter and pandoc render; pandoc turns the file into Beamer or LaTeX), the pictures linked beside
the passes they show, and the audit as the printed table. `latex` writes one line of the walk-through
in LaTeX: ∂, δ, Σ, ½, · and the names of rules as LaTeX has them. The handout is written once, as
blocks (`handout_blocks`: headings, prose, equations, pictures, tables), which walkthrough.md and
walkthrough.tex (`bpdemo.worked.handout_tex`) each render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bpdemo.worked.result import WorkedResult
from bpdemo.worked.trace import WorkedRun
from bpdemo.worked.walkthrough import Walkthrough

# -- one line of the walk-through in LaTeX ---------------------------------------------------------
SYMBOLS = {
    "·": r" \cdot ",
    "∂": r"\partial ",
    "δ": r"\delta ",
    "σ": r"\sigma ",
    "Σ": r"\sum ",
    "←": r" \leftarrow ",
    "→": r" \to ",
    "−": "-",
    "–": "-",
    "…": r"\ldots ",
    "ŷ": r"\hat{y}",
    "½": r"\tfrac{1}{2}",
    "²": "^{2}",
    "√": r"\sqrt",
    "×": r"\times ",
    "≤": r"\le ",
    "≥": r"\ge ",
    "≈": r"\approx ",
    "±": r"\pm ",
    "%": r"\%",
    "#": r"\#",
    "&": r"\&",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "~": r"\sim ",
    "\\": r"\backslash ",
    "'": "'",
}
_TOKEN = re.compile(
    r"(?P<sum>Σ_(?P<over>\w+))"  # Σ_i, Σ_samples
    r"|(?P<power>\^\((?P<exponent>[^()]*)\))"  # e^(-0.755): the whole exponent raised
    r"|(?P<number_power>\^(?P<number>[-+]?\d[\d.]*(?:e[-+]?\d+)?))"  # e^0.8, e^1e-05: the whole number
    r"|(?P<word>[A-Za-z][A-Za-z]+\w*)"  # a word of two letters or more: upright text
    r"|(?P<char>.)",
    re.DOTALL,
)


def latex(text: str) -> str:
    """One equation of the walk-through as LaTeX maths (without the $ signs)."""
    parts = []
    for match in _TOKEN.finditer(text):
        if match["sum"]:
            over = match["over"]
            parts.append(r"\sum_{" + (over if len(over) == 1 else rf"\text{{{over}}}") + "}")
        elif match["power"]:
            parts.append("^{(" + latex(match["exponent"]) + ")}")
        elif match["number_power"]:
            parts.append("^{" + match["number"] + "}")
        elif match["word"]:
            parts.append(rf"\text{{{match['word']}}}")
        else:
            char = match["char"]
            if char in SYMBOLS:
                parts.append(SYMBOLS[char])
            elif char.isascii():
                parts.append(char)
            else:
                parts.append(rf"\text{{{char}}}")
    return re.sub(r" {2,}", " ", "".join(parts)).strip()


MATH_SIGNS = "∂δσΣ←→−·½²√×≤≥≈±ŷ"  # a word with one of these is maths, even in a sentence
_MATH_WORD = re.compile(rf"[^\s,;]*[{MATH_SIGNS}][^\s,;]*")


def prose(text: str) -> str:
    """A sentence of the walk-through for Markdown: each word that holds maths (δ0, ∂L/∂z0,
    ½·sum((ŷ-y)²)) as inline LaTeX, so that the file needs no unicode maths font."""
    return "".join(f"${part}$" if is_maths else part for part, is_maths in prose_parts(text))


def prose_parts(text: str) -> list[tuple[str, bool]]:
    """`text` cut into its plain words and its maths: (text, False) as it is, (LaTeX, True) for
    each word that holds maths (`MATH_SIGNS`), in order."""
    parts: list[tuple[str, bool]] = []
    start = 0
    for match in _MATH_WORD.finditer(text):
        # Parentheses of the sentence around the word stay outside its maths.
        head, core, tail = "", match[0], ""
        while core.startswith("(") and core.count("(") > core.count(")"):
            head, core = head + "(", core[1:]
        while core.endswith(")") and core.count(")") > core.count("("):
            core, tail = core[:-1], ")" + tail
        parts += [(text[start : match.start()] + head, False), (latex(core), True)]
        start = match.end() - len(tail)
    parts.append((text[start:], False))
    return [(part, is_maths) for part, is_maths in parts if part or is_maths]


def is_equation(line: str) -> bool:
    """Whether a line of a pass is one of its equations (not a heading, an input or a note)."""
    text = line.strip()
    if text.startswith(("layers.", "input ", "(")) or re.match(r"sample \d+: input", text):
        return False
    return "=" in text or "←" in text


# -- the handout's blocks, written once and rendered as Markdown and as LaTeX -----------------------
@dataclass(frozen=True)
class Block:
    """One block of the handout. `kind` says how a renderer writes `text`:

    heading   a heading of `level` 1 (the run), 2 (a step) or 3 (a pass)
    items     a list, its items in `items` (`text` empty)
    prose     a sentence of the walk-through, its maths inline
    label     a sub-heading inside a pass (a layer)
    equation  one equation, as display maths
    picture   the file name of a picture, `caption` its alternative text
    table     a fixed-width table, printed as it is
    """

    kind: str
    text: str
    level: int = 0
    caption: str = ""
    items: tuple[str, ...] = ()


def handout_blocks(result: WorkedResult, pictures: dict[str, str] | None = None) -> list[Block]:
    """The walk-through of `result` as blocks, for `walkthrough_markdown` and
    `bpdemo.worked.handout_tex.walkthrough_tex`.

    `pictures`: phase -> file name of the picture written beside it ("forward" ->
    "network_forward.png"), shown under the heading of the pass it shows.
    """
    pictures = pictures or {}
    blocks = _run_blocks(result.run, pictures)
    if result.standardised is not None:
        blocks += _run_blocks(result.standardised, {})
    if result.audit:
        blocks += [
            Block("heading", "The source's claims, audited", level=2),
            Block("table", result.audit_table()),
        ]
    return blocks


def walkthrough_markdown(result: WorkedResult, pictures: dict[str, str] | None = None) -> str:
    """walkthrough.md: the walk-through of `result` with its equations as LaTeX maths.

    `pictures`: phase -> file name of the picture written beside it ("forward" ->
    "network_forward.png"), linked under the heading of the pass it shows.
    """
    return render_markdown(handout_blocks(result, pictures))


def render_markdown(blocks: list[Block]) -> str:
    """walkthrough.md from the handout's blocks (`handout_blocks`)."""
    return "\n\n".join(_markdown(block) for block in blocks) + "\n"


def _markdown(block: Block) -> str:
    if block.kind == "heading":
        return "#" * block.level + " " + block.text
    if block.kind == "items":
        return "\n".join(f"- {prose(line)}" for line in block.items)
    if block.kind == "prose":
        return prose(block.text)
    if block.kind == "label":
        return f"**{prose(block.text)}**"
    if block.kind == "equation":
        return f"$$ {latex(block.text)} $$"
    if block.kind == "picture":
        return f"![{block.caption}]({block.text})"
    if block.kind == "table":
        return f"```text\n{block.text}\n```"
    raise ValueError(f"unknown block kind {block.kind!r}")


def _run_blocks(run: WorkedRun, pictures: dict[str, str]) -> list[Block]:
    walk = Walkthrough(run)
    title, *header = walk.header()
    blocks = [Block("heading", title, level=1), Block("items", "", items=tuple(header))]
    picture_step = run.example.config.picture.step
    for values in walk.detailed_steps():
        blocks.append(Block("heading", f"Step {values.step}", level=2))
        shown = values.step == picture_step
        if shown and "step" in pictures:
            blocks.append(
                Block("picture", pictures["step"], caption=f"the network at step {values.step}")
            )
        passes = [
            ("Forward pass", "forward", walk.forward(values)),
            ("Loss", None, walk.loss(values)),
            ("Backward pass", "backward", walk.backward(values)),
            ("Update", "update", walk.update(values)),
        ]
        for heading, phase, lines in passes:
            blocks.append(Block("heading", heading, level=3))
            if shown and phase in pictures:
                blocks.append(Block("picture", pictures[phase], caption=heading.lower()))
            blocks += _pass_blocks(lines)
        blocks.append(Block("prose", walk.check(values)))
    if run.steps_run > 1:
        blocks.append(Block("heading", "Losses by step", level=2))
        blocks.append(Block("table", "\n".join(walk.summary())))
    final = walk.final()
    if final:
        blocks.append(Block("heading", "After the last update", level=2))
        blocks.append(Block("items", "", items=tuple(line.strip() for line in final)))
    return blocks


def _pass_blocks(lines: list[str]) -> list[Block]:
    """A pass's lines: its rule as text, sub-headings as labels, each equation as display maths.

    The rule is the first item, which may be printed on several lines (the backward pass's is):
    its lines are one sentence here."""
    rule, *rest = lines
    blocks = [Block("prose", " ".join(line.strip() for line in rule.splitlines()))]
    for line in rest:
        text = line.strip()
        if is_equation(line):
            blocks.append(Block("equation", text))
        elif text.startswith("layers."):
            blocks.append(Block("label", text))
        else:
            blocks.append(Block("prose", text))
    return blocks
