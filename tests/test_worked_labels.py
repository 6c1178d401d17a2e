"""A source's own names (`[labels]`): for neurons and weights, in every line of the walk-through and
the audit, and in the claims (`output.y5`, `grad.w13`, `param_after.w35`); canonical names still work."""

import pytest
from conftest import D3, D5, TEXTBOOK, Y3, Y4, Y5

from bpdemo.explore.chain import StepView
from bpdemo.infra.errors import ConfigError
from bpdemo.worked import run

NAMED = (
    'title = "2-2-1, the book\'s names"\n'
    + TEXTBOOK
    + """[labels]
inputs = ["x1", "x2"]
hidden = [["y3", "y4"]]
outputs = ["y5"]
weights = [[["w13", "w23"], ["w14", "w24"]], [["w35", "w45"]]]
"""
)
WEIGHTS = ["w13", "w23", "w14", "w24", "w35", "w45"]
NEURONS = ["y3", "y4", "y5"]
BIASED = NAMED.replace("bias = false\n", "")  # the same network, with biases


# By hand (conftest): the forward pass, δ = ∂E/∂z, and the gradients and updates the claims name.
HAND = {
    "output.y5": Y5,
    "hidden.y3": Y3,
    "hidden_pre.y4": 0.4 * 0.35 + 0.6 * 0.9,
    "delta.y5": D5,
    "delta.y3": D3,
    "grad.w13": D3 * 0.35,
    "grad.w45": D5 * Y4,
    "param_before.w24": 0.6,
    "param_after.w35": 0.3 - D5 * Y3,
    "final.output.y5": None,  # checked against the canonical name below
}


def with_claims(names: list[str], digits: int = 12) -> str:
    claims = "".join(
        f'[[claims]]\nname = "{n}"\nvalue = 0\ntolerance = 1e-{digits}\n' for n in names
    )
    return NAMED + claims


def test_claims_by_her_names_read_the_numbers_a_hand_computation_gives():
    result = run(with_claims([n for n, v in HAND.items() if v is not None]))
    for claim in result.audit:
        assert claim.true_value == pytest.approx(HAND[claim.claim.quantity.name], abs=1e-12)


def test_her_names_and_the_canonical_names_read_the_same_numbers():
    pairs = [
        ("output.y5", "output.0"),
        ("hidden.y4", "hidden.1"),
        ("delta.y3", "delta.layers.0[0]"),
        ("grad.w23", "grad.layers.0.weight[0,1]"),
        ("grad.w14", "grad.layers.0.weight[1,0]"),
        ("param_after.w45", "param_after.layers.1.weight[0,1]"),
        ("final.output.y5", "final.output.0"),
        ("dloss.y5", "dloss.0"),
    ]
    result = run(with_claims([name for pair in pairs for name in pair]))
    values = [claim.true_value for claim in result.audit]
    assert values[0::2] == values[1::2]


def test_every_line_of_the_walkthrough_names_its_neuron_or_weight():
    text = run(NAMED).text()
    lines = [line.strip() for line in text.splitlines()]
    equations = [
        line
        for line in lines
        if line.startswith(("z0[", "z1[", "δ", "∂L/∂a", "∂L/∂W0", "∂L/∂W1", "W0[", "W1["))
    ]
    assert len(equations) == 3 + 3 + 3 + 6 + 6  # z, ∂L/∂a, δ, ∂L/∂W, updates
    for line in equations:
        assert any(f"({name})" in line for name in NEURONS + WEIGHTS), line
    for name in WEIGHTS:  # each weight in its gradient's line and in its update's
        assert sum(f"({name})" in line for line in equations) == 2, name
    assert "z1[0] (y5) = w35·y3 + w45·y4" in text  # the sums as the book writes them
    assert "∂L/∂a0[0] (y3) = δ(y5)·w35" in text


def test_every_row_of_the_audit_names_the_claim_as_written():
    names = ["output.y5", "delta.y3", "grad.w13", "param_after.w35", "hidden.y4"]
    table = run(with_claims(names, digits=3)).audit_table()
    rows = [line for line in table.splitlines() if not line.startswith(" ")][-len(names) :]
    for row, name in zip(rows, names, strict=True):
        assert row.startswith(name), row


def test_the_pictures_name_the_weights():
    from matplotlib.text import Text

    figure = run(NAMED).picture(phase="forward", edge_labels="all")
    texts = [t.get_text() for t in figure.findobj(Text)]
    for name in WEIGHTS:
        assert any(text.startswith(f"{name} = ") for text in texts), name
    for name in NEURONS:
        assert name in texts


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("hidden.y5", "output neuron"),
        ("output.y3", "hidden neuron"),
        ("grad.y3", "names a neuron"),
        ("delta.w13", "names a weight"),
        ("output.x1", "names an input"),
        ("grad.w99", "unknown quantity"),
    ],
)
def test_a_name_in_the_wrong_place_is_refused_in_one_line(name, says):
    with pytest.raises(ConfigError, match=says) as error:
        run(with_claims([name]))
    assert "\n" not in str(error.value)


