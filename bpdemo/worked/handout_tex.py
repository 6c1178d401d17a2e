"""walkthrough.tex: the handout's blocks (`bpdemo.worked.handout.handout_blocks`) as a LaTeX article.

The document compiles with pdflatex and the packages of a minimal TeX installation (Debian's
texlive-latex-base). Every character outside ASCII is written as a LaTeX command here (`text_char`),
so that the file is plain ASCII and needs no unicode font: maths signs as maths, accented letters
with accent commands, Greek letters as maths, anything else as its code point, [U+2713]. Equations
are display maths; the pictures are included when pdflatex can read them (PNG, PDF); an SVG one is
left out with a comment naming the file to convert; tables are set in a fixed-width font, each
character, converted or not, one column wide, so that their columns stay aligned.
"""

from __future__ import annotations

import re
import unicodedata

from bpdemo.worked.handout import SYMBOLS, Block, handout_blocks, latex, prose_parts
from bpdemo.worked.result import WorkedResult

PREAMBLE = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\usepackage{amsmath}
\usepackage{graphicx}
\usepackage{alltt}
\usepackage[margin=2cm]{geometry}
% One column of a fixed-width table for each character, also one written as a command.
\newcommand{\onechar}[1]{\makebox[\fontcharwd\font`x]{#1}}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5\baselineskip}
\begin{document}
"""
SECTIONS = {1: "section", 2: "subsection", 3: "subsubsection"}
INCLUDABLE = (".png", ".pdf", ".jpg", ".jpeg")  # what pdflatex's \includegraphics reads

# ASCII that LaTeX text mode treats as a command (or, in the default OT1 encoding, prints as
# another glyph: < > |).
TEXT_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\^{}",
    "~": r"\~{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
TEXT_CHARS = {  # characters outside ASCII that LaTeX writes with ASCII in text
    "—": "---",
    "–": "--",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "…": r"\ldots{}",
    "\u00a0": "~",
    "ß": r"\ss{}",
    "æ": r"\ae{}",
    "Æ": r"\AE{}",
    "œ": r"\oe{}",
    "Œ": r"\OE{}",
    "ø": r"\o{}",
    "Ø": r"\O{}",
    "ł": r"\l{}",
    "Ł": r"\L{}",
    "ı": r"\i{}",
    "§": r"\S{}",
    "¶": r"\P{}",
    "©": r"\copyright{}",
    "£": r"\pounds{}",
    "¡": "!`",
    "¿": "?`",
    "√": r"\ensuremath{\surd}",
}
MATH_CHARS = {  # maths signs the walk-through's equations (`SYMBOLS`) do not use
    "∞": r"\infty",
    "≠": r"\neq",
    "∈": r"\in",
    "∇": r"\nabla",
    "⊙": r"\odot",
    "∘": r"\circ",
    "⋅": r"\cdot",
    "°": r"^{\circ}",
    "′": r"'",
    "µ": r"\mu",
}
ACCENTS = {  # combining mark -> LaTeX's accent command
    "\u0300": "`",
    "\u0301": "'",
    "\u0302": "^",
    "\u0303": "~",
    "\u0304": "=",
    "\u0306": "u",
    "\u0307": ".",
    "\u0308": '"',
    "\u030a": "r",
    "\u030b": "H",
    "\u030c": "v",
    "\u0327": "c",
    "\u0328": "k",
}
GREEK_CAPITALS = {
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Pi",
    "Sigma",
    "Upsilon",
    "Phi",
    "Psi",
    "Omega",
}
GREEK_AS_LATIN = dict(
    alpha="A", beta="B", epsilon="E", zeta="Z", eta="H", iota="I", kappa="K", mu="M", nu="N",
    omicron="O", rho="P", tau="T", chi="X",
)  # fmt: skip


def text_char(char: str) -> str:
    """One character as LaTeX for text mode: ASCII as it is (its specials escaped), every other
    character as ASCII commands."""
    if char.isascii():
        return TEXT_SPECIALS.get(char, char)
    if char in TEXT_CHARS:
        return TEXT_CHARS[char]
    maths = MATH_CHARS.get(char) or SYMBOLS.get(char, "").strip() or _greek(char)
    if maths:
        return rf"\ensuremath{{{maths}}}"
    base, *marks = unicodedata.normalize("NFD", char)
    if marks and base.isascii() and base.isalpha() and all(mark in ACCENTS for mark in marks):
        letter = {"i": r"\i", "j": r"\j"}.get(base, base)
        for mark in marks:
            letter = rf"\{ACCENTS[mark]}{{{letter}}}"
        return letter
    compatible = unicodedata.normalize("NFKC", char)  # ﬁ -> fi, ³ -> 3, full-width A -> A
    if compatible.isascii() and compatible.isprintable():
        name = unicodedata.name(char, "")
        escaped = "".join(TEXT_SPECIALS.get(c, c) for c in compatible)
        if "SUPERSCRIPT" in name:
            return rf"\ensuremath{{^{{{escaped}}}}}"
        if "SUBSCRIPT" in name:
            return rf"\ensuremath{{_{{{escaped}}}}}"
        return escaped
    return rf"\texttt{{[U+{ord(char):04X}]}}"


def _greek(char: str) -> str:
    """A Greek letter as LaTeX maths (α -> \\alpha, Ω -> \\Omega, Α -> A); "" for another character."""
    name = unicodedata.name(char, "")
    if (
        not name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER "))
        or len(name.split()) != 4
    ):
        return ""
    letter = name.split()[-1].lower()
    if name.startswith("GREEK SMALL"):
        return "o" if letter == "omicron" else "\\" + letter
    if letter.capitalize() in GREEK_CAPITALS:
        return "\\" + letter.capitalize()
    return GREEK_AS_LATIN.get(letter, "")


def text(words: str) -> str:
    """Plain text as LaTeX text: specials escaped, no character outside ASCII."""
    # "--" stays two hyphens (an option, a sign), not the en dash LaTeX makes of it.
    return "".join(
        "-{}" if char == "-" and words[i + 1 : i + 2] == "-" else text_char(char)
        for i, char in enumerate(words)
    )


def maths(equation: str) -> str:
    """One equation of the walk-through as LaTeX maths (`latex`), no character outside ASCII; its
    notes apart from its numbers, as the printed line has them: "= 0.04 \\quad [f'(z) = …]",
    "= -3.36 \\quad (\\text{BP1})" (maths drops the spaces of the text)."""
    formula = _ascii(latex(equation)).replace(" [", r" \quad [")
    return re.sub(r" (\(\\text\{[^{}]*\}\))$", r" \\quad \1", formula)


def _ascii(formula: str) -> str:
    """LaTeX maths with what `latex` leaves in unicode (a letter of a word, in its \\text{})
    written as text commands, in a \\text{} of their own: an accent command is no maths."""
    return "".join(char if char.isascii() else rf"\text{{{text_char(char)}}}" for char in formula)


LINE = 80  # characters of an equation that fit the page's width, in its text


def display(equation: str) -> str:
    """One equation as display maths; a long one broken before each "=", its "="s aligned, so
    that it stays inside the page (pdflatex breaks no line of display maths)."""
    formula = maths(equation)
    if len(equation) <= LINE:
        return rf"\[ {formula} \]"
    rows = []
    for clause in _top_level_split(formula, "; "):
        first, *rest = _top_level_split(clause, " = ")
        rows += [f"{first} &= {rest[0]}" if rest else first] + [f"&= {part}" for part in rest[1:]]
    return "\\[ \\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned} \\]"


def _top_level_split(formula: str, separator: str) -> list[str]:
    """`formula` cut at each `separator` outside braces, parentheses and brackets (escaped ones
    not counted): f'(z) = a(1 - a) in "= 0.04 [f'(z) = a(1 - a) = 0.21]" stays on its row."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(formula):
        char = formula[i]
        if char == "\\":
            i += 2  # \{ \} \( are characters, not groups
            continue
        depth += (char in "{([") - (char in "})]")
        if depth == 0 and formula.startswith(separator, i):
            parts.append(formula[start:i])
            start = i = i + len(separator)
            continue
        i += 1
    return [*parts, formula[start:]]


def sentence(words: str) -> str:
    """A sentence of the walk-through: its words as text, the words that hold maths as inline maths."""
    return "".join(
        rf"\({_ascii(part)}\)" if is_maths else text(part) for part, is_maths in prose_parts(words)
    )


def table(lines: str) -> str:
    """A fixed-width table as the lines of an alltt block: \\, { and } escaped (alltt keeps every
    other character as it is), each other character written as a command one column wide."""
    escaped = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}"}
    dashes = {"–": "-", "—": "-"}  # "--" would squeeze two hyphens into the one column
    return "".join(
        escaped.get(char, char)
        if char.isascii()
        else rf"\onechar{{{dashes.get(char) or text_char(char)}}}"
        for char in lines
    )


def walkthrough_tex(result: WorkedResult, pictures: dict[str, str] | None = None) -> str:
    """walkthrough.tex: the walk-through of `result` as a LaTeX article, for pdflatex.

    `pictures`: phase -> file name of the picture written beside it ("forward" ->
    "network_forward.png"), included under the heading of the pass it shows.
    """
    return render_tex(handout_blocks(result, pictures))


def render_tex(blocks: list[Block]) -> str:
    """walkthrough.tex from the handout's blocks (`bpdemo.worked.handout.handout_blocks`)."""
    body = "\n\n".join(_tex(block) for block in blocks)
    return PREAMBLE + "\n" + body + "\n\n\\end{document}\n"


def _tex(block: Block) -> str:
    if block.kind == "heading":
        return rf"\{SECTIONS[block.level]}*{{{text(block.text)}}}"
    if block.kind == "items":
        # \item{}: a line that starts with "[" is no label of the item.
        items = "\n".join(rf"  \item{{}} {sentence(line)}" for line in block.items)
        return "\\begin{itemize}\n" + items + "\n\\end{itemize}"
    if block.kind == "prose":
        return sentence(block.text)
    if block.kind == "label":
        return rf"\textbf{{{sentence(block.text)}}}"
    if block.kind == "equation":
        return display(block.text)
    if block.kind == "picture":
        name = block.text
        if not name.lower().endswith(INCLUDABLE):
            # pdflatex reads no SVG: the comment names the file, for the reader to convert.
            return f"% {name}: pdflatex cannot include it; convert it to PDF or PNG to show it here"
        return (
            "\\begin{center}\n"
            rf"\includegraphics[width=\linewidth,height=0.45\textheight,keepaspectratio]{{{name}}}"
            "\n\\end{center}"
        )
    if block.kind == "table":
        return "{\\footnotesize\n\\begin{alltt}\n" + table(block.text) + "\n\\end{alltt}\n}"
    raise ValueError(f"unknown block kind {block.kind!r}")
