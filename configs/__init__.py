"""The configs bpdemo ships: one TOML file per command and per worked example.

This folder is the one place they are written. Installed, it is the package `bpdemo.configs`
(pyproject.toml maps it there), read through `importlib.resources` (`bpdemo.infra.shipped`).
"""
