"""The five resilience measurements (kill, drain, pg-restart, outage, ack) and their table row.

bench/resilience_bench.py says what each measures and runs them; this module is imported by it
after it has put the repository root on sys.path and patched gevent.
"""

import argparse
import contextlib
import random
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gevent
import requests
from resilience_lab import DEFAULTS, Bot, Lab, fills_per_bot, restart, running, wait_until
from resilience_load import Db, Stream, post

from storage.signals import FINAL_STATUSES
from tests.daemon import Daemon


@dataclass
class Row:
    """One line of the final table."""

    measure: str
    n: str
    result: str


def pct(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def fmt_s(value: float | None) -> str:
    """Seconds, readable ('-' for none)."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


@contextlib.contextmanager
def with_bots(lab: Lab, n: int) -> Iterator[tuple[Db, dict[str, str], list[Daemon], list[Bot]]]:
    """A fresh database and its daemon environment, a daemon on it (daemons[0]; it and any
    started within are stopped at the end) and `n` bots provisioned through it."""
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    with running(lab, env) as daemons:
        yield db, env, daemons, lab.bots(daemons[0], n)


# --- 1. kill -9 during a fan-out ---------------------------------------------------------------


def measure_kill(lab: Lab, args: argparse.Namespace) -> Row:
    """SIGKILL within a fan-out, restart, count each bot's fills: lost / doubled."""
    rng = random.Random(args.seed)
    url = lab.pg.database()
    db, env = Db(url), lab.env(url)
    lost = doubled = 0
    settle: list[float] = []
    outcomes: Counter[str] = Counter()
    trades: Counter[str] = Counter()
    env["RETRY_LEASE_S"] = str(args.kill_retry_lease_s)
    with running(lab, env) as daemons:
        source, subs = lab.fleet(daemons[-1], args.subscribers)
        bots = [source, *subs]
        for trial in range(args.kill_trials):
            delay = rng.uniform(0, args.kill_max_delay_s)
            since = time.time()
            answer = post(daemons[-1], [source], 0, f"kill{trial}")
            if answer.status != 202:
                raise RuntimeError(f"trial {trial}: alert answered {answer.status}")
            gevent.sleep(delay)
            daemons[-1].kill()
            killed = time.monotonic()
            daemons.append(restart(lab, env, daemons[-1]))
            signal_id = str(answer.body["signal_id"])
            family = wait_until(lambda s=signal_id: db.family_settled(s, len(bots)),
                                "every signal of the trial final", args.wait_s)
            settle.append(time.monotonic() - killed)
            gevent.sleep(args.grace_s)  # a late fill of an order sent twice would show now
            fills = fills_per_bot(lab, bots, since)
            lost += sum(1 for f in fills if f == 0)
            doubled += sum(1 for f in fills if f > 1)
            outcomes.update(family.values())
            print(f"  kill trial {trial + 1}: SIGKILL {delay * 1000:.0f} ms after the 202;"
                  f" fills per bot {fills}; signals {dict(Counter(family.values()))},"
                  f" trade rows {dict(db.last_trades)};"
                  f" kill -> restarted and all final {fmt_s(settle[-1])}", flush=True)
            trades.update(db.last_trades)
            for d in daemons[:-1]:
                d.notify.close()
            del daemons[:-1]
    trials = args.kill_trials
    return Row("kill -9 within a fan-out, restart on the same STATE_DIR",
               f"{trials} trials x {len(bots)} bots",
               f"lost {lost}, doubled {doubled} (of {trials * len(bots)} bot orders);"
               f" signals {dict(outcomes)}, trade rows {dict(trades)}; kill -> all final and"
               f" reconciled (RETRY_LEASE_S={args.kill_retry_lease_s:g}): median"
               f" {fmt_s(statistics.median(settle))}, max {fmt_s(max(settle))}")


# --- 2. drain on SIGTERM under load ------------------------------------------------------------


def measure_drain(lab: Lab, args: argparse.Namespace) -> Row:
    """SIGTERM under a paced alert stream: time to exit, the drained-in line, non-202s."""
    with with_bots(lab, args.drain_bots) as (db, env, daemons, bots):
        first = daemons[0]
        since = time.time()
        stream = Stream(first, bots, args.drain_rate, "drain")
        gevent.sleep(args.drain_after_s)
        assert first.process is not None
        terminated = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = first.process.wait(timeout=DEFAULTS_DRAIN_S + 60)
        exited = time.monotonic()
        answers = stream.stop()
        match = re.search(r"drained in ([\d.]+) s", first.log())
        during = [a for a in answers if terminated <= a.sent < exited]
        answered = [a for a in during if a.status is not None]
        not_202 = sum(1 for a in answered if a.status != 202)
        unanswered = len(during) - len(answered)
        before = [a for a in answers if a.sent < terminated]
        accepted = [a for a in answers if a.status == 202]
        daemons.append(restart(lab, env, first))
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        gevent.sleep(args.grace_s)
        per_bot = Counter(a.bot for a in accepted)
        fills = fills_per_bot(lab, bots, since)
        mismatched = sum(1 for i, f in enumerate(fills) if f != per_bot[i])
        done = sum(1 for s in final.values() if s == "done")
    errors = Counter(a.error for a in during if a.status is None)
    unanswered_from = min((a.sent - terminated for a in during if a.status is None),
                          default=None)
    print(f"    per bot accepted {[per_bot[i] for i in range(len(bots))]}, fills {fills};"
          f" no answer: {dict(errors)}, the first sent {fmt_s(unanswered_from)} after SIGTERM"
          f" (the process exited {fmt_s(exited - terminated)} after it)", flush=True)
    print(f"  drain: {len(before)} alerts sent before SIGTERM, {len(during)} during the drain"
          f" ({len(answered)} answered, {not_202} not 202, {unanswered} without an answer);"
          f" exit status {code}; after the restart {done}/{len(accepted)} accepted alerts done,"
          f" {mismatched} bots whose fills differ from their accepted alerts", flush=True)
    drained = f"{float(match.group(1)):.1f} s" if match else "no line"
    return Row(f"SIGTERM under {args.drain_rate:g} alerts/s ({args.drain_bots} bots, after"
               f" {args.drain_after_s:g} s)", f"{len(answers)} alerts",
               f"SIGTERM -> exit {fmt_s(exited - terminated)} (exit {code}; log: drained in"
               f" {drained}); during the drain {len(answered)} answered, {not_202} not 202,"
               f" {unanswered} unanswered; after restart {done}/{len(accepted)} done,"
               f" {mismatched} bots with fills != accepted")


DEFAULTS_DRAIN_S = float(DEFAULTS["DRAIN_TIMEOUT_S"])


# --- 3. time to ready after a PostgreSQL restart -----------------------------------------------


def ready(daemon: Daemon) -> int:
    """/readyz status (0 when it does not answer)."""
    try:
        return daemon.get("/readyz").status_code
    except requests.RequestException:
        return 0


def measure_pg_restart(lab: Lab, args: argparse.Namespace) -> Row:
    """Stop PostgreSQL, start it, time from the start command to /readyz 200."""
    url = lab.pg.database()
    env = lab.env(url)
    up: list[float] = []
    to_ready: list[float] = []
    with running(lab, env) as daemons:
        daemon = daemons[0]
        wait_until(lambda: ready(daemon) == 200, "ready before the first restart", args.wait_s)
        for trial in range(args.pg_restarts):
            lab.pg.stop()
            wait_until(lambda: ready(daemon) == 503, "/readyz 503 with PostgreSQL down",
                       args.wait_s)
            started = time.monotonic()
            lab.pg.start()
            up.append(time.monotonic() - started)
            wait_until(lambda: ready(daemon) == 200, "/readyz 200 again", args.wait_s)
            to_ready.append(time.monotonic() - started)
            print(f"  PostgreSQL restart {trial + 1}: start command -> accepting"
                  f" {fmt_s(up[-1])}, -> /readyz 200 {fmt_s(to_ready[-1])}", flush=True)
    return Row("PostgreSQL restart (pg_ctl stop -m fast, start): start -> /readyz 200",
               f"{len(to_ready)} restarts",
               f"median {fmt_s(statistics.median(to_ready))}, max {fmt_s(max(to_ready))}"
               f" (PostgreSQL itself accepting after {fmt_s(statistics.median(up))})")


# --- 4. a database outage ---------------------------------------------------------------------


def measure_outage(lab: Lab, args: argparse.Namespace) -> Row:
    """PostgreSQL down for --outage-s while alerts arrive: journaled, then executed."""
    with with_bots(lab, args.outage_bots) as (db, _env, daemons, bots):
        daemon = daemons[0]
        warm = [post(daemon, bots, i, "outage-warm") for i in range(len(bots))]
        db.wait_final([a.body["signal_id"] for a in warm], args.wait_s)
        since = time.time()
        lab.pg.stop()
        stopped = time.monotonic()
        stream = Stream(daemon, bots, args.outage_rate, "outage")
        gevent.sleep(max(0.0, stopped + args.outage_s - time.monotonic()))
        answers = stream.stop()
        lab.pg.start()
        back = time.monotonic()
        kinds = Counter(
            "202 journal" if a.status == 202 and a.body.get("queued") == "journal"
            else f"202 {a.body.get('status')}" if a.status == 202
            else "no answer" if a.status is None else str(a.status) for a in answers)
        accepted = [a for a in answers if a.status == 202]
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        executed = time.monotonic() - back
        gevent.sleep(args.grace_s)
        per_bot = Counter(a.bot for a in accepted)
        fills = fills_per_bot(lab, bots, since)
        fills_ok = sum(min(f, per_bot[i]) for i, f in enumerate(fills))
        extra = sum(max(0, f - per_bot[i]) for i, f in enumerate(fills))
        done = sum(1 for s in final.values() if s == "done")
        acks = [a.latency for a in answers if a.latency is not None]
    print(f"  outage: answers {dict(kinds)}; ack p50 {fmt_s(pct(acks, 50))}, p99"
          f" {fmt_s(pct(acks, 99))}; start -> all final {fmt_s(executed)};"
          f" statuses {dict(Counter(final.values()))}; fills per bot {fills}", flush=True)
    other = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()) if k != "202 journal")
    return Row(f"PostgreSQL down {args.outage_s:g} s, alerts at {args.outage_rate:g}/s",
               f"{len(answers)} sent",
               f"202 journal {kinds['202 journal']}; other answers: {other or 'none'};"
               f" done {done}/{len(accepted)}, filled once {fills_ok}, extra fills {extra};"
               f" start -> all final {fmt_s(executed)}")