def test_a_name_given_twice_or_a_matrix_of_the_wrong_shape_is_refused():
    twice = NAMED.replace('outputs = ["y5"]', 'outputs = ["y3"]')
    with pytest.raises(ConfigError, match="names two things 'y3'"):
        run(twice)
    ragged = NAMED.replace('[["w35", "w45"]]]', '[["w35"]]]')
    with pytest.raises(ConfigError, match=r"\[labels\] weights"):
        run(ragged)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            NAMED.replace('inputs = ["x1", "x2"]', 'inputs = ["x1"]'),
            "[labels] inputs has 1 names for 2 neurons",
        ),
        (
            NAMED.replace('outputs = ["y5"]', 'outputs = ["y5", "y6"]'),
            "[labels] outputs has 2 names for 1 neurons",
        ),
        (
            NAMED.replace('hidden = [["y3", "y4"]]', 'hidden = [["y3"]]'),
            "[labels] hidden: give one list per hidden layer with one name per neuron (widths [2])",
        ),
        (
            NAMED.replace('[["w35", "w45"]]]', '[["w35"]]]'),
            "[labels] weights: give one (out, in) matrix of names per layer, as [init] weights "
            "(shapes [(2, 2), (1, 2)])",
        ),
        (
            NAMED.replace("[labels]", '[labels]\nbiases = [["b3", "b4"], ["b5"]]'),
            "[labels] biases names biases of a network without them (network.bias = false): "
            "leave it out",
        ),
        (
            BIASED.replace("[labels]", '[labels]\nbiases = [["b3"], ["b5"]]'),
            "[labels] biases: give one list of names per layer (widths [2, 1])",
        ),
    ],
)
def test_each_list_of_labels_of_the_wrong_shape_is_refused_in_its_own_words(config, message):
    with pytest.raises(ConfigError) as error:
        run(config)
    assert str(error.value) == f"config: {message}"


def test_biases_by_name_in_claims_and_pictures():
    from matplotlib.text import Text

    biased = BIASED.replace("[labels]", '[labels]\nbiases = [["b3", "b4"], ["b5"]]')
    result = run(biased + '[[claims]]\nname = "grad.b5"\nvalue = 0\ntolerance = 1e-12\n')
    (claim,) = result.audit
    assert claim.true_value == pytest.approx(D5, abs=1e-12)  # ∂E/∂b5 = δ5 (zero biases: same net)
    assert "∂L/∂b1[0] (b5) = δ1[0]" in result.text()
    assert "z1[0] (y5) = w35·y3 + w45·y4 + b5 =" in result.text()
    texts = [t.get_text() for t in result.picture(phase="forward").findobj(Text)]
    assert "b5 = 0" in texts


def test_a_name_with_parentheses_is_written_whole():
    # A book may write its weights w(35) and its biases b(5): the closing parenthesis is the name's.
    parenthesised = BIASED.replace("[labels]", '[labels]\nbiases = [["b(3)", "b(4)"], ["b(5)"]]')
    for name in WEIGHTS:
        parenthesised = parenthesised.replace(f'"{name}"', f'"w({name[1:]})"')
    result = run(parenthesised)
    text = result.text()
    assert "z1[0] (y5) = w(35)·y3 + w(45)·y4 + b(5) =" in text
    assert "∂L/∂a0[0] (y3) = δ(y5)·w(35) =" in text
    assert "∂L/∂W1[0,0] (w(35)) = δ1[0]·a0[0] =" in text
    view = StepView(result.run, result.run.steps[0], 0)
    item = view.parameter_item("layers.1.weight", (0, 0), "backward")
    assert item["title"] == "∂L/∂W1[0,0] (layers.1.weight[0,0], w(35))"
    assert item["show"][0].startswith("∂L/∂w(35) = ")


def test_the_explorer_finds_a_claim_by_its_name():
    from bpdemo.explore.view import claim_target
    from bpdemo.worked import WorkedExample, load

    example = WorkedExample.from_config(load(NAMED))
    target = claim_target("param_after.w35", example.spec, example.names)
    assert target == {"element": "w1_0_0", "phase": "update"}
    assert claim_target("delta.y3", example.spec, example.names) == {
        "element": "n1_0",
        "phase": "backward",
    }
