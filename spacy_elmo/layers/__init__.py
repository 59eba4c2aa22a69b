"""Thinc glue around the biLM, one concern per file (nothing here knows about pipes)."""
