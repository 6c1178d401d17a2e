"""The handout a worked run writes to --out: walkthrough.txt, walkthrough.md (LaTeX maths that a
Markdown library renders, every equation found), and pictures for slides: SVG text as <text>, PDF
fonts embedded as TrueType (Type 42), one canvas size for every phase of an example.
walkthrough.tex, the same blocks as a LaTeX article, is tests/test_worked_latex.py's."""

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from PIL import Image

from bpdemo.infra.outputs import RunDir
from bpdemo.worked import PHASES, run, walkthrough_markdown, write_outputs
from bpdemo.worked.handout import Block, handout_blocks
from demos.worked_example import main

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PHASE_FILES = ["network", "network_forward", "network_backward", "network_update"]


def written(tmp_path: Path, config: str, form: str = "png") -> Path:
    out = tmp_path / f"{config}_{form}"
    argv = ["--config", str(CONFIGS / f"{config}.toml"), "--out", str(out), "--quiet"]
    assert main([*argv, "--format", form]) == 0
    return out


def maths(markdown: str, kind: str = "math_block") -> list[str]:
    """The LaTeX of every display formula (or, with kind "math_inline", inline formula), as a
    Markdown renderer finds them."""
    tokens = MarkdownIt("commonmark").use(dollarmath_plugin).parse(markdown)
    found = []
    for token in tokens:
        for node in [token, *(token.children or [])]:
            if node.type == kind:
                found.append(node.content.strip())
    return found


def prose_of(markdown: str) -> str:
    """What a renderer shows as text: every inline child that is neither maths nor code."""
    tokens = MarkdownIt("commonmark").use(dollarmath_plugin).parse(markdown)
    return " ".join(
        child.content for token in tokens for child in token.children or [] if child.type == "text"
    )


def test_the_text_handout_is_the_printed_walkthrough(tmp_path):
    out = written(tmp_path, "worked_321")
    assert (out / "walkthrough.txt").read_text(encoding="utf-8") == run(
        CONFIGS / "worked_321.toml"
    ).text() + "\n"


def test_write_outputs_from_python_writes_the_handout_the_command_writes(tmp_path):
    # The command hands write_outputs the text it printed; from Python, write_outputs makes it.
    command = written(tmp_path, "worked_321")
    result = run(CONFIGS / "worked_321.toml")
    folder = RunDir.prepare(tmp_path / "python", "worked_example")
    try:
        write_outputs(folder, result.run.example.config, result)
    finally:
        folder.close()
    for name in ("walkthrough.txt", "walkthrough.md", "walkthrough.tex"):
        assert (folder.path / name).read_bytes() == (command / name).read_bytes(), name
    assert (folder.path / "walkthrough.md").read_text(encoding="utf-8") == walkthrough_markdown(
        result, {phase: f"{name}.png" for phase, name in zip(PHASES, PHASE_FILES, strict=True)}
    )


@pytest.mark.parametrize("steps", [5, 8])
def test_the_handout_writes_out_the_steps_the_printed_text_does(steps):
    result = run(CONFIGS / "worked_321.toml", [f"train.steps={steps}"])
    printed = [int(n) for n in re.findall(r"^── step (\d+) ", result.text(), re.MULTILINE)]
    headed = [
        int(block.text.removeprefix("Step "))
        for block in handout_blocks(result)
        if block.kind == "heading" and block.text.startswith("Step ")
    ]
    assert headed == printed == (list(range(1, 6)) if steps == 5 else [1, 8])


@pytest.mark.parametrize("config", ["worked_321", "worked_textbook"])  # with and without biases
def test_the_backward_rule_printed_on_two_lines_is_one_sentence_of_the_handout(config):
    result = run(CONFIGS / f"{config}.toml")
    printed = result.text().splitlines()
    first = next(i for i, line in enumerate(printed) if line.startswith("backward pass"))
    second = printed[first + 1].strip()  # ∂L/∂W = Σ_samples δ·a_prev (BP4), ...
    blocks = handout_blocks(result)
    rules = [block for block in blocks if block.text.startswith("backward pass")]
    assert rules and all(block == Block("prose", f"{printed[first]} {second}") for block in rules)
    assert not any(block.text == second for block in blocks)


