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
    """True only when the next-due epoch is ahead (by no more than a token lives) and neither the
    config nor either libpq file changed since it was written; anything else takes the full path."""
    import platformdirs  # the XDG rules, not hand-rolled (about 3 ms)

    env = os.environ
    home = env.get("HOME", "")
    # The same locations as pgiam.paths: PGIAM_STATE_DIR / PGIAM_CONFIG first, else XDG.
    state = os.path.join(env["PGIAM_STATE_DIR"], "pgiam") if env.get("PGIAM_STATE_DIR") else platformdirs.user_state_dir("pgiam")
    due_file = os.path.join(state, "next-due")
    watched = (
        env.get("PGIAM_CONFIG") or os.path.join(platformdirs.user_config_dir("pgiam"), "config.toml"),
        # libpq's locations (PGPASSFILE / PGSERVICEFILE, else the home directory); the full path
        # refuses relative ones, so they never count as unchanged here.
        env.get("PGPASSFILE") or os.path.join(home, ".pgpass"),
        env.get("PGSERVICEFILE") or os.path.join(home, ".pg_service.conf"),
    )
    try:
        with open(due_file, "rb") as f:
            due = int(f.read(64))
            due_mtime = os.fstat(f.fileno()).st_mtime_ns
        for path in watched:
            # Written in the same clock tick counts as older; a missing file is a change.
            if not os.path.isabs(path) or os.stat(path).st_mtime_ns > due_mtime:
                return False
    except (OSError, ValueError):
        return False
    now = time.time()
    # next-due is written at most one token life (900 s) ahead: later means the clock stepped back.
    return now < due <= now + 900


def main() -> None:
    """Run pgiam and exit with its status."""
    if sys.argv[1:] in _FAST and nothing_due():
        sys.exit(0)
    from pgiam.cli import main as cli_main

    sys.exit(cli_main())
