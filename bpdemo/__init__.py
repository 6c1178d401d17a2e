"""bpdemo: backpropagation made visible and checkable.

A hand-written backprop MLP (`ManualMLP`) and its `torch.autograd` twin (`AutogradMLP`), built from one
description (`MLPSpec`), trained side by side and compared step by step.
"""

from bpdemo.autograd_mlp import AutogradMLP
from bpdemo.compare import TOLERANCES, Agreement, SideBySide, StepRecord
from bpdemo.errors import (
    BpdemoError,
    ConfigError,
    DataError,
    DivergenceError,
    RunError,
    UsageError,
)
from bpdemo.gradcheck import finite_difference_grads, rel_diff
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec, clip_grad_norm
from bpdemo.spec import MLPSpec
from bpdemo.train import History, fit

__all__ = [
    "TOLERANCES",
    "Agreement",
    "AutogradMLP",
    "BpdemoError",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "History",
    "MLPSpec",
    "ManualMLP",
    "OptimizerSpec",
    "RunError",
    "SideBySide",
    "StepRecord",
    "UsageError",
    "clip_grad_norm",
    "finite_difference_grads",
    "fit",
    "rel_diff",
]
