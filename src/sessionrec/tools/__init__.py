"""Developer tools over DVC and git (pick and tabulate experiments, render docs/results.md). The library never imports
this package: it reads files and params, never runs ``dvc`` or ``git``."""
