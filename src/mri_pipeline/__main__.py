"""``python -m mri_pipeline`` runs the command line."""

from mri_pipeline.cli import app

app()
