"""Claims that fit real sources: formulas with functions, per-claim tolerances, and the limits of a
worked-example config (each refused at once with one line and exit status 2)."""

import ast
import copy
import math

import pytest
import tomli_w

from bpdemo.compare import SideBySide
from bpdemo.infra.cli import run_main
from bpdemo.infra.errors import ConfigError
from bpdemo.worked import (
    MAX_FORMULA_LENGTH,
    FormulaError,
    audit_table,
    claimed_number,
    digits_tolerance,
    evaluate_formula,
    run,
)
from demos.worked_example import main

SMALL = {  # the 3-2-1 example without its claims: loss 5.6448 at step 1
    "title": "a 3-2-1 network",
    "network": {"sizes": [3, 2, 1], "activations": ["identity", "identity"]},
    "init": {
        "weights": [[[0.5, 0.1, 0.0], [0.5, 0.1, 0.0]], [[0.3, 0.3]]],
        "biases": [[0.2, 0.2], [0.1]],
    },
    "data": {"inputs": [[1, 2, 3]], "targets": [[4]]},
}


def small(changes: dict | None = None, **claim) -> dict:
    """The small config with `changes` made (section -> keys) and one claim about the loss."""
    config = copy.deepcopy(SMALL)
    for section, keys in (changes or {}).items():
        if isinstance(keys, dict):
            config.setdefault(section, {}).update(keys)
        else:
            config[section] = keys
    if claim:
        config["claims"] = [{"name": "loss", **claim}]
    return config


def run_command(tmp_path, config: dict) -> tuple[int, str]:
    path = tmp_path / "example.toml"
    path.write_text(tomli_w.dumps(config))
    status = run_main(main, ["--config", str(path), "--out", str(tmp_path / "run")])
    return status, str(path)


# -- formulas ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "value"),
    [
        ("1/(1+exp(-0.3775))", 1 / (1 + math.exp(-0.3775))),
        ("sigmoid(0.3775)", 1 / (1 + math.exp(-0.3775))),
        ("sigmoid(-800)", math.exp(-800)),  # no overflow on the way
        ("ln(2) + log(3)", math.log(6)),
        ("sqrt(2)^2", 2.0),
        ("tanh(0.5) * (1 - tanh(0.5)^2)", math.tanh(0.5) * (1 - math.tanh(0.5) ** 2)),
        ("−ln(0.2)", math.log(5)),
        ("exp(ln(4))", 4.0),
    ],
)
def test_a_formula_may_use_exp_ln_log_sqrt_sigmoid_and_tanh(formula, value):
    assert evaluate_formula(formula) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("abs(-1)", "other than exp, ln, log, sqrt, sigmoid, tanh"),
        ("exp(1, 2)", "gives exp 2 arguments"),
        ("math.exp(1)", "name or a function"),
        ("ln(0)", "has no real value"),
        ("sqrt(-1)", "has no real value"),
        ("(-8)^(1/3)", "no real value"),
        ("exp(1000)", "overflows"),
        ("10**10**10", "overflows"),
        ("(" * 300 + "1" + ")" * 300, "nests too deeply"),
    ],
)
def test_a_formula_outside_the_allowed_arithmetic_is_one_clear_error(formula, message):
    with pytest.raises(FormulaError) as error:
        evaluate_formula(formula)
    assert message in str(error.value)


def test_a_long_sum_is_evaluated_without_recursion():
    terms = (MAX_FORMULA_LENGTH - 1) // 2
    assert evaluate_formula("+".join(["1"] * terms)) == terms
    assert evaluate_formula("-" * (MAX_FORMULA_LENGTH - 2) + "1") == 1.0  # an even count of signs