# --- 5. webhook ack latency under load -------------------------------------------------------


def measure_ack(lab: Lab, args: argparse.Namespace) -> Row:
    """Client-side ack latency of alerts paced at --ack-rate while they execute."""
    with with_bots(lab, args.ack_bots) as (db, _env, daemons, bots):
        daemon = daemons[0]
        for _ in range(2):  # warm-up: every bot actor started, every account read once
            warm = [post(daemon, bots, i, "ack-warm") for i in range(len(bots))]
            db.wait_final([a.body["signal_id"] for a in warm], args.wait_s)
        stream = Stream(daemon, bots, args.ack_rate, "ack", limit=round(args.ack_rate * args.ack_s))
        answers = stream.finish()
        last = time.monotonic()
        accepted = [a for a in answers if a.status == 202]
        final = db.wait_final([a.body["signal_id"] for a in accepted], args.wait_s)
        final_in = time.monotonic() - last
    acks = [a.latency for a in answers if a.latency is not None]
    statuses = Counter(a.status for a in answers)
    done = sum(1 for s in final.values() if s in FINAL_STATUSES)
    print(f"  ack: statuses {dict(statuses)}; p50 {fmt_s(pct(acks, 50))}, p99"
          f" {fmt_s(pct(acks, 99))}, max {fmt_s(max(acks, default=None))}; final"
          f" {done}/{len(accepted)} ({dict(Counter(final.values()))}) {fmt_s(final_in)} after"
          " the last send", flush=True)
    return Row(f"webhook ack at {args.ack_rate:g} alerts/s for {args.ack_s:g} s"
               f" ({args.ack_bots} bots)", f"{len(answers)} alerts",
               f"p50 {fmt_s(pct(acks, 50))}, p99 {fmt_s(pct(acks, 99))}, max"
               f" {fmt_s(max(acks, default=None))}; 202: {statuses[202]}; final {done}/"
               f"{len(accepted)} {fmt_s(final_in)} after the last send")


MEASURES: dict[str, Callable[[Lab, argparse.Namespace], Row]] = {
    "kill": measure_kill, "drain": measure_drain, "pg-restart": measure_pg_restart,
    "outage": measure_outage, "ack": measure_ack}
