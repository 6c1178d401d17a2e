"""Every Python example in the README and the docs runs as it is written."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def examples():
    for page in [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]:
        for number, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), start=1):
            yield pytest.param(code, id=f"{page.stem}-{number}")


@pytest.mark.parametrize("code", list(examples()))
def test_the_example_runs(code, registries, capsys):
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
