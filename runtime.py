"""Process entry of QuantumVault Runtime: patch gevent, read config, start storage and the tree.

`quantumvault` (the console script) and `python runtime.py` are the same program. gevent must
patch the standard library before anything else imports it, so Pykka's ThreadingActor runs on
greenlets and psycopg2/requests/sockets cooperate instead of blocking the process.
"""

from gevent import monkey

monkey.patch_all()

# ruff: noqa: E402 - everything below must be imported after the patch
import argparse
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import gevent
import pykka
import requests
from gevent.event import AsyncResult

import operator_cli
from actors.dispatch import wake_backlogs
from actors.node import connections_needed, pool_child, pool_size, process_role, worker_specs
from actors.services import ProcessRole, Services
from actors.shutdown import quiesce
from actors.tree import root_kwargs
from config import ConfigError, Settings, load_settings
from config.settings import SETTINGS, describe
from demo.tour import demo_environment, run_tour
from httpapi.listeners import listener_specs
from httpapi.ops_routes import WARNING_SEPARATOR
from observability import multiprocess, systemd
from observability.exporter import start_exporter
from observability.logs import setup_logging
from observability.process_gauges import start_process_gauges
from security.errors import ServerKeyError
from security.keyring_config import key_sources, server_key_ring
from security.log_redaction import install_log_redaction
from storage.bot_leases import holder_id
from storage.database import max_connections
from storage.embedded import Storage
from storage.journal import Journal, OutageIntake
from storage.migrations import migrate
from storage.secret_cache import SecretCache
from storage.subaccounts import shared_count
from supervision import ChildExited, ChildSpec, Link, Ready, Supervisor, start_linked
from venue import cli as venue_cli
from venue.process_venue import ProcessVenue
from venue.profiles import PROFILES

log = logging.getLogger("quantumvault")

EXIT_CONFIG = 2
EXIT_TREE_GAVE_UP = 3
STOP_TIMEOUT_S = 60.0
CLIENT_TIMEOUT_S = 5.0


def admin_token(settings: Settings) -> str:
    """ADMIN_TOKEN, or a token generated once into STATE_DIR/admin_token (mode 0600)."""
    if settings.admin_token:
        return settings.admin_token
    path: Path = settings.state_dir / "admin_token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class StartupError(Exception):
    """The configuration cannot make a daemon (bad venue, missing server key, ...)."""


@contextlib.contextmanager
def assembled(settings: Settings, env: Mapping[str, str], role: ProcessRole = ProcessRole.ALL
              ) -> Iterator[Services]:
    """The parts of one daemon process of `role`: venue (and sandbox child, but in a worker),
    storage, services, leasing bots as its state directory's holder (storage.bot_leases)."""
    try:
        ring = server_key_ring(settings)
        venue = ProcessVenue(settings, env, start_child=role is not ProcessRole.WORKER)
    except (ValueError, ServerKeyError) as exc:
        raise StartupError(str(exc)) from None
    secret_settings = [v for s in SETTINGS if s.secret and (v := settings.values[s.name])]
    install_log_redaction(ring, [admin_token(settings), *secret_settings])
    try:
        venue.log_profile()
        if venue.profile.paused_program is not None:
            log.warning("%s", venue.profile.paused_program.warning(venue.profile.name))
        storage = Storage(settings)
        try:
            migrate(storage.db)
            if shared := shared_count(storage.db):  # migration 0011: later bots of a wallet
                log.warning("%d bot(s) still share a Drift sub-account with an older bot of "
                            "their wallet; run `quantumvault bot migrate-subaccounts`", shared)
            journal = Journal(settings.state_dir / "journal", settings.journal_max_bytes,
                              settings.journal_max_age_s)
            yield Services(settings, storage.db, admin_token(settings), venue.profile, ring,
                           outage=OutageIntake(journal, SecretCache(), storage.revive_server),
                           peer_env=_peer_env(settings, storage.db.dsn, venue),
                           holder=holder_id(settings.state_dir), role=role)
        finally:
            storage.close()
    finally:
        venue.close()


def _peer_env(settings: Settings, dsn: str, venue: ProcessVenue) -> dict[str, str]:
    """What a worker process needs to share this process's database, sandbox and keys."""
    env = {"DATABASE_URL": dsn, "SERVER_KEYS": ",".join(
        f"{key_id}={source}" for key_id, source in key_sources(settings).items())}
    if venue.child is not None:
        env.update(SANDBOX_URL=venue.child.url, RPC_BACKUP_URL=venue.child.backup_rpc_url)
    return env


def tree_kwargs(services: Services, extra: tuple[ChildSpec, ...] = (),
                changes: Mapping[str, ChildSpec | None] | None = None) -> dict[str, Any]:
    """The root supervisor's arguments for this process's role: its actors, its HTTP listeners
    when it serves HTTP, `extra` (a node's worker pool); `changes` swaps children by name."""
    listeners = listener_specs(services) if services.role.serves_http else ()
    return root_kwargs(services, listeners, extra, changes)


