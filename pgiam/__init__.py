"""pgiam: IAM auth tokens in ~/.pgpass and verify-full entries in ~/.pg_service.conf.

For connection pools: `pgiam.password("NAME")` returns a valid token for a configured service (read
from ~/.pgpass while fresh, without a subprocess or botocore; minted by `pgiam token NAME` when due),
and `await pgiam.password_async("NAME")` does the same without blocking an asyncio event loop. Both
raise `pgiam.PgiamError` (message, hint, exit code) when no token can be had.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (about 4 ms) on the fast paths
__version__ = "0.2.0"  # the one version: pyproject.toml reads it (dynamic), `pgiam --version` prints it

if TYPE_CHECKING:
    from typing import Any

    from pgiam.callback import password as password
    from pgiam.callback import password_async as password_async
    from pgiam.errors import PgiamError as PgiamError

__all__ = ["PgiamError", "__version__", "password", "password_async"]


def __getattr__(name: str) -> Any:
    """The API, imported on first use: `python -m pgiam` and the fast paths import this package too."""
    if name in ("password", "password_async"):
        from pgiam import callback

        return getattr(callback, name)
    if name == "PgiamError":
        from pgiam.errors import PgiamError

        return PgiamError
    raise AttributeError(f"module 'pgiam' has no attribute {name!r}")