def test_the_markdown_handout_renders_with_every_equation(tmp_path):
    out = written(tmp_path, "worked_321")
    markdown = (out / "walkthrough.md").read_text(encoding="utf-8")
    found = maths(markdown)
    # The 3-2-1 example by hand: z0 = 0.5·1 + 0.1·2 + 0·3 + 0.2 = 0.9 (both hidden neurons),
    # z1 = 0.3·0.9 + 0.3·0.9 + 0.1 = 0.64, L = ½(0.64 − 4)² = 5.6448, δ1 = −3.36, δ0 = 0.3·δ1.
    delta1, delta0 = 0.64 - 4, 0.3 * (0.64 - 4)
    grads = {
        "W1[0,0]": delta1 * 0.9, "W1[0,1]": delta1 * 0.9, "b1[0]": delta1,
        **{f"W0[{j},{i}]": delta0 * x for j in range(2) for i, x in enumerate([1, 2, 3])},
        "b0[0]": delta0, "b0[1]": delta0,
    }  # fmt: skip
    before = {"W1[0,0]": 0.3, "W1[0,1]": 0.3, "b1[0]": 0.1, "b0[0]": 0.2, "b0[1]": 0.2}
    before |= {f"W0[{j},{i}]": w for j in range(2) for i, w in enumerate([0.5, 0.1, 0.0])}
    equations = 3 + 1 + 3 + 3 + len(grads) + len(grads)  # z, L, ∂L/∂a, δ, gradients, updates
    assert len(found) == equations
    assert sum("= 0.9;" in m for m in found if m.startswith("z0")) == 2
    assert sum("= 0.64;" in m for m in found if m.startswith("z1")) == 1
    assert any(m.startswith("L =") and m.endswith("= 5.6448") for m in found)
    for name, grad in grads.items():
        update = [m for m in found if m.startswith(name) and r"\leftarrow" in m]
        assert len(update) == 1, name
        assert update[0].endswith(f"= {before[name] - 0.1 * grad:.6g}"), update[0]
        gradient = [m for m in found if m.startswith(rf"\partial L/\partial {name}")]
        assert len(gradient) == 1 and f"= {grad:.6g}" in gradient[0], name
    for formula in found:  # LaTeX, not unicode: ∂, δ, ·, ←, − and ½ are commands or ASCII
        assert formula.isascii(), formula
        assert formula.count("{") == formula.count("}")
    for picture in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (out / picture).is_file()
    # The sentences keep their maths as inline LaTeX too: no ∂, δ, ½ or · as unicode outside code.
    inline = maths(markdown, "math_inline")
    assert r"\partial L/\partial z" in inline and all(formula.isascii() for formula in inline)
    assert not set("∂δΣ←−·½²ŷ") & set(prose_of(markdown))
    html = MarkdownIt("commonmark").use(dollarmath_plugin).render(markdown)
    assert html.count('class="math block"') == equations


def test_svg_pictures_keep_their_text_as_text(tmp_path):
    out = written(tmp_path, "worked_textbook", "svg")
    svg = (out / "network_forward.svg").read_text(encoding="utf-8")
    texts = re.findall(r"<text[^>]*>([^<]*)", svg)
    assert any(text.startswith("w35 = 0.3") for text in texts)
    assert "y5" in [text.strip() for text in texts]


def test_pdf_pictures_embed_truetype_fonts(tmp_path):
    out = written(tmp_path, "worked_textbook", "pdf")
    pdf = (out / "network.pdf").read_bytes()
    subtypes = set(re.findall(rb"/Subtype\s*/(\w+)", pdf))
    assert b"Type3" not in subtypes  # Type 3 fonts: what some publishers refuse
    assert b"CIDFontType2" in subtypes or b"TrueType" in subtypes  # Type 42: TrueType outlines
    assert b"/FontFile2" in pdf  # embedded


@pytest.mark.parametrize("config", ["worked_321", "worked_textbook"])
def test_every_phase_picture_of_an_example_has_the_same_size(tmp_path, config):
    out = written(tmp_path, config)
    sizes = {Image.open(out / f"{name}.png").size for name in PHASE_FILES}
    assert len(sizes) == 1, sizes


def test_the_picture_labels_the_target_and_a_one_step_title_has_no_step():
    from matplotlib.text import Text

    result = run(CONFIGS / "worked_textbook.toml")
    for phase in PHASES:
        figure = result.picture(phase=phase)
        texts = [t.get_text() for t in figure.findobj(Text)]
        titles = [t for t in texts if t.startswith("A 2-2-1 sigmoid network without biases")]
        assert titles and all("step" not in title for title in titles)
        if phase in ("step", "forward"):
            assert "target = 0.5" in texts
    several = run(CONFIGS / "worked_textbook.toml", ["train.steps=2"]).picture(phase="step")
    assert any(t.get_text().endswith(", step 1") for t in several.findobj(Text))


@pytest.mark.parametrize("config", ["worked_321", "worked_textbook", "worked_image", "worked_xor"])
def test_every_text_of_every_phase_picture_lies_inside_its_canvas(config):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    result = run(CONFIGS / f"{config}.toml")
    for phase in PHASES:
        figure = result.picture(phase=phase)
        drawing = FigureCanvasAgg(figure)
        drawing.draw()  # a text's box takes its place when it is drawn
        renderer, canvas = drawing.get_renderer(), figure.bbox
        for text in figure.findobj(Text):
            if not text.get_text() or not text.get_visible():
                continue
            patch = text.get_bbox_patch()  # a boxed text (the loss box): the box must fit too
            box = patch.get_window_extent(renderer) if patch else text.get_window_extent(renderer)
            if text.axes is not None and text in text.axes.texts:  # in the drawing, not its title
                assert canvas.x0 - 0.5 <= box.x0 and box.x1 <= canvas.x1 + 0.5, (
                    f"{config} {phase}: {text.get_text()!r} runs off the picture"
                )
