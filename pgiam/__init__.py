"""pgiam: IAM auth tokens in ~/.pgpass and verify-full entries in ~/.pg_service.conf."""

__version__ = "0.2.0"  # the one version: pyproject.toml reads it (dynamic), `pgiam --version` prints it
