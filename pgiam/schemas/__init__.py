"""JSON Schema files for every `--json` output (see README.md here and man pgiam, JSON OUTPUT)."""
