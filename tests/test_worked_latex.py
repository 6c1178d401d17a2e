"""walkthrough.tex, the handout as a LaTeX article: it compiles with pdflatex for every worked
example (the pictures included, an SVG one left out with a comment), it is plain ASCII, and its
equations hold the 3-2-1 example's numbers as they are by hand."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from demos.worked_example import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
WORKED = sorted(path.stem for path in CONFIGS.glob("worked_*.toml"))
needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="needs pdflatex (Debian package texlive-latex-base)"
)


def written(tmp_path: Path, config: str, *flags: str) -> Path:
    out = tmp_path / config
    argv = ["--config", str(CONFIGS / f"{config}.toml"), "--out", str(out), "--quiet", *flags]
    assert main(argv) == 0
    return out


def compile_tex(folder: Path) -> str:
    """pdflatex on walkthrough.tex in `folder`, as a reader runs it; the log."""
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "walkthrough.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (folder / "walkthrough.log").read_text(encoding="latin-1")
    assert done.returncode == 0, log[-3000:]
    assert (folder / "walkthrough.pdf").read_bytes().startswith(b"%PDF")
    return log


def display_maths(tex: str) -> list[str]:
    """Every display equation of `tex` on one line: an aligned one's rows joined, & and \\\\ dropped."""
    found = []
    for body in re.findall(r"\\\[(.*?)\\\]", tex, re.DOTALL):
        body = re.sub(r"\\(begin|end)\{aligned\}|&|\\\\", " ", body)
        found.append(" ".join(body.split()))
    return found


@needs_pdflatex
@pytest.mark.parametrize("config", WORKED)
def test_the_latex_handout_of_every_worked_example_compiles_with_its_pictures(tmp_path, config):
    out = written(tmp_path, config, "--steps", "2")
    tex = (out / "walkthrough.tex").read_text(encoding="utf-8")
    assert tex.isascii()  # every other character written as a LaTeX command
    assert tex.startswith("\\documentclass{article}")
    pictures = re.findall(r"\\includegraphics\[[^\]]*\]\{([^}]+)\}", tex)
    assert pictures and all((out / picture).is_file() for picture in pictures)
    log = compile_tex(out)
    assert "Overfull \\hbox" not in log  # every equation and table fits the page's width


@needs_pdflatex
def test_svg_pictures_are_left_out_with_a_comment_naming_them(tmp_path):
    out = written(tmp_path, "worked_textbook", "--format", "svg")
    tex = (out / "walkthrough.tex").read_text(encoding="utf-8")
    assert "\\includegraphics" not in tex
    for name in ("network.svg", "network_forward.svg", "network_backward.svg"):
        assert re.search(rf"^% {name}: pdflatex cannot include it; convert it", tex, re.M)
        assert (out / name).is_file()
    compile_tex(out)


@needs_pdflatex
def test_pdf_pictures_are_included_as_they_are(tmp_path):
    out = written(tmp_path, "worked_textbook", "--format", "pdf")
    tex = (out / "walkthrough.tex").read_text(encoding="utf-8")
    pictures = re.findall(r"\\includegraphics\[[^\]]*\]\{([^}]+)\}", tex)
    assert pictures == [
        "network.pdf",
        "network_forward.pdf",
        "network_backward.pdf",
        "network_update.pdf",
    ]
    compile_tex(out)


@needs_pdflatex
def test_a_title_with_latex_specials_and_unicode_compiles_as_ascii(tmp_path):
    title = "Rückwärts — 50% of $x_1 & y^2 {ß} ~α≤β, ✓ ﬁne -- Ωmega \\ <ok>|"
    out = written(tmp_path, "worked_321", "--set", f"title={title}")
    tex = (out / "walkthrough.tex").read_text(encoding="utf-8")
    assert tex.isascii()
    heading = re.search(r"\\section\*\{(.*)\}\n", tex)[1]
    assert heading.startswith(r"R\"{u}ckw\"{a}rts --- 50\% of \$x\_1 \& y\^{}2 \{\ss{}\}")
    assert r"\ensuremath{\alpha}\ensuremath{\le}\ensuremath{\beta}" in heading
    assert r"\texttt{[U+2713]} fine -{}- \ensuremath{\Omega}mega \textbackslash{}" in heading
    compile_tex(out)


def test_the_latex_handout_is_written_and_listed_beside_the_markdown(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--config", str(CONFIGS / "worked_321.toml"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert (
        f"walkthrough.txt, walkthrough.md and walkthrough.tex to {out}" in printed.out + printed.err
    )
    manifest = json.loads((out / ".bpdemo-run.json").read_text(encoding="utf-8"))
    assert manifest["files"][-3:] == ["walkthrough.txt", "walkthrough.md", "walkthrough.tex"]


def test_the_latex_equations_hold_the_3_2_1_numbers_by_hand(tmp_path):
    out = written(tmp_path, "worked_321")
    found = display_maths((out / "walkthrough.tex").read_text(encoding="utf-8"))
    # By hand: z1 = 0.3·0.9 + 0.3·0.9 + 0.1 = 0.64, L = ½(0.64 − 4)² = 5.6448, δ1 = 0.64 − 4,
    # b1 ← 0.1 − 0.1·δ1 = 0.436; three z, a loss, three ∂L/∂a, three δ, eleven gradients, eleven updates.
    z1, delta1 = 0.3 * 0.9 + 0.3 * 0.9 + 0.1, 0.64 - 4
    assert len(found) == 3 + 1 + 3 + 3 + 11 + 11
    forward = [m for m in found if m.startswith("z1[0] =")]
    assert forward == [
        rf"z1[0] = \sum_{{i}} W1[0,i] \cdot a0[i] + b1[0] = 0.3 \cdot 0.9 + 0.3 \cdot 0.9 + 0.1 "
        rf"= {z1:g} a = z = {z1:g}"
    ]
    assert rf"L = \tfrac{{1}}{{2}} \cdot ((0.64 - 4)^{{2}}) = {0.5 * delta1**2:g}" in found
    assert rf"b1[0] \leftarrow 0.1 - 0.1 \cdot ({delta1:g}) = {0.1 - 0.1 * delta1:g}" in found
