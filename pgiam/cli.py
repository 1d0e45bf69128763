"""The command line: argparse, one cmd_<name>() per subcommand; the only place that prints or picks an exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Sequence, TextIO

from pgiam import __version__
from pgiam.errors import ExitCode, PgiamError, UsageError
from pgiam.paths import Paths

EPILOG_MAIN = """\
examples:
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --dbname app
  psql service=prod
  pgiam refresh --if-needed        # renew tokens that expire within the margin
  eval "$(pgiam hook bash)"        # keep tokens fresh from your prompt
  pgiam sandbox up                 # try it all locally, no AWS account needed

exit status: 0 ok, 1 some services failed, 2 usage, 3 config, 4 AWS credentials,
5 file read/write, 6 lock busy, 7 environment (PostgreSQL/libpq/systemd), 8 network,
70 internal error, 130 interrupted. See man pgiam.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so main() owns the exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = self.prog.removeprefix("pgiam").strip()
        raise UsageError(f"{where}: {message}" if where else message, f"see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pgiam",
        description="IAM auth tokens in ~/.pgpass and verify-full entries in ~/.pg_service.conf, "
        "so `psql service=NAME` connects to AWS RDS, Aurora and RDS Proxy with IAM authentication.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"pgiam {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def cmd(name: str, help: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    a = cmd("add", "add a service: config, service-file entry and a fresh token", """\
examples:
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --dbname app
  pgiam add prod --host db.cluster-abc.us-west-2.rds.amazonaws.com --user alice --via 127.0.0.1:15432
  pgiam add prod --replace --host ... --user alice --profile prod-sso""")
    a.add_argument("name", metavar="NAME", help="service name for `psql service=NAME`")
    a.add_argument("--host", required=True, help="the endpoint's DNS name (cluster, instance or proxy endpoint)")
    a.add_argument("--port", default="5432", help="the endpoint's port (default 5432)")
    a.add_argument("--user", required=True, help="database user (granted rds_iam)")
    a.add_argument("--dbname", help="database name (default: libpq's, the user name)")
    a.add_argument("--region", help="AWS region (default: from the host name, else [defaults] region)")
    a.add_argument("--profile", help="AWS profile that signs the tokens")
    a.add_argument("--via", metavar="ADDR:PORT", help="connect through a tunnel or port forward at ADDR:PORT")
    a.add_argument("--sslrootcert", metavar="PATH", help="CA file to verify the server (default: the managed RDS bundle)")
    a.add_argument("--require-auth", action="store_true", help="libpq 16+: send the token only to a server asking for a password")
    a.add_argument("--replace", action="store_true", help="replace an existing service or take over a section of that name")
    a.add_argument("--no-refresh", action="store_true", help="do not mint a token now")

    r = cmd("remove", "remove a service: config, service-file entry and its token line", """\
examples:
  pgiam remove prod""")
    r.add_argument("name", metavar="NAME")

    ls = cmd("list", "list configured services")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--names", action="store_true", help="service names only, one per line")

    st = cmd("status", "token expiry and last error per service")
    st.add_argument("names", nargs="*", metavar="NAME", help="services to show (default: all)")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    rf = cmd("refresh", "mint fresh tokens into ~/.pgpass", """\
examples:
  pgiam refresh                    # every service
  pgiam refresh prod               # one service
  pgiam refresh --if-needed --quiet   # for timers and hooks: only tokens near expiry""")
    rf.add_argument("names", nargs="*", metavar="NAME", help="services to refresh (default: all)")
    rf.add_argument("--if-needed", action="store_true", help="only tokens within the renewal margin; never waits for the lock")
    rf.add_argument("--quiet", action="store_true", help="print nothing on success")
    rf.add_argument("--json", action="store_true", help="machine-readable output")

    tk = cmd("token", "print a fresh token on stdout (for scripts that need PGPASSWORD)", """\
examples:
  PGPASSWORD="$(pgiam token prod)" some-tool-without-libpq""")
    tk.add_argument("name", metavar="NAME")

    sb = cmd("sandbox", "a local PostgreSQL that checks IAM tokens like RDS (no AWS account needed)", """\
examples:
  pgiam sandbox up && psql service=sandbox -c 'select current_user'
  pgiam sandbox status
  pgiam sandbox down""")
    sbs = sb.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    sbs.required = True
    up = sbs.add_parser("up", help="start the sandbox and add the `sandbox` service")
    up.add_argument("--port", help="local TCP port for PostgreSQL (default: a free one)")
    sbs.add_parser("down", help="stop the sandbox and remove the `sandbox` service")
    sbs.add_parser("status", help="what runs where")

    hk = cmd("hook", "print a prompt hook that keeps tokens fresh", """\
examples:
  eval "$(pgiam hook bash)"     # in ~/.bashrc
  eval "$(pgiam hook zsh)"      # in ~/.zshrc
  pgiam hook fish | source      # in ~/.config/fish/config.fish""")
    hk.add_argument("shell", choices=["bash", "zsh", "fish"], metavar="SHELL", help="bash, zsh or fish")

    tm = cmd("timer", "refresh tokens from a systemd user timer or cron", """\
examples:
  pgiam timer install              # systemd user timer when reachable, else cron
  pgiam timer install --cron --every 10m
  pgiam timer status
  pgiam timer remove""")
    tms = tm.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    tms.required = True
    ti = tms.add_parser("install", help="install the timer (default: systemd when reachable, else cron)")
    g = ti.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="a systemd user timer")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="a line in your crontab")
    ti.add_argument("--every", default="5m", help="how often (default 5m)")
    ti.add_argument("--no-enable", action="store_true", help="write the units but do not enable them")
    trm = tms.add_parser("remove", help="remove the timer")
    g = trm.add_mutually_exclusive_group()
    g.add_argument("--systemd", dest="method", action="store_const", const="systemd", help="only the systemd units")
    g.add_argument("--cron", dest="method", action="store_const", const="cron", help="only the crontab line")
    tms.add_parser("status", help="is a timer installed, and is it active")

    ce = cmd("certs", "manage the Amazon RDS CA bundles used for verify-full", """\
examples:
  pgiam certs update                       # bundles of the partitions your services use
  pgiam certs update --partition aws-us-gov
  pgiam certs status""")
    ces = ce.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ces.required = True
    cu = ces.add_parser("update", help="download the RDS CA bundle(s) over verified HTTPS")
    cu.add_argument("--url", help="download this partition's bundle from URL instead (https only)")
    cu.add_argument("--partition", choices=["aws", "aws-us-gov", "aws-cn"], help="which partition (default: those in use, else aws)")
    cs = ces.add_parser("status", help="managed bundles, CA counts and expiring CAs")
    cs.add_argument("--json", action="store_true", help="machine-readable output")
    return p


# ---------------------------------------------------------------- helpers


class Out:
    """Where commands print; tests capture both streams."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr

    def print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.stdout)

    def note(self, line: str) -> None:
        print(f"pgiam: {line}", file=self.stderr)

    def error(self, err: PgiamError) -> None:
        print(f"pgiam: {err.message}", file=self.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=self.stderr)

    def json(self, obj: Any) -> None:
        print(json.dumps(obj, indent=2, sort_keys=True), file=self.stdout)


def _exe() -> list[str]:
    """How to run this pgiam again from a timer or hook: the absolute script path, else python -m pgiam."""
    arg0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(arg0) == "pgiam" and os.path.isfile(arg0):
        return [os.path.abspath(arg0)]
    return [sys.executable, "-m", "pgiam"]


def _left(expires: float | None, now: float) -> str:
    if expires is None:
        return "no token"
    left = int(expires - now)
    if left <= 0:
        return "expired"
    return f"{left // 60} min {left % 60:02d} s left"


def _clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


# ---------------------------------------------------------------- commands


def cmd_add(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import config as cfg
    from pgiam import refresh

    name = cfg.check_name(args.name)
    host = cfg.check_host(args.host)
    current = refresh.load_config(paths)
    region = cfg.check_region(args.region) if args.region else (cfg.infer_region(host) or current.defaults.region)
    if not region:
        raise UsageError(f"cannot tell the AWS region of {host}", "pass --region (e.g. --region us-east-1)")
    svc = cfg.Service(
        name=name,
        host=host,
        port=cfg.check_port(args.port),
        user=cfg.check_text("user", args.user),
        dbname=cfg.check_text("dbname", args.dbname) if args.dbname is not None else None,
        region=region,
        profile=cfg.check_profile(args.profile) if args.profile else current.defaults.profile,
        via=cfg.parse_via(args.via) if args.via else None,
        sslrootcert=cfg.check_path("sslrootcert", os.path.abspath(args.sslrootcert)) if args.sslrootcert else None,
        require_auth=args.require_auth,
    )
    refresh.check_add_conflicts(paths, current, svc, args.replace)  # before any download
    svc = _with_tls_defaults(paths, svc, out)
    from pgiam import token

    result = refresh.add(paths, svc, explicit_region=bool(args.region), now=time.time(),
                         mint=None if args.no_refresh else token.mint, replace=args.replace)
    for n in result.notices:
        out.note(n)
    via = f" via {svc.via}" if svc.via else ""
    out.print(f"added {name}: {svc.user}@{svc.host}:{svc.port}{via}, sslmode=verify-full")
    if args.no_refresh:
        out.print(f"no token yet: run `pgiam refresh {name}` before connecting")
    out.print(f"connect with: psql service={name}")
    return ExitCode.OK


def _with_tls_defaults(paths: Paths, svc: Any, out: Out) -> Any:
    """Fill in sslrootcert (managed bundle, or the public roots for RDS Proxy) and gate keys on the libpq version."""
    import dataclasses

    from pgiam import certs, libpq
    from pgiam.config import is_proxy_host
    from pgiam.errors import EnvironmentProblem

    version = libpq.detect()
    if version is not None and libpq.truncates_pgpass(version):
        raise EnvironmentProblem(
            f"the installed libpq {version} cuts ~/.pgpass lines at 320 bytes, and IAM tokens are longer",
            "upgrade libpq to 13 or later (or 12.5 / 11.10 / 10.15 and newer minor releases)",
        )
    if svc.sslrootcert is None:
        if is_proxy_host(svc.host):
            root = certs.proxy_sslrootcert(version)
        else:
            root = str(certs.ensure_bundle(paths, certs.partition_for_region(svc.region)))
        svc = dataclasses.replace(svc, sslrootcert=root)
    from pgiam.refresh import service_entry

    keys = dict(service_entry(svc, svc.sslrootcert).keys)
    if version is not None:
        libpq.check_service_keys(keys, version)
    extra = sorted(set(keys) - libpq.JDBC_SAFE_KEYS)
    if extra or keys.get("sslrootcert") == "system":
        what = ", ".join(extra) or "sslrootcert=system"
        out.note(f"{svc.name} uses {what}: JDBC clients (pgJDBC: DataGrip, IntelliJ...) cannot use this service entry")
    return svc


def cmd_remove(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import refresh

    result = refresh.remove(paths, args.name, time.time())
    for n in result.notices:
        out.note(n)
    out.print(f"removed {args.name}")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.config import load_config

    config = load_config(paths.config_file)  # no refresh machinery: `list --names` feeds shell completion
    if args.names:
        out.print(*config.services)
        return ExitCode.OK
    rows = []
    for s in config.services.values():
        rows.append({
            "name": s.name, "host": s.host, "port": s.port, "user": s.user, "dbname": s.dbname,
            "region": s.region, "profile": s.profile, "via": str(s.via) if s.via else None,
            "sslrootcert": s.sslrootcert,
        })
    if args.json:
        out.json(rows)
    elif not rows:
        out.print("no services yet: add one with `pgiam add NAME --host HOST --user USER`")
    else:
        for r in rows:
            via = f" via {r['via']}" if r["via"] else ""
            db = f" db={r['dbname']}" if r["dbname"] else ""
            out.print(f"{r['name']}\t{r['user']}@{r['host']}:{r['port']}{via}{db} ({r['region']}, profile {r['profile'] or 'default'})")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import refresh

    config, states = refresh.status(paths)
    now = time.time()
    rows = []
    for n in args.names:
        if n not in config.services:
            from pgiam.errors import ConfigError

            raise ConfigError(f"no service named {n!r} in {paths.config_file}", "see `pgiam list` for the configured services")
    for s in config.services.values():
        if args.names and s.name not in args.names:
            continue
        st = states.get(s.name)
        expires = st.expires if st and st.key == refresh.key_str(s) else None
        rows.append({
            "name": s.name, "endpoint": f"{s.host}:{s.port}", "user": s.user,
            "profile": s.profile, "via": str(s.via) if s.via else None,
            "expires": expires, "seconds_left": max(0, int(expires - now)) if expires else 0,
            "last_error": st.error if st else None, "hint": st.hint if st else None,
        })
    if args.json:
        out.json(rows)
        return ExitCode.OK
    if not rows:
        out.print("no services yet: add one with `pgiam add NAME --host HOST --user USER`")
    for r in rows:
        line = f"{r['name']}\t{r['user']}@{r['endpoint']}\tprofile {r['profile'] or 'default'}\t"
        line += f"expires {_clock(r['expires'])} ({_left(r['expires'], now)})"
        if r["last_error"]:
            line += f"\tlast error: {r['last_error']}"
        out.print(line)
    return ExitCode.OK


def cmd_refresh(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import refresh
    from pgiam.errors import LockedError

    def mint(svc: Any) -> Any:
        from pgiam import token  # imported only when a token is really due

        return token.mint(svc)

    try:
        result = refresh.refresh(paths, time.time(), mint, args.names or None, if_needed=args.if_needed)
    except LockedError:
        if args.if_needed and args.quiet:
            return ExitCode.LOCKED  # a hook or timer: someone else is refreshing right now, stay silent
        raise
    for n in result.notices:
        out.note(n)
    now = time.time()
    if args.json:
        out.json([o.__dict__ | {"code": int(o.code) if o.code is not None else None} for o in result.outcomes])
    for o in result.outcomes:
        if o.status == "failed":
            print(f"pgiam: {o.error}", file=out.stderr)
            if o.hint:
                print(f"hint: {o.hint}", file=out.stderr)
        elif not args.quiet and not args.json:
            verb = "renewed" if o.status == "renewed" else "still fresh"
            out.print(f"{o.name}: {verb}, valid until {_clock(o.expires)} ({_left(o.expires, now)})")
    if not result.outcomes and not args.quiet and not args.json:
        out.print("no services to refresh: add one with `pgiam add`")
    return result.code


def cmd_token(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import token
    from pgiam.config import load_config
    from pgiam.errors import ConfigError

    config = load_config(paths.config_file)
    svc = config.services.get(args.name)
    if svc is None:
        raise ConfigError(f"no service named {args.name!r} in {paths.config_file}", "see `pgiam list` for the configured services")
    out.print(token.mint(svc).token)  # the one command whose job is to print a token
    return ExitCode.OK


def cmd_sandbox(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam.sandbox import cluster

    if args.action == "up":
        return _sandbox_up(args, paths, out)
    if args.action == "down":
        from pgiam import refresh

        stopped = cluster.down(paths)
        config = refresh.load_config(paths)
        if "sandbox" in config.services:
            refresh.remove(paths, "sandbox", time.time())
        out.print("sandbox stopped and the `sandbox` service removed" if stopped else "no sandbox was running; `sandbox` service removed")
        return ExitCode.OK
    for k, v in cluster.status(paths).items():
        out.print(f"{k}: {v}")
    return ExitCode.OK


def _sandbox_up(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    import subprocess

    from pgiam import config as cfg
    from pgiam import refresh, token
    from pgiam.errors import EnvironmentProblem
    from pgiam.sandbox import cluster

    port = cfg.check_port(args.port) if args.port else None
    info = cluster.up(paths, port)
    svc = cfg.Service(
        name="sandbox", host=info.endpoint_host, port=info.endpoint_port, user=info.role, region=info.region,
        dbname="postgres", profile=info.aws_profile, via=cfg.Via("127.0.0.1", info.local_port),
        sslrootcert=str(info.ca_file), aws_credentials_file=str(info.aws_credentials_file),
    )
    svc = _with_tls_defaults(paths, svc, out)  # the same libpq checks as `add`
    refresh.add(paths, svc, explicit_region=True, now=time.time(), mint=token.mint, replace=True)
    # Return only once psql itself can connect with what we wrote.
    env = dict(os.environ, PGSERVICEFILE=str(paths.service_file), PGPASSFILE=str(paths.pgpass), PGCONNECT_TIMEOUT="5")
    env.pop("PGPASSWORD", None)
    last = ""
    for _ in range(20):
        try:
            p = subprocess.run(["psql", "service=sandbox", "-XAtqc", "select current_user"], env=env,
                               capture_output=True, text=True, timeout=15)
        except FileNotFoundError:
            raise EnvironmentProblem("psql is not installed", "install it: sudo apt-get install postgresql-client") from None
        if p.returncode == 0:
            break
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
        time.sleep(0.25)
    else:
        raise EnvironmentProblem(f"the sandbox started but psql cannot connect: {last}", f"see the log {info.log_file}")
    out.print(f"sandbox up: PostgreSQL on 127.0.0.1:{info.local_port}, checking IAM tokens for {info.endpoint_host}")
    out.print("try: psql service=sandbox")
    return ExitCode.OK


def cmd_hook(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import hooks, refresh

    margin = refresh.load_config(paths).defaults.renewal_margin
    out.stdout.write(hooks.render_hook(args.shell, exe=_exe(), next_due_file=paths.next_due_file,
                                       notice_file=paths.notice_file, margin=margin))
    return ExitCode.OK


def cmd_timer(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import timer

    if args.action == "install":
        res = timer.install(paths, method=args.method, every=timer.parse_every(args.every),
                            enable=not args.no_enable, exe=_exe(), env=os.environ)
        minutes = res.every // 60
        if res.method == "systemd":
            state = "enabled and started" if res.enabled else "written, not enabled"
            out.print(f"systemd user timer every {minutes} min: {state}")
            for f in res.files:
                out.print(f"  {f}")
        else:
            out.print(f"crontab line every {minutes} min" + ("" if res.enabled else " (not installed)") + ":")
            out.print(f"  {res.cron_line}")
        for n in res.notes:
            out.note(n)
        return ExitCode.OK
    if args.action == "remove":
        rem = timer.remove(paths, method=args.method)
        out.print(*(f"removed {r}" for r in rem.removed) if rem.removed else ["no pgiam timer was installed"])
        for n in rem.notes:
            out.note(n)
        return ExitCode.OK
    st = timer.status(paths)
    sd, cron = st["systemd"], st["cron"]
    units = [name for name, present in sd["units"].items() if present]
    line = "systemd: " + (", ".join(units) if units else "no units")
    if sd["manager_reachable"]:
        line += f" (enabled: {sd['enabled'] or 'no'}, active: {sd['active'] or 'no'})"
    else:
        line += " (no user manager reachable)"
    out.print(line)
    if not cron["available"]:
        out.print("cron: no crontab command")
    else:
        out.print("cron: " + (cron["line"] or cron.get("error") or "no pgiam line"))
    return ExitCode.OK


def cmd_certs(args: argparse.Namespace, paths: Paths, out: Out) -> int:
    from pgiam import certs, refresh

    config = refresh.load_config(paths)
    if args.action == "update":
        if args.partition or args.url:
            parts = [args.partition or "aws"]
        else:
            parts = sorted({certs.partition_for_region(s.region) for s in config.services.values()}) or ["aws"]
        for part in parts:
            res = certs.update(paths, part, args.url)
            state = "updated" if res.changed else "unchanged"
            out.print(f"{part}: {state} {res.path} ({res.ca_count} CAs, from {res.url})")
        return ExitCode.OK
    from pathlib import Path

    in_use = {Path(s.sslrootcert) for s in config.services.values() if s.sslrootcert and s.sslrootcert != "system"}
    statuses = certs.status(paths, time.time(), in_use)
    # Strict: any expired CA in a bundle a service uses is reported (issue 5: "a CA in use has expired").
    problems = certs.status_problems(statuses, strict=True)
    if args.json:
        out.json([{
            "path": str(st.path), "partition": st.partition, "exists": st.exists, "in_use": st.in_use,
            "ca_count": st.ca_count, "error": st.error,
            "expiring": [{"subject": ca.subject, "not_after": ca.not_after_iso, "expired": ca.expired} for ca in st.expiring],
        } for st in statuses])
    elif not statuses:
        out.print("no managed CA bundles yet: run `pgiam certs update`")
    else:
        for st in statuses:
            label = st.partition or "not managed"
            use = ", in use" if st.in_use else ""
            if not st.exists:
                out.print(f"{st.path} ({label}{use}): missing")
                continue
            out.print(f"{st.path} ({label}{use}): {st.ca_count} CAs" + (f", invalid: {st.error}" if st.error else ""))
            for ca in st.expiring:
                verb = "expired" if ca.expired else "expires"
                out.print(f"  {ca.subject}: {verb} {ca.not_after_iso}")
    for p in problems:
        out.note(p)
    return ExitCode.CONFIG if problems else ExitCode.OK


COMMANDS = {
    "add": cmd_add, "remove": cmd_remove, "list": cmd_list, "status": cmd_status, "refresh": cmd_refresh,
    "token": cmd_token, "sandbox": cmd_sandbox, "hook": cmd_hook, "timer": cmd_timer, "certs": cmd_certs,
}


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run pgiam; return the exit code. The one place that catches PgiamError."""
    out = Out(stdout or sys.stdout, stderr or sys.stderr)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        old = os.umask(0o077)  # pgiam's own files and directories are private whatever the caller's umask
        try:
            # argparse prints --help and --version to sys.stdout itself: point it at our streams.
            with contextlib.redirect_stdout(out.stdout), contextlib.redirect_stderr(out.stderr):
                args = build_parser().parse_args(argv)
            return int(COMMANDS[args.command](args, Paths.from_env(), out))
        finally:
            os.umask(old)
    except PgiamError as err:
        out.error(err)
        if debug:
            import traceback

            traceback.print_exc(file=out.stderr)
        return int(err.code)
    except KeyboardInterrupt:
        out.note("interrupted")
        return int(ExitCode.INTERRUPTED)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    except Exception as exc:
        # A bug. No traceback without --debug: one line, and the way to get the details; exit 70 either way.
        if debug:
            import traceback

            traceback.print_exc(file=out.stderr)
        out.note(f"unexpected error ({type(exc).__name__}); this is a bug in pgiam")
        if not debug:
            print("hint: run the command again with --debug and report the traceback", file=out.stderr)
        return int(ExitCode.BUG)
