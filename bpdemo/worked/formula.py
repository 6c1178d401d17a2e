"""The arithmetic a source writes beside its numbers, evaluated safely.

A formula is numbers, + - * / and powers (^ or **), parentheses, and six functions of one argument:
exp, ln, log (also the natural logarithm), sqrt, sigmoid = 1/(1 + exp(−x)) and tanh. The text is
parsed with `ast` and walked without recursion, never executed; every value is a float, so a power
like 10^10^10 overflows at once instead of growing an integer, and a formula longer than
MAX_FORMULA_LENGTH characters is refused before it is parsed.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

MAX_FORMULA_LENGTH = 1000  # characters; a source's formula for one number is a line or two

# How sources write operators: the unicode minus and the en dash are a minus, × and · a product.
FORMULA_SPELLINGS = str.maketrans(
    {"−": "-", "–": "-", "—": "-", "×": "*", "·": "*", "÷": "/", "^": "**"}
)
FORMULA_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


def _sigmoid(x: float) -> float:
    # Written so that neither branch overflows: exp of a negative number only.
    if x >= 0:
        return 1 / (1 + math.exp(-x))
    return math.exp(x) / (1 + math.exp(x))


FORMULA_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "exp": math.exp,
    "ln": math.log,
    "log": math.log,  # natural, as in most texts on neural networks
    "sqrt": math.sqrt,
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
}
FUNCTION_NAMES = ", ".join(FORMULA_FUNCTIONS)
ALLOWED = f"numbers, + - * / ^, parentheses and {FUNCTION_NAMES}"


class FormulaError(ValueError):
    """A formula is not arithmetic as allowed here, or has no finite real value."""


def evaluate_formula(text: str) -> float:
    """The value of an arithmetic formula such as `1/(1 + exp(-0.3775))` (see the module docstring)."""
    if len(text) > MAX_FORMULA_LENGTH:
        raise FormulaError(
            f"is {len(text):,} characters long; at most {MAX_FORMULA_LENGTH:,} are allowed"
        )
    try:
        tree = ast.parse(text.translate(FORMULA_SPELLINGS).strip(), mode="eval")
    except SyntaxError as error:
        nested = "nested" in str(error.msg)
        raise FormulaError(
            "nests too deeply" if nested else "does not parse as arithmetic"
        ) from None
    except (RecursionError, MemoryError):
        raise FormulaError("nests too deeply") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise FormulaError("divides by zero") from None
    except OverflowError:
        raise FormulaError("overflows") from None
    if isinstance(value, complex) or not math.isfinite(value):
        raise FormulaError("has no finite real value")
    return value


def _evaluate(root: ast.AST) -> float:
    """Evaluate the tree bottom up with an explicit stack (a long sum nests as deep as it is long)."""
    values: dict[int, float] = {}
    stack: list[tuple[ast.AST, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        children = _operands(node)
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in children)
            continue
        args = [values.pop(id(child)) for child in children]
        values[id(node)] = _apply(node, args)
    return values[id(root)]


def _operands(node: ast.AST) -> list[ast.AST]:
    """The sub-formulas `node` needs, or a FormulaError if `node` is not allowed."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return []
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return [node.operand]
    if isinstance(node, ast.BinOp) and type(node.op) in FORMULA_OPERATORS:
        return [node.left, node.right]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name in FORMULA_FUNCTIONS and len(node.args) == 1 and not node.keywords:
            return [node.args[0]]
        if name in FORMULA_FUNCTIONS:
            count = len(node.args) + len(node.keywords)
            raise FormulaError(f"gives {name} {count} arguments: it takes one")
    text = _shown(node)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Constant):
        raise FormulaError(f"multiplies without a sign in {text!r}: write * between the factors")
    if isinstance(node, ast.Call | ast.Name | ast.Attribute):
        raise FormulaError(f"uses a name or a function other than {FUNCTION_NAMES} ({text!r})")
    if isinstance(node, ast.Tuple):
        raise FormulaError(f"has a comma ({text!r}): write 450000, not 450,000")
    raise FormulaError(f"has {text!r}, which is not arithmetic as allowed here ({ALLOWED})")


def _apply(node: ast.AST, args: list[float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.UnaryOp):
        return -args[0] if isinstance(node.op, ast.USub) else args[0]
    if isinstance(node, ast.BinOp):
        value = FORMULA_OPERATORS[type(node.op)](*args)
        if isinstance(value, complex):  # a negative number to a fractional power
            raise FormulaError(f"has no real value at {_shown(node)!r}")
        return value
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    name = node.func.id
    try:
        return FORMULA_FUNCTIONS[name](args[0])
    except ValueError:  # ln(0), sqrt(-1): a math domain error
        raise FormulaError(f"takes {name} of {args[0]:g}, which has no real value") from None


def _shown(node: ast.AST, limit: int = 60) -> str:
    """The part of the formula at `node`, shortened for a one-line message."""
    try:
        text = ast.unparse(node)
    except RecursionError:
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
