"""The walk-through as a handout: plain text, and Markdown with LaTeX maths and the network pictures.

walkthrough.txt is the text the command prints. walkthrough.md is the same walk-through for slides
and notes: headings for each step and pass, every equation as display maths ($$ … $$, which GitHub,
Jupyter and pandoc render; pandoc turns the file into Beamer or LaTeX), the pictures linked beside
the passes they show, and the audit as the printed table. `latex` writes one line of the walk-through
in LaTeX: ∂, δ, Σ, ½, · and the names of rules as LaTeX has them.
"""

from __future__ import annotations

import re

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

    def inline(match: re.Match) -> str:
        # Parentheses of the sentence around the word stay outside its maths.
        head, core, tail = "", match[0], ""
        while core.startswith("(") and core.count("(") > core.count(")"):
            head, core = head + "(", core[1:]
        while core.endswith(")") and core.count(")") > core.count("("):
            core, tail = core[:-1], ")" + tail
        return f"{head}${latex(core)}${tail}"

    return _MATH_WORD.sub(inline, text)


def is_equation(line: str) -> bool:
    """Whether a line of a pass is one of its equations (not a heading, an input or a note)."""
    text = line.strip()
    if text.startswith(("layers.", "input ", "(")) or re.match(r"sample \d+: input", text):
        return False
    return "=" in text or "←" in text


# -- the Markdown handout --------------------------------------------------------------------------
def walkthrough_markdown(result: WorkedResult, pictures: dict[str, str] | None = None) -> str:
    """walkthrough.md: the walk-through of `result` with its equations as LaTeX maths.

    `pictures`: phase -> file name of the picture written beside it ("forward" ->
    "network_forward.png"), linked under the heading of the pass it shows.
    """
    pictures = pictures or {}
    parts = [_run_markdown(result.run, pictures)]
    if result.standardised is not None:
        parts.append(_run_markdown(result.standardised, {}))
    if result.audit:
        parts.append(
            "## The source's claims, audited\n\n```text\n" + result.audit_table() + "\n```"
        )
    return "\n\n".join(parts) + "\n"


def _run_markdown(run: WorkedRun, pictures: dict[str, str]) -> str:
    walk = Walkthrough(run)
    title, *header = walk.header()
    blocks = [f"# {title}", "\n".join(f"- {prose(line)}" for line in header)]
    steps = run.steps
    detailed = steps if run.steps_run <= 5 else [steps[0], steps[-1]]
    picture_step = run.example.config.picture.step
    for values in detailed:
        blocks.append(f"## Step {values.step}")
        shown = values.step == picture_step
        if shown and "step" in pictures:
            blocks.append(f"![the network at step {values.step}]({pictures['step']})")
        passes = [
            ("Forward pass", "forward", walk.forward(values)),
            ("Loss", None, walk.loss(values)),
            ("Backward pass", "backward", walk.backward(values)),
            ("Update", "update", walk.update(values)),
        ]
        for heading, phase, lines in passes:
            blocks.append(f"### {heading}")
            if shown and phase in pictures:
                blocks.append(f"![{heading.lower()}]({pictures[phase]})")
            blocks += _pass_blocks(lines)
        blocks.append(prose(walk.step(values)[-1]))  # the check against autograd
    if run.steps_run > 1:
        blocks.append("## Losses by step\n\n```text\n" + "\n".join(walk.summary()) + "\n```")
    final = walk.final()
    if final:
        blocks.append(
            "## After the last update\n\n" + "\n".join(f"- {prose(line.strip())}" for line in final)
        )
    return "\n\n".join(blocks)


def _pass_blocks(lines: list[str]) -> list[str]:
    """A pass's lines: its rule as text, sub-headings in bold, each equation as display maths."""
    blocks = []
    rule, *rest = lines
    if rest and rest[0].startswith("  ∂L/∂W = Σ_samples"):  # the backward rule's second line
        rule += " " + rest.pop(0).strip()
    blocks.append(prose(rule))
    for line in rest:
        text = line.strip()
        if is_equation(line):
            blocks.append(f"$$ {latex(text)} $$")
        elif text.startswith("layers."):
            blocks.append(f"**{prose(text)}**")
        else:
            blocks.append(prose(text))
    return blocks
