"""The documentation: short README, links that resolve, no path out of the project, a template that runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from bpdemo.worked.schema import WorkedConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
RELATIVE_PATH = re.compile(r"(?:\.\./)+[\w.-]+")


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_link_of_a_page_resolves(page):
    text = page.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"


def product_files():
    for folder in ("bpdemo", "demos", "configs", "tests", "docs", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".toml", ".md", ".ipynb", ".js", ".html"}:
                yield path
    yield ROOT / "README.md"


def test_no_path_in_the_product_leads_out_of_the_project():
    """A user has the project folder only: a relative path that leaves it names nothing they have."""
    found = []
    for path in product_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for target in RELATIVE_PATH.findall(line):
                if not (path.parent / target).resolve().is_relative_to(ROOT):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not found, "\n".join(found)


def keys_of(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a config schema, as `section.key`."""
    keys = []
    for name, field in schema.model_fields.items():
        keys.append(prefix + name)
        for inner in _sections(field.annotation):
            keys += keys_of(inner, f"{prefix}{name}.")
    return keys


def _sections(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [s for arg in typing.get_args(annotation) for s in _sections(arg)]


def test_the_worked_example_template_names_every_key_and_every_quantity():
    text = (ROOT / "configs" / "worked_template.toml").read_text(encoding="utf-8")
    for key in keys_of(WorkedConfig):
        name = key.split(".")[-1]
        assert re.search(rf"(^|[\s#\[.])({name})\b", text, re.MULTILINE), f"{key} is not explained"
    for quantity in (
        "loss", "output.K", "output_pre.K", "prob.K", "error.K", "dloss.K", "hidden.J",
        "hidden_pre.J", "hidden.H.J", "delta.layers.I[J]", "grad.layers.I.weight[J,K]",
        "grad.layers.I.bias[J]", "param_before.", "param_after.", "final.loss",
    ):  # fmt: skip
        assert quantity in text, f"the quantity {quantity} is not explained"


@pytest.mark.slow
def test_the_worked_example_template_runs_and_its_claims_agree(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "demos.worked_example", "--config", "configs/worked_template.toml",
         "--out", str(tmp_path / "run")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "WRONG" not in done.stdout and done.stdout.count("agrees") >= 5


def test_every_marked_command_of_the_docs_names_a_command_that_exists():
    sys.path.insert(0, str(ROOT / "docs"))
    from build import MARKER, Block

    for page in PAGES:
        for match in MARKER.finditer(page.read_text(encoding="utf-8")):
            block = Block.parse(match["spec"])
            words = block.command.split()
            assert words[:2] == ["python", "-m"], block.command
            module = ROOT / Path(*words[2].split("."))
            assert module.with_suffix(".py").exists() or (module / "__main__.py").exists(), words[2]
