"""The plumbing every command shares: the command line, one command's run (claim, config.toml, the
files it wrote), config files, run folders, interruptions, the processes of a data-parallel run and
which of them speaks, the ranges of every user-given number, and the project's error types."""
