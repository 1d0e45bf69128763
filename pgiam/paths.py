"""Every location pgiam reads or writes, as one `Paths`; the rules themselves live in pgiam.facts.

pgiam's own files follow the XDG rules through platformdirs (or PGIAM_CONFIG / PGIAM_STATE_DIR);
the two libpq files follow libpq's rules (PGPASSFILE / PGSERVICEFILE, else the home directory,
with no `~` expansion anywhere). The import-light fast path reads the same functions of pgiam.facts.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pgiam import facts
from pgiam.errors import UsageError

if TYPE_CHECKING:
    from pgiam import fileio

APP = facts.APP


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

    @functools.cached_property
    def scope(self) -> "fileio.Scope":
        """What pgiam.fileio needs to know of these locations, passed to it by every caller: pgiam's own
        directories are checked (owner, no group/world write) before use, no symlink is followed inside
        the state and data directories, and the home directory is never created."""
        from pgiam import fileio

        def absolute(paths: list[Path]) -> tuple[Path, ...]:
            return tuple(Path(os.path.abspath(p)) for p in paths)

        return fileio.Scope(own=absolute(self.own_dirs), nofollow=absolute([self.state_dir, self.data_dir]),
                            home=Path(os.path.abspath(self.home)), known=self.own_names)

    @property
    def own_dirs(self) -> list[Path]:
        """The directories every read and write checks (pgiam.facts.own_dirs): config (unless the
        operator's, named by PGIAM_CONFIG), state, data."""
        own = [self.state_dir, self.data_dir]
        return [self.config_dir, *own] if self.own_config_dir else own

    def check_own_dirs(self) -> None:
        """Refuse (exit 5, naming the fix) when one of pgiam's own directories is another user's or
        writable by others: reading from it is as unsafe as writing to it (a planted next-due or state)."""
        from pgiam import fileio

        for d in self.own_dirs:
            fileio.check_private_dir(d)

    @property
    def own_names(self) -> frozenset[str]:
        """Every name pgiam writes in its own directories: an unmarked directory holding only these (as
        0.2.0 left them) is adopted, and `pgiam uninstall` removes exactly these."""
        mine = [self.state_file, self.next_due_file, self.notice_file, self.lock_file, self.journal_file,
                self.sandbox_dir, self.certs_dir, self.token_index, self.state_dir / "timer.log", self.mint_dir]
        return frozenset(p.name for p in mine) | ({self.config_file.name} if self.own_config_dir else set())

    @property
    def journal_file(self) -> Path:
        """A commit's intent, written before its first rename and removed after its last (pgiam.fileio)."""
        return self.state_dir / facts.JOURNAL

    @property
    def config_dir(self) -> Path:
        return self.config_file.parent

    @property
    def state_file(self) -> Path:
        return self.state_dir / facts.STATE_FILE

    @property
    def next_due_file(self) -> Path:
        """The earliest instant a token needs renewing, and the margin (pgiam.facts.render_next_due)."""
        return self.state_dir / facts.NEXT_DUE

    @property
    def notice_file(self) -> Path:
        """A one-line message for the next prompt (a failed refresh), removed once shown."""
        return self.state_dir / facts.NOTICE

    @property
    def lock_file(self) -> Path:
        return self.state_dir / facts.LOCK

    @property
    def mint_dir(self) -> Path:
        """One lock file per credential identity: the mint slots (pgiam.minting)."""
        return self.state_dir / "mint"

    @property
    def token_index(self) -> Path:
        """What each service name means, for `pgiam token`'s fast path (pgiam.facts.render_token_index)."""
        return self.state_dir / facts.TOKEN_INDEX

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
        """Resolve every location from the environment (HOME, XDG_*, PGPASSFILE, PGSERVICEFILE, PGIAM_*)."""
        env = os.environ
        for var in ("PGPASSFILE", "PGSERVICEFILE"):
            value = env.get(var)
            if value and not os.path.isabs(value):
                # libpq would open it relative to whatever directory the program runs in; a prompt hook
                # would then write live tokens into every directory the shell visits.
                raise UsageError(f"{var}={value!r} is a relative path; pgiam will not write files relative to the "
                                 "current directory", f"set {var} to an absolute path, e.g. export {var}=\"$PWD/{value}\"")
        # Headless (systemd, Kubernetes): PGIAM_CONFIG names the config file (a mounted ConfigMap may
        # make it a symlink), PGIAM_STATE_DIR a directory in which pgiam keeps a `pgiam` directory of
        # its own (created 0700: an emptyDir itself is world-writable) for the state and CA bundles.
        return cls(
            config_file=Path(facts.config_file(env)),
            state_dir=Path(facts.state_dir(env)),
            data_dir=Path(facts.data_dir(env)),
            pgpass=Path(facts.pgpass_file(env)),
            service_file=Path(facts.service_file(env)),
            home=Path(facts.home_dir(env)),
            own_config_dir=facts.own_config_dir(env),
        )
