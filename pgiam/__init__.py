"""pgiam: IAM auth tokens in ~/.pgpass and verify-full entries in ~/.pg_service.conf."""

__version__ = "0.1.0"
