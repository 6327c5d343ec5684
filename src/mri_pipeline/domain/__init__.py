"""Pure rules of the pathway: no I/O, nothing of the project imported."""
