"""Worked examples: a small network from explicit weights, every number of every step, and an audit.

A worked example is a TOML file (`configs/worked_*.toml`), a dict or a TOML string that states a
network, its weights, its data and, optionally, what a source claims about it. From Python:

    from bpdemo.worked import load, run
    result = run("configs/worked_321.toml")   # or run(load(...)), run({...}), run(toml_text)
    result.text(); result.audit; result.trace(); result.picture(step=1, phase="backward")

One module a concern:

    schema       the config sections, their limits, and `load`
    formula      the arithmetic a source writes beside its numbers, evaluated safely
    claims       the quantities claims name (`parse_quantity`), their tolerances (`Claim`)
    names        a source's own names for neurons and parameters ([labels]), checked, and what each names
    example      `WorkedExample`: the config checked against itself, and its standardised twin
    trace        `run_example`: every number of every step, each step checked against autograd's
                 step from the same parameters
    audit        each claim against backpropagation (`audit_claims`, `audit_table`)
    diagnosis    why a claim disagrees: the slips sources make, tried on the true numbers (`diagnose`)
    walkthrough  the printed walk-through (`Walkthrough`, `scale_comparison`) of the equations of
                 `bpdemo.equations`, which the explorer renders too
    picture      the numbers of one step, sample and phase for the network picture
    result       `run` -> `WorkedResult`: the runs, the audit, the text, the trace, the pictures
    handout      the walk-through as blocks, written as walkthrough.md, its equations in LaTeX
                 (`walkthrough_markdown`)
    handout_tex  the same blocks as walkthrough.tex, a LaTeX article for pdflatex (`walkthrough_tex`)
    files        trace.json, metrics.json, steps.csv, the network pictures and the handout
"""

from bpdemo.equations import factor, fmt
from bpdemo.worked.audit import AUDIT_LEGEND, TABLE_WIDTH, ClaimResult, audit_claims, audit_table
from bpdemo.worked.claims import (
    Claim,
    Quantity,
    agrees,
    claimed_number,
    digits_tolerance,
    parse_quantity,
    rounding_tolerance,
)
from bpdemo.worked.diagnosis import SLIPS, diagnose
from bpdemo.worked.example import WorkedExample
from bpdemo.worked.files import raise_on_failure, write_outputs
from bpdemo.worked.formula import (
    FORMULA_FUNCTIONS,
    MAX_FORMULA_LENGTH,
    FormulaError,
    evaluate_formula,
)
from bpdemo.worked.handout import latex, walkthrough_markdown
from bpdemo.worked.names import Names
from bpdemo.worked.picture import network_figure, picture_name, picture_state
from bpdemo.worked.result import (
    WorkedResult,
    metrics_dict,
    run,
    run_dict,
    run_worked_example,
    step_dict,
    trace_dict,
)
from bpdemo.worked.schema import (
    PHASES,
    ClaimSection,
    ConventionsSection,
    InitSection,
    LabelsSection,
    NetworkSection,
    PictureSection,
    ReportSection,
    StandardiseSection,
    WorkedConfig,
    WorkedDataSection,
    WorkedTrainSection,
    load,
    load_worked_config,
)
from bpdemo.worked.trace import ForwardValues, StepValues, WorkedRun, run_example
from bpdemo.worked.walkthrough import Walkthrough, scale_comparison

__all__ = [
    "AUDIT_LEGEND",
    "FORMULA_FUNCTIONS",
    "MAX_FORMULA_LENGTH",
    "PHASES",
    "SLIPS",
    "TABLE_WIDTH",
    "Claim",
    "ClaimResult",
    "ClaimSection",
    "ConventionsSection",
    "FormulaError",
    "ForwardValues",
    "InitSection",
    "LabelsSection",
    "Names",
    "NetworkSection",
    "PictureSection",
    "Quantity",
    "ReportSection",
    "StandardiseSection",
    "StepValues",
    "Walkthrough",
    "WorkedConfig",
    "WorkedDataSection",
    "WorkedExample",
    "WorkedResult",
    "WorkedRun",
    "WorkedTrainSection",
    "agrees",
    "audit_claims",
    "audit_table",
    "claimed_number",
    "diagnose",
    "digits_tolerance",
    "evaluate_formula",
    "factor",
    "fmt",
    "latex",
    "load",
    "load_worked_config",
    "metrics_dict",
    "network_figure",
    "parse_quantity",
    "picture_name",
    "picture_state",
    "raise_on_failure",
    "rounding_tolerance",
    "run",
    "run_dict",
    "run_example",
    "run_worked_example",
    "scale_comparison",
    "step_dict",
    "trace_dict",
    "walkthrough_markdown",
    "write_outputs",
]
