"""Lumbar spine MRI pathway: referrals, worklist, MPPS, ingest, QC and routing."""

__version__ = "0.1.0"
