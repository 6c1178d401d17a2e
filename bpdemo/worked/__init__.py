"""Worked examples: a small network from explicit weights, every number of every step, and an audit.

A worked example is a TOML file (`configs/worked_*.toml`) that states a network, its weights, its data
and, optionally, what a source claims about it. One module a concern:

    schema       the config sections, and `load_worked_config`
    claims       the claims' arithmetic and the quantities they name (`parse_quantity`, `Claim`)
    example      `WorkedExample`: the config checked against itself, and its standardised twin
    trace        `run_example`: both models side by side, every number of every step
    audit        each claim against backpropagation (`audit_claims`, `audit_table`)
    walkthrough  the printed walk-through (`Walkthrough`, `scale_comparison`)
    result       `run_worked_example` -> `WorkedResult`: the runs and the audit together
    files        trace.json, metrics.json, steps.csv and the network pictures
"""

from bpdemo.worked.audit import AUDIT_LEGEND, ClaimResult, audit_claims, audit_table
from bpdemo.worked.claims import (
    Claim,
    FormulaError,
    Quantity,
    agrees,
    claimed_number,
    evaluate_formula,
    parse_quantity,
    rounding_tolerance,
)
from bpdemo.worked.example import WorkedExample
from bpdemo.worked.files import (
    picture_state,
    raise_on_failure,
    run_dict,
    step_dict,
    trace_dict,
    write_outputs,
)
from bpdemo.worked.result import WorkedResult, run_worked_example
from bpdemo.worked.schema import (
    ClaimSection,
    InitSection,
    LabelsSection,
    NetworkSection,
    PictureSection,
    StandardiseSection,
    WorkedConfig,
    WorkedDataSection,
    WorkedTrainSection,
    load_worked_config,
)
from bpdemo.worked.trace import ForwardValues, StepValues, WorkedRun, run_example
from bpdemo.worked.walkthrough import Walkthrough, factor, fmt, scale_comparison

__all__ = [
    "AUDIT_LEGEND",
    "Claim",
    "ClaimResult",
    "ClaimSection",
    "FormulaError",
    "ForwardValues",
    "InitSection",
    "LabelsSection",
    "NetworkSection",
    "PictureSection",
    "Quantity",
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
    "evaluate_formula",
    "factor",
    "fmt",
    "load_worked_config",
    "parse_quantity",
    "picture_state",
    "raise_on_failure",
    "rounding_tolerance",
    "run_dict",
    "run_example",
    "run_worked_example",
    "scale_comparison",
    "step_dict",
    "trace_dict",
    "write_outputs",
]
