"""bpdemo: backpropagation made visible and checkable.

A hand-written backprop MLP (`ManualMLP`) and its `torch.autograd` twin (`AutogradMLP`), built from one
description (`MLPSpec`), trained side by side and compared step by step.
"""

import os
import sys

# `python -m bpdemo.<command>` or the `bpdemo` console script is starting: Ctrl-C now ends it, one line
if sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0] if sys.argv else "") == "bpdemo":
    from bpdemo.infra.interruption import exit_outside_run

    exit_outside_run()

from bpdemo.agreement import TOLERANCES, Agreement, StepRecord, rel_diff
from bpdemo.autograd_mlp import AutogradMLP, AutogradNetwork, twin_of
from bpdemo.compare import SideBySide
from bpdemo.gradcheck import GradientReport, check_gradients, finite_difference_grads
from bpdemo.infra.errors import (
    BpdemoError,
    ConfigError,
    DataError,
    DivergenceError,
    RunError,
    UsageError,
)
from bpdemo.layers import ManualSequential
from bpdemo.manual import ManualMLP
from bpdemo.optim import OptimizerSpec, clip_grad_norm
from bpdemo.register import register_activation, register_layer, register_loss
from bpdemo.spec import MLPSpec, NetworkSpec
from bpdemo.train import History, fit

__all__ = [
    "TOLERANCES",
    "Agreement",
    "AutogradMLP",
    "AutogradNetwork",
    "BpdemoError",
    "ConfigError",
    "DataError",
    "DivergenceError",
    "GradientReport",
    "History",
    "MLPSpec",
    "ManualMLP",
    "ManualSequential",
    "NetworkSpec",
    "OptimizerSpec",
    "RunError",
    "SideBySide",
    "StepRecord",
    "UsageError",
    "check_gradients",
    "clip_grad_norm",
    "finite_difference_grads",
    "fit",
    "register_activation",
    "register_layer",
    "register_loss",
    "rel_diff",
    "twin_of",
]
