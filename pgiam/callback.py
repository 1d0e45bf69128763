"""pgiam.password(NAME): a valid token for a connection pool's password callback, in process.

While ~/.pgpass holds a token for NAME that is not due, it is read there by the same reader as the
`pgiam token` fast path (pgiam.entry.cached_token: standard library and platformdirs only, no
subprocess, no botocore). Otherwise `pgiam token NAME` runs as a child process, exactly as a shell
would run it: it mints, writes ~/.pgpass and prints the token, so the caller never imports botocore
and a pool's many connections share one mint through pgiam's lock. The child is this interpreter
with `-P -m pgiam` (the pgiam the caller imported; -P keeps the working directory off sys.path).
"""

from __future__ import annotations

import sys

from pgiam.errors import PgiamError

TIMEOUT = 120.0  # seconds for `pgiam token` to mint: it may wait for another pgiam's lock and for AWS


def _argv(name: str) -> list[str]:
    return [sys.executable, "-P", "-m", "pgiam", "token", name]


def _cached(name: str) -> str | None:
    from pgiam.entry import cached_token

    return cached_token(name)


def _result(name: str, code: int | None, out: bytes, err: bytes) -> str:
    """The token from the child's stdout; its own `pgiam: …` / `hint: …` lines as a PgiamError otherwise."""
    token = out.decode("utf-8", "replace").strip()
    if code == 0 and token and "\n" not in token:
        return token
    lines = [ln for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    message = next((ln.removeprefix("pgiam: ") for ln in lines if ln.startswith("pgiam: ")),
                   f"`pgiam token {name}` exited {code}")
    hint = next((ln.removeprefix("hint: ") for ln in lines if ln.startswith("hint: ")), None)
    error = PgiamError(message, hint)
    if code is not None and code > 0:
        from pgiam.errors import ExitCode

        try:
            error.code = ExitCode(code)
        except ValueError:
            pass
    raise error


def password(name: str, *, timeout: float = TIMEOUT) -> str:
    """A valid IAM token for service `name` (blocking): from ~/.pgpass while fresh, else `pgiam token NAME`.

    Raises pgiam.errors.PgiamError with pgiam's message, hint and exit code when no token can be had.
    """
    token = _cached(name)
    if token is not None:
        return token
    import subprocess

    try:
        p = subprocess.run(_argv(name), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PgiamError(f"`pgiam token {name}` did not answer within {timeout:g} s",
                         f"run `pgiam token {name} > /dev/null` in a shell to see why") from None
    return _result(name, p.returncode, p.stdout, p.stderr)


async def password_async(name: str, *, timeout: float = TIMEOUT) -> str:
    """password(), for asyncio: the fresh case reads two small local files; a mint awaits the child
    process without blocking the event loop."""
    token = _cached(name)
    if token is not None:
        return token
    import asyncio

    proc = await asyncio.create_subprocess_exec(*_argv(name), stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise PgiamError(f"`pgiam token {name}` did not answer within {timeout:g} s",
                         f"run `pgiam token {name} > /dev/null` in a shell to see why") from None
    return _result(name, proc.returncode, out, err)
