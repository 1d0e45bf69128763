"""`--python PATH`: the libpq inside that interpreter's psycopg (3) and psycopg2.

psycopg2-binary 2.8.x and older bundle libpq 11.x, which reads at most 319 bytes of a ~/.pgpass line
(the fix reached 11.10 in 2020); an IAM token is longer, so the server receives a cut token. The
probe runs in the other interpreter and prints JSON; nothing of pgiam is imported there.
"""

from __future__ import annotations

import json
import subprocess

from pgiam.doctor import Check, fail, ok, warn
from pgiam.libpq import LibpqVersion, truncates_pgpass

PROBE = r"""
import json
out = {}
try:
    import psycopg
    out["psycopg"] = [psycopg.__version__, psycopg.pq.version(), psycopg.pq.__impl__]
except Exception as e:
    out["psycopg_error"] = type(e).__name__
try:
    import psycopg2, psycopg2.extensions
    out["psycopg2"] = [psycopg2.__version__.split()[0], psycopg2.extensions.libpq_version(), None]
except Exception as e:
    out["psycopg2_error"] = type(e).__name__
print(json.dumps(out))
"""


def check_python(python: str) -> list[Check]:
    try:
        p = subprocess.run([python, "-I", "-c", PROBE], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        data = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        return [fail("python.libpq", f"cannot run {python}: {err}", "give --python the path of an interpreter")]
    if not isinstance(data, dict):
        return [fail("python.libpq", f"{python} exited {p.returncode}: {p.stderr.strip()[-200:]}",
                     "give --python the path of a working interpreter")]
    out: list[Check] = []
    for mod, pkg in (("psycopg", "psycopg[binary]"), ("psycopg2", "psycopg2-binary>=2.9")):
        row = data.get(mod)
        if not row:
            continue
        version, num, impl = row
        v = LibpqVersion.from_num(int(num), f"{mod} {version} in {python}")
        if truncates_pgpass(v):
            out.append(fail("python.libpq", f"{mod} {version} in {python} uses libpq {v}, which cuts ~/.pgpass "
                            "lines at 319 bytes: IAM tokens arrive truncated",
                            f"{python} -m pip install -U '{pkg}'"))
        else:
            out.append(ok("python.libpq", f"{mod} {version} in {python} uses libpq {v}" + (f" ({impl})" if impl else "")))
    if not out:
        out.append(warn("python.libpq", f"neither psycopg nor psycopg2 imports in {python}",
                        f"{python} -m pip install 'psycopg[binary]'"))
    return out
