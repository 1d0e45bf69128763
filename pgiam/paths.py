"""Every location pgiam reads or writes; nothing else computes a path.

pgiam's own files follow the XDG rules through platformdirs; the two libpq
files follow libpq's rules (PGPASSFILE / PGSERVICEFILE, else the home directory,
with no `~` expansion anywhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pgiam.errors import UsageError

APP = "pgiam"


@dataclass(frozen=True)
class Paths:
    config_file: Path  # config.toml
    state_dir: Path  # state.json, next-due, the lock, the sandbox
    data_dir: Path  # managed CA bundles
    pgpass: Path  # libpq's password file
    service_file: Path  # libpq's per-user service file
    home: Path
    # False when PGIAM_CONFIG names the config file: its directory is then the operator's (a mounted
    # ConfigMap is root-owned and world-writable with the sticky bit; /etc/pgiam belongs to root), not
    # one pgiam created, so it keeps the rules of the user's own files (like ~/.pgpass's directory).
    own_config_dir: bool = True

    def __post_init__(self) -> None:
        # pgiam's own directories are checked (owner, no group/world write) before use, and no symlink
        # is followed inside the state and data directories; the home directory is never created.
        from pgiam import fileio

        own = [self.state_dir, self.data_dir]
        fileio.own_directories([self.config_dir, *own] if self.own_config_dir else own, own, self.home)

    @property
    def config_dir(self) -> Path:
        return self.config_file.parent

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def next_due_file(self) -> Path:
        """One epoch number: the earliest instant a token needs renewing (read by shell hooks)."""
        return self.state_dir / "next-due"

    @property
    def notice_file(self) -> Path:
        """A one-line message for the next prompt (a failed refresh), removed once shown."""
        return self.state_dir / "notice"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"

    @property
    def sandbox_dir(self) -> Path:
        return self.state_dir / "sandbox"

    @property
    def systemd_user_dir(self) -> Path:
        """$XDG_CONFIG_HOME/systemd/user (config_dir's parent is XDG_CONFIG_HOME)."""
        return self.config_dir.parent / "systemd" / "user"

    @property
    def certs_dir(self) -> Path:
        return self.data_dir / "certs"

    @classmethod
    def from_env(cls) -> "Paths":
        """Resolve every location from the environment (HOME, XDG_*, PGPASSFILE, PGSERVICEFILE)."""
        import platformdirs

        env = os.environ
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        # libpq: PGPASSFILE if set, else ~/.pgpass; PGSERVICEFILE if set, else ~/.pg_service.conf.
        # libpq 15+ takes the home directory from $HOME (FACTS.md). No `~` expansion.
        for var in ("PGPASSFILE", "PGSERVICEFILE"):
            value = env.get(var)
            if value and not os.path.isabs(value):
                # libpq would open it relative to whatever directory the program runs in; a prompt hook
                # would then write live tokens into every directory the shell visits.
                raise UsageError(f"{var}={value!r} is a relative path; pgiam will not write files relative to the "
                                 "current directory", f"set {var} to an absolute path, e.g. export {var}=\"$PWD/{value}\"")
        pgpass = Path(env["PGPASSFILE"]) if env.get("PGPASSFILE") else home / ".pgpass"
        service = Path(env["PGSERVICEFILE"]) if env.get("PGSERVICEFILE") else home / ".pg_service.conf"
        # Headless (systemd, Kubernetes): PGIAM_CONFIG names the config file (a mounted ConfigMap may
        # make it a symlink), PGIAM_STATE_DIR a directory in which pgiam keeps a `pgiam` directory of
        # its own (created 0700: an emptyDir itself is world-writable) for the state and CA bundles.
        config = Path(env["PGIAM_CONFIG"]) if env.get("PGIAM_CONFIG") else Path(platformdirs.user_config_dir(APP)) / "config.toml"
        own = Path(env["PGIAM_STATE_DIR"]) / APP if env.get("PGIAM_STATE_DIR") else None
        return cls(
            config_file=config,
            state_dir=own or Path(platformdirs.user_state_dir(APP)),
            data_dir=own or Path(platformdirs.user_data_dir(APP)),
            pgpass=pgpass,
            service_file=service,
            home=home,
            own_config_dir=not env.get("PGIAM_CONFIG"),
        )
