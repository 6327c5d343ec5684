"""Use cases: orders, worklist, and later workflow, ingest and routing."""
