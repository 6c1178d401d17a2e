"""The demos: entry points that read a config, call the library and print and write what came out."""

import sys

# `python -m demos.<name>` is starting (torch is still loading): a Ctrl-C now ends it with one line.
if sys.argv[:1] == ["-m"]:
    from bpdemo.infra.interruption import exit_outside_run

    exit_outside_run()
