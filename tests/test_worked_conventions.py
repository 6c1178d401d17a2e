"""A source's sign conventions (`[conventions]`): its claims are judged in them, and the text says so."""

import pytest
from conftest import TEXTBOOK, Y3, Y5

from bpdemo.worked import run

# The book's δ = (t − y)·f'(z) = −∂E/∂z, E = ½(t − y)²
BOOK_DELTA_5 = (0.5 - Y5) * Y5 * (1 - Y5)
BOOK_DELTA_3 = BOOK_DELTA_5 * 0.3 * Y3 * (1 - Y3)


def claims(*pairs) -> str:
    return "".join(f'[[claims]]\nname = "{n}"\nvalue = "{v}"\n' for n, v in pairs)


def test_deltas_written_as_minus_de_dz_agree_in_that_convention():
    book = [
        ("delta.layers.1[0]", f"{BOOK_DELTA_5:.4f}"),  # -0.0407
        ("delta.layers.0[0]", f"{BOOK_DELTA_3:.6f}"),
    ]
    assert BOOK_DELTA_5 < 0 and BOOK_DELTA_3 < 0
    text = TEXTBOOK + '[conventions]\ndelta = "-dE/dz"\n' + claims(*book)
    result = run(text)
    assert [c.agrees for c in result.audit] == [True, True]
    assert result.audit[0].true_value == pytest.approx(BOOK_DELTA_5, abs=1e-12)
    assert result.trace()["claims"][0]["true_value"] == pytest.approx(BOOK_DELTA_5, abs=1e-12)
    # In the default convention δ = ∂E/∂z the same numbers are wrong, by their sign only.
    default = run(TEXTBOOK + claims(*book))
    assert [c.agrees for c in default.audit] == [False, False]
    assert default.audit[0].true_value == pytest.approx(-BOOK_DELTA_5, abs=1e-12)


def test_the_text_says_which_convention_the_claims_are_judged_in():
    text = run(TEXTBOOK + '[conventions]\ndelta = "-dE/dz"\n' + claims(("delta.y", "0"))
               .replace("delta.y", "delta.layers.1[0]")).text()  # fmt: skip
    said = [line for line in text.splitlines() if "conventions" in line]
    assert len(said) == 1
    assert "δ = −∂L/∂z" in said[0] and "δ = ∂L/∂z" in said[0]
    assert "conventions" not in run(TEXTBOOK + claims(("delta.layers.1[0]", "0"))).text()


def test_the_error_as_output_minus_target():
    written = f"{Y5 - 0.5:.4f}"  # y − t = 0.1903
    judged = run(TEXTBOOK + '[conventions]\nerror = "y - t"\n' + claims(("error.0", written)))
    assert judged.audit[0].agrees
    assert judged.audit[0].true_value == pytest.approx(Y5 - 0.5, abs=1e-12)
    assert "error = output − target" in judged.text()
    assert not run(TEXTBOOK + claims(("error.0", written))).audit[0].agrees  # default: t − y
