"""The plumbing every command shares: the command line, config files, run folders, interruptions,
the ranges of every user-given number, and the project's error types."""
