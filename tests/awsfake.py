"""AWS without AWS: a real moto server on a free loopback port, for real botocore in a pgiam subprocess.

`credential_profiles()` writes AWS profiles whose credential_process hands out keys (optionally expiring)
and can be made to fail by a file.

Use `moto_server()` as a context manager (or the `moto` fixture in tests/conftest.py); point botocore at it
with `env_for(url)`: AWS_ENDPOINT_URL (every service) plus dummy keys. State can be reset between tests
with `reset(url)`. Nothing here reaches AWS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

DUMMY_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DUMMY_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Start `moto.server` on 127.0.0.1:<free port>; yield its URL; stop it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reset(url: str) -> None:
    """Forget every resource moto holds (between tests sharing one server)."""
    req = urllib.request.Request(url + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=5):
        pass


def env_for(url: str, **extra: str) -> dict[str, str]:
    """Environment for a pgiam/aws subprocess that sends every AWS call to the moto server."""
    return {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", **extra}


CRED_SCRIPT = """\
import datetime, json, os, sys, time
d = sys.argv[1]
if os.path.exists(os.path.join(d, "fail")):
    print("the credential source is down (test switch)", file=sys.stderr)
    sys.exit(1)
keys = json.load(open(os.path.join(d, "keys.json")))
out = {"Version": 1, "AccessKeyId": keys["access"], "SecretAccessKey": keys["secret"]}
if keys.get("life"):
    out["SessionToken"] = keys["session"]
    end = datetime.datetime.fromtimestamp(int(time.time()) + keys["life"], datetime.timezone.utc)
    out["Expiration"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps(out))
"""


def credential_profiles(d: Path, profiles: dict[str, int | None], access: str, secret: str) -> Path:
    """An AWS config whose profiles get credentials from a credential_process script (keys in a 0600 file,
    never in argv); each profile's source fails while a file named `fail` exists in its directory.
    life: seconds until the credentials expire (None: keys that never expire)."""
    script = d / "creds.py"
    script.write_text(CRED_SCRIPT)
    lines = []
    for name, life in profiles.items():
        pd = d / name
        pd.mkdir()
        f = pd / "keys.json"
        f.touch(mode=0o600)
        f.write_text(json.dumps({"access": access, "secret": secret, "life": life, "session": "session-" + secrets.token_hex(8)}))
        lines.append(f"[profile {name}]\ncredential_process = {sys.executable} {script} {pd}\n")
    cfg = d / "aws-config"
    cfg.write_text("\n".join(lines))
    return cfg