def start_tree(services: Services, on_exit: Callable[[ChildExited], None],
               extra: tuple[ChildSpec, ...] = (),
               changes: Mapping[str, ChildSpec | None] | None = None
               ) -> pykka.ActorRef[Any] | None:
    """Start the supervision tree and resume bot backlogs; None if it failed to start (the
    runtime, the demo, the end-to-end tests and the benchmarks all start it here)."""
    root = start_linked(Supervisor, Link("root", on_exit),
                        **tree_kwargs(services, extra, changes))
    services.root = root
    try:
        root.ask(Ready(), timeout=STOP_TIMEOUT_S)
    except pykka.ActorDeadError:
        return None
    resumed = wake_backlogs(services)
    if resumed:
        log.info("resumed the backlog of %d bot(s)", resumed)
    return root


def stop_tree(root: pykka.ActorRef[Any]) -> bool:
    """Stop the tree in reverse start order; False if it did not stop in time."""
    if not root.is_alive():
        return True
    try:
        root.stop(block=True, timeout=STOP_TIMEOUT_S)
    except pykka.Timeout:
        log.error("tree did not stop within %ss", STOP_TIMEOUT_S)
        return False
    return True


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """Hold STATE_DIR/daemon.lock for the daemon's life: a second daemon on the same state
    directory (which would share its bot leases, its journal and its embedded database) is
    refused. The kernel drops the lock when the process dies, kill -9 included."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "daemon.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StartupError(f"another daemon runs with STATE_DIR={state_dir}; one daemon per"
                               " state directory") from None
        yield


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the daemon until SIGTERM/SIGINT (exit 0) or until the tree gives up (exit 3)."""
    role = process_role(args.role, settings.workers)
    pooled = args.role == "all" and role is ProcessRole.INTAKE
    if pooled and not multiprocess.enabled():  # metrics of every process of the node, one scrape
        directory = (settings.state_dir / "metrics").resolve()
        multiprocess.prepare_dir(directory)
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]],
                  {**os.environ, multiprocess.ENV_VAR: str(directory)})
    try:
        with state_dir_lock(settings.state_dir), assembled(settings, os.environ, role) as services:
            extra = (_worker_pool(services),) if pooled else ()
            exporter = None
            if role is not ProcessRole.WORKER or not multiprocess.enabled():
                exporter = start_exporter(settings.webhook_host, settings.metrics_port)
            else:  # a worker of a node: the intake's /metrics reads its files
                start_process_gauges()
            try:
                return _serve(services, extra)
            finally:
                if exporter is not None:
                    exporter.stop(timeout=2.0)
    except StartupError as exc:
        print(f"quantumvault: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _worker_pool(services: Services) -> ChildSpec:
    """The intake's worker processes, their database pools sized to the server's limit."""
    workers, configured = services.settings.workers, services.settings.db_pool_size
    limit = max_connections(services.db)
    size = pool_size(configured, limit, workers)
    log.info("%d worker process(es), %d database connections each (max_connections %d)",
             workers, size, limit)
    if (needed := connections_needed(configured, workers, size)) > limit:
        log.warning("this node may open %d database connections, over max_connections %d: "
                    "lower WORKERS or DB_POOL_SIZE, or raise max_connections", needed, limit)
    specs = worker_specs(services, Path(__file__).resolve(), workers, size)
    return pool_child(services, specs, multiprocess.mark_dead)


def _serve(services: Services, extra: tuple[ChildSpec, ...] = ()) -> int:
    done: AsyncResult = AsyncResult()

    def root_exited(exited: ChildExited) -> None:
        if exited.reason is not None and not done.ready():
            log.error("supervision tree gave up: %r", exited.reason)
            done.set(EXIT_TREE_GAVE_UP)

    root = start_tree(services, root_exited, extra)
    if root is None:
        return done.get(timeout=STOP_TIMEOUT_S)
    gevent.signal_handler(signal.SIGTERM, lambda: done.ready() or done.set(0))
    gevent.signal_handler(signal.SIGINT, lambda: done.ready() or done.set(0))
    systemd.notify("READY=1")
    s = services.settings
    if services.role.serves_http:
        log.info("ready: webhook on %s:%s, admin on %s:%s, metrics on :%s", s.webhook_host,
                 s.webhook_port, s.admin_host, s.admin_port, s.metrics_port)
    else:
        log.info("ready: worker %s", services.holder)
    code = done.get()
    systemd.notify("STOPPING=1")
    if code == 0 and services.role.executes:
        drain_s = services.settings.drain_timeout_s
        log.info("draining: no new work; orders in flight have up to %.0f s", drain_s)
        started = time.monotonic()
        quiesce(services, drain_s)
        log.info("drained in %.1f s", time.monotonic() - started)
    log.info("stopping the supervision tree")
    if not stop_tree(root):
        code = code or EXIT_TREE_GAVE_UP
    log.info("stopped (exit %s)", code)
    return code


def cmd_demo(_: Settings, args: argparse.Namespace) -> int:
    """Run the guided demo on a throw-away daemon with the sandbox (see demo/tour.py)."""
    env = demo_environment(dict(os.environ))
    os.environ.update(env)  # the tour's CLI commands read their settings from it
    settings = load_settings(env)
    setup_logging(settings.log_level)
    with assembled(settings, env) as services:
        root = start_tree(services, lambda _exited: None)
        if root is None:
            print("quantumvault: the supervision tree did not start", file=sys.stderr)
            return EXIT_TREE_GAVE_UP
        try:
            return run_tour(services, main, args.subscribers, print)
        finally:
            stop_tree(root)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    """Apply pending migrations and print what was applied."""
    storage = Storage(settings)
    try:
        applied = migrate(storage.db)
    finally:
        storage.close()
    print(json.dumps({"applied": applied}))
    return 0


def _daemon_url(settings: Settings, path: str) -> str:
    """A URL of the daemon's admin listener (ADMIN_HOST:ADMIN_PORT), where `status` and
    `crash` go; a wildcard address is reached on loopback."""
    host = settings.admin_host
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.admin_port}{path}"