@pytest.mark.parametrize("size", [100_000, 10_000_000])
def test_a_huge_formula_is_refused_before_it_is_parsed(monkeypatch, size):
    formula = "+".join(["1"] * (size // 2))
    parse, parsed = ast.parse, []

    def parse_and_count(*args, **kwargs):
        parsed.append(args)
        return parse(*args, **kwargs)

    monkeypatch.setattr(ast, "parse", parse_and_count)
    with pytest.raises(FormulaError, match=f"at most {MAX_FORMULA_LENGTH:,}"):
        evaluate_formula(formula)
    assert parsed == []


def test_a_100000_term_formula_in_a_config_is_one_line_and_exit_2(tmp_path, capsys):
    status, _ = run_command(tmp_path, small(value=1, formula="+".join(["1"] * 100_000)))
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1, error[:300]
    assert "formula is 199,999 characters long; at most 1,000 are allowed" in error
    assert len(error) < 300 and not (tmp_path / "run").exists()


# -- claimed values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1e400", "-1e400", math.inf, math.nan])
def test_a_claim_beyond_any_float_is_one_line_and_exit_2(tmp_path, capsys, value):
    status, _ = run_command(tmp_path, small(value=value))
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1, error
    assert "[[claims]] #1 (loss): value" in error


def test_a_claim_far_below_the_smallest_float_is_read_as_written():
    claimed, written = claimed_number("1e-400")
    assert claimed == 0.0 and str(written) == "1E-400"


# -- per-claim tolerances ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "digits", "tolerance"),
    [
        ("0.7514", 3, 5e-4),
        ("0.7514", 4, 5e-5),
        ("1234", 2, 50),
        ("-0.0147", 2, 5e-4),
        ("6.31", 1, 0.5),
    ],
)
def test_digits_judge_a_claim_to_half_a_unit_of_its_last_significant_digit(
    written, digits, tolerance
):
    _, decimal = claimed_number(written)
    assert digits_tolerance(decimal, digits) == pytest.approx(tolerance, rel=1e-12)


@pytest.mark.parametrize(
    ("keys", "agrees", "judged_by", "cell"),
    [  # the loss is 5.6448
        ({"value": "5.64"}, True, "written", "0.005"),
        ({"value": "5.63"}, False, "written", "0.005"),
        ({"value": "5.63", "tolerance": 0.02}, True, "tolerance", "0.02 t"),
        ({"value": "5.63", "digits": 2}, True, "digits", "0.05 d2"),
        ({"value": "5.63", "digits": 3}, False, "digits", "0.005 d3"),
    ],
)
def test_a_claim_agrees_within_its_own_tolerance_or_digits(keys, agrees, judged_by, cell):
    result = run(small(**keys))
    assert result.audit[0].agrees is agrees
    row = next(line for line in audit_table(result.audit).splitlines() if line.startswith("loss"))
    assert f" {cell} " in row
    assert result.trace()["claims"][0]["judged_by"] == judged_by


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"value": "5.63", "tolerance": 0.1, "digits": 2}, "give tolerance (absolute) or digits"),
        ({"value": 0, "digits": 2}, "a value of 0 has no significant digits"),
        ({"value": 1, "tolerance": -0.1}, "tolerance: Input should be greater than 0"),
        ({"value": 1, "digits": 0}, "digits: Input should be greater than or equal to 1"),
        (
            {"value": 1, "tolerence": 0.1},
            "unknown key 'tolerence' in [[claims]] (valid keys: name,",
        ),
    ],
)
def test_a_wrong_tolerance_is_one_clear_error(keys, message):
    with pytest.raises(ConfigError) as error:
        run(small(**keys))
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1


# -- limits of the config ----------------------------------------------------------------------------
LIMITS = [
    ({"title": "x" * 200_000}, "title is 200,000 characters long; at most 200 are allowed"),
    ({"source": "x" * 600}, "source is 600 characters long; at most 500 are allowed"),
    ({"labels": {"inputs": ["a", "b", "c" * 101]}}, "labels.inputs[2] is 101 characters long"),
    ({"network": {"device": "c" * 1000}}, "network.device is 1,000 characters long"),
    ({"network": {"sizes": [3, 2000, 1]}}, "sizes: Input should be less than or equal to 16"),
    (
        {"network": {"sizes": [3, *[2] * 7, 1]}},
        "network.sizes has 8 layers with weights; at most 6",
    ),
    ({"data": {"inputs": [[1, 2, 3]] * 65, "targets": [[4]] * 65}}, "data.inputs has 65 rows"),
    ({"train": {"steps": 10_000_000}}, "steps: Input should be less than or equal to 100000"),
    ({"train": {"max_trace_steps": 5000}}, "max_trace_steps: Input should be less than or equal"),
    ({"train": {"threads": 100_000}}, "threads: Input should be less than or equal to 256"),
]


@pytest.mark.parametrize(("changes", "message"), LIMITS)
def test_a_config_beyond_a_documented_limit_is_refused_before_a_model_is_built(
    tmp_path, capsys, monkeypatch, changes, message
):
    built = []

    def build(pair, *args, **kwargs):  # what the run does first once its config is accepted
        built.append(pair)
        raise RuntimeError("a model was built")

    monkeypatch.setattr(SideBySide, "__init__", build)
    status, path = run_command(tmp_path, small(changes))
    assert built == []
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1 and message in error, error[:300]
    assert path in error and len(error) < 400 and not (tmp_path / "run").exists()
