"""The console entry point. `pgiam refresh --if-needed --quiet` (timers, prompt hooks) is answered here.

When nothing is due it reads one tiny file and stats the config: no argparse, no TOML, no botocore,
no write. The "next due" file is rewritten under the lock by every refresh/add/remove, so it is at
least as new as the state; a config edited by hand afterwards is newer than it and takes the full path.
"""

from __future__ import annotations

import os
import sys
import time

_FAST = (["refresh", "--if-needed", "--quiet"], ["refresh", "--quiet", "--if-needed"])


def nothing_due() -> bool:
    """True only when the next-due epoch is in the future and the config has not changed since it was written."""
    import platformdirs  # the XDG rules, not hand-rolled (about 3 ms)

    due_file = os.path.join(platformdirs.user_state_dir("pgiam"), "next-due")
    config = os.path.join(platformdirs.user_config_dir("pgiam"), "config.toml")
    try:
        with open(due_file, "rb") as f:
            due = int(f.read(64))
            due_mtime = os.fstat(f.fileno()).st_mtime_ns
        if os.stat(config).st_mtime_ns > due_mtime:  # written in the same clock tick counts as older
            return False
    except (OSError, ValueError):
        return False
    return time.time() < due


def main() -> None:
    """Run pgiam and exit with its status."""
    if sys.argv[1:] in _FAST and nothing_due():
        sys.exit(0)
    from pgiam.cli import main as cli_main

    sys.exit(cli_main())
