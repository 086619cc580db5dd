"""Command-line interface (``emsfl-sim``)."""