def cmd_status(settings: Settings, _: argparse.Namespace) -> int:
    """Print the daemon's readiness (/readyz) and its supervision tree (admin token); exit 0
    only when it is ready. A degraded venue (program paused, Swift or RPC unreachable: /readyz's
    reason while ready) is also a warning line on stderr."""
    try:
        response = requests.get(_daemon_url(settings, "/readyz"), timeout=CLIENT_TIMEOUT_S)
        tree = requests.get(_daemon_url(settings, "/api/admin/tree"), timeout=CLIENT_TIMEOUT_S,
                            headers={"Authorization": f"Bearer {admin_token(settings)}"})
    except requests.RequestException as exc:
        paused = PROFILES.get(settings.venue)
        if paused is not None and paused.paused_program is not None:
            print(f"quantumvault: warning: {paused.paused_program.warning(paused.name)}",
                  file=sys.stderr)
        print(f"quantumvault: daemon not reachable at {_daemon_url(settings, '')}: "
              f"{type(exc).__name__}", file=sys.stderr)
        return 1
    report = response.json()
    if report.get("ready") and report.get("reason"):
        for warning in report["reason"].split(WARNING_SEPARATOR):
            print(f"quantumvault: warning: {warning}", file=sys.stderr)
    report["tree"] = tree.json() if tree.status_code == 200 else None
    if tree.status_code != 200:
        report["tree_error"] = f"/api/admin/tree answered {tree.status_code}"
    print(json.dumps(report, indent=2))
    return 0 if response.status_code == 200 else 1


def cmd_crash(settings: Settings, args: argparse.Namespace) -> int:
    """Make the named actor (path like bots/NAME) fail inside the running daemon (a drill: the
    daemon must run with CRASH_DRILLS_ENABLED=true, else it answers 403)."""
    url = _daemon_url(settings, f"/api/admin/crash/{args.name.replace('/', ':')}")
    try:
        response = requests.post(url, timeout=CLIENT_TIMEOUT_S, headers={
            "Authorization": f"Bearer {admin_token(settings)}"})
    except requests.RequestException as exc:
        print(f"quantumvault: daemon not reachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(json.dumps(response.json()))
    return 0 if response.status_code == 202 else 1


def build_parser() -> argparse.ArgumentParser:
    """The command line: subcommands, with the environment table as the epilog."""
    parser = argparse.ArgumentParser(
        prog="quantumvault", description=__doc__.splitlines()[0],
        epilog=describe(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon (a node: intake and WORKERS workers)")
    run.add_argument("--role", choices=[r.value for r in ProcessRole], default="all",
                     help="all (default): the intake, supervising WORKERS worker processes (or"
                     " executing itself with WORKERS=0); intake or worker: that part alone")
    run.set_defaults(func=cmd_run)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("status", help="show the running daemon's readiness").set_defaults(
        func=cmd_status)
    crash = sub.add_parser("crash", help="crash drill: make a named actor fail")
    crash.add_argument("name", help="actor path, e.g. health_monitor or bots/<bot-id>")
    crash.set_defaults(func=cmd_crash)
    demo = sub.add_parser("demo", help="guided run: a published bot, subscribers, four alerts")
    demo.add_argument("--subscribers", type=int, default=3, choices=range(1, 21),
                      metavar="N", help="subscriber bots (1..20, default 3)")
    demo.set_defaults(func=cmd_demo)
    sub.add_parser("sandbox", add_help=False,
                   help="run the local exchange sandbox (see `quantumvault sandbox --help`)")
    venue_cli.register(sub)
    operator_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        from sandbox.cli import main as sandbox_main

        return sandbox_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"quantumvault: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level)
    install_log_redaction()
    handler: Any = args.func
    return handler(settings, args)


if __name__ == "__main__":
    sys.exit(main())
