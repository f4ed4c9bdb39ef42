"""Supervisor semantics with real Pykka actors under gevent: every wait is on an event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from gevent.event import Event
from gevent.queue import Empty, Queue

from supervision import (
    Backoff,
    ChildExited,
    ChildSpec,
    ChildStartFailed,
    CrashChild,
    CrashDrill,
    Intensity,
    Link,
    NoSuchChild,
    Restart,
    StartChild,
    Status,
    Strategy,
    SupervisionEscalated,
    Supervisor,
    SupervisorEvent,
    TerminateChild,
    call,
    start_linked,
    whereis,
)
from tests.supervision.actors_for_tests import Echo, FlakyStart

TIMEOUT = 5.0
FAST = Backoff(base_s=0.0)


class Events:
    """Collects supervisor events so tests can wait for a specific one."""

    def __init__(self) -> None:
        self.queue: Queue = Queue()

    def __call__(self, event: SupervisorEvent) -> None:
        self.queue.put(event)

    def wait(self, kind: str, child: str | None = None) -> SupervisorEvent:
        while True:
            try:
                event = self.queue.get(timeout=TIMEOUT)
            except Empty:
                raise AssertionError(f"no {kind} event for {child} within {TIMEOUT}s") from None
            if event.kind == kind and (child is None or event.child == child):
                return event


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    yield
    Echo.journal = None
    pykka.ActorRegistry.stop_all(block=True, timeout=TIMEOUT)


def start(children: list[ChildSpec], **kwargs: Any) -> tuple[pykka.ActorRef, Events]:
    events = Events()
    kwargs.setdefault("backoff", FAST)
    ref = Supervisor.start(children, listener=events, **kwargs)
    ref.ask(Status(), timeout=TIMEOUT)  # on_start (and every child's) has finished
    return ref, events


def urns(sup: pykka.ActorRef, *names: str) -> list[str]:
    return [whereis(sup, name, TIMEOUT).actor_urn for name in names]


def abc() -> list[ChildSpec]:
    return [ChildSpec(n, Echo, kwargs={"tag": n}) for n in ("a", "b", "c")]


def test_one_for_one_restarts_only_the_crashed_child() -> None:
    sup, events = start(abc())
    before = urns(sup, "a", "b", "c")
    whereis(sup, "b", TIMEOUT).tell("raise")
    events.wait("restarted", "b")
    after = urns(sup, "a", "b", "c")
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] != before[1]
    assert call(sup, "b", "hi", TIMEOUT) == ("b", "hi")


def test_one_for_all_restarts_every_child() -> None:
    sup, events = start(abc(), strategy=Strategy.ONE_FOR_ALL)
    before = urns(sup, "a", "b", "c")
    whereis(sup, "b", TIMEOUT).tell("raise")
    for name in ("a", "b", "c"):
        events.wait("restarted", name)
    after = urns(sup, "a", "b", "c")
    assert all(x != y for x, y in zip(before, after, strict=True))


def test_rest_for_one_restarts_the_child_and_those_started_after_it() -> None:
    sup, events = start(abc(), strategy=Strategy.REST_FOR_ONE)
    before = urns(sup, "a", "b", "c")
    whereis(sup, "b", TIMEOUT).tell("raise")
    events.wait("restarted", "b")
    events.wait("restarted", "c")
    after = urns(sup, "a", "b", "c")
    assert after[0] == before[0]
    assert after[1] != before[1] and after[2] != before[2]


def test_children_start_in_order_and_stop_in_reverse() -> None:
    Echo.journal = Queue()
    sup, _ = start(abc())
    sup.stop(block=True, timeout=TIMEOUT)
    seen = [Echo.journal.get(timeout=TIMEOUT) for _ in range(6)]
    assert seen == [("start", "a"), ("start", "b"), ("start", "c"),
                    ("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_permanent_child_is_restarted_after_a_normal_exit() -> None:
    sup, events = start([ChildSpec("p", Echo, restart=Restart.PERMANENT)])
    whereis(sup, "p", TIMEOUT).tell("stop_self")
    assert events.wait("exited", "p").detail == "normal"
    events.wait("restarted", "p")
    assert call(sup, "p", 1, TIMEOUT) == ("", 1)


def test_transient_child_is_restarted_only_after_a_crash() -> None:
    sup, events = start([ChildSpec("t", Echo, restart=Restart.TRANSIENT)])
    whereis(sup, "t", TIMEOUT).tell("raise")
    events.wait("restarted", "t")
    whereis(sup, "t", TIMEOUT).tell("stop_self")
    events.wait("exited", "t")
    assert sup.ask(Status(), timeout=TIMEOUT)["children"]["t"]["state"] == "stopped"
    with pytest.raises(LookupError):
        whereis(sup, "t", TIMEOUT)


def test_temporary_child_is_never_restarted_and_is_forgotten() -> None:
    sup, events = start([ChildSpec("tmp", Echo, restart=Restart.TEMPORARY)])
    whereis(sup, "tmp", TIMEOUT).tell("raise")
    events.wait("exited", "tmp")
    assert "tmp" not in sup.ask(Status(), timeout=TIMEOUT)["children"]


def test_exception_reached_by_ask_reaches_the_caller_and_restarts_the_actor() -> None:
    sup, events = start(abc())
    old = whereis(sup, "a", TIMEOUT)
    with pytest.raises(RuntimeError, match="handler failed"):
        old.ask("raise", timeout=TIMEOUT)
    events.wait("restarted", "a")
    assert not old.is_alive()
    assert call(sup, "a", "again", TIMEOUT) == ("a", "again")


@pytest.mark.parametrize("poison", ["timeout", "greenlet_exit"])
def test_base_exception_in_a_handler_stops_only_that_actor(poison: str) -> None:
    sup, events = start(abc())
    bystander = whereis(sup, "c", TIMEOUT)
    unrelated = Echo.start("outside")
    whereis(sup, "a", TIMEOUT).tell(poison)
    events.wait("restarted", "a")
    assert bystander.is_alive() and unrelated.is_alive()
    assert unrelated.ask("still here", timeout=TIMEOUT) == ("outside", "still here")
    assert whereis(sup, "c", TIMEOUT).actor_urn == bystander.actor_urn


def test_base_exception_reached_by_ask_is_raised_to_the_caller() -> None:
    sup, events = start(abc())
    with pytest.raises(pykka.ActorDeadError.__mro__[1]):  # an Exception, not a BaseException
        whereis(sup, "b", TIMEOUT).ask("timeout", timeout=TIMEOUT)
    events.wait("restarted", "b")


def test_crash_in_on_start_is_retried_until_it_starts() -> None:
    FlakyStart.starts, FlakyStart.failures = 0, 0
    sup, events = start([ChildSpec("flaky", FlakyStart)])
    FlakyStart.failures = FlakyStart.starts + 2  # the next two starts fail
    whereis(sup, "flaky", TIMEOUT).tell(CrashDrill())
    events.wait("restarted", "flaky")
    assert call(sup, "flaky", "?", TIMEOUT) == ("started after", FlakyStart.starts)
    assert sup.ask(Status(), timeout=TIMEOUT)["children"]["flaky"]["restarts"] == 3


def test_a_child_failing_its_first_start_fails_the_supervisor_start() -> None:
    FlakyStart.starts, FlakyStart.failures = 0, 1
    exited: Queue = Queue()
    ref = start_linked(Supervisor, Link("top", exited.put), [ChildSpec("f", FlakyStart)])
    reason = exited.get(timeout=TIMEOUT).reason
    assert type(reason).__name__ == "ChildStartFailed"
    assert not ref.is_alive()


def test_intensity_exceeded_escalates_to_the_parent_which_restarts_the_subtree() -> None:
    child_events = Events()
    inner = ChildSpec("inner", Supervisor, kwargs={
        "children": [ChildSpec("w", Echo)], "backoff": FAST, "listener": child_events,
        "intensity": Intensity(max_restarts=2, period_s=60)})
    outer, outer_events = start([inner])
    inner_ref = whereis(outer, "inner", TIMEOUT)
    for _ in range(2):
        whereis(inner_ref, "w", TIMEOUT).tell("raise")
        child_events.wait("restarted", "w")
    doomed_worker = whereis(inner_ref, "w", TIMEOUT)
    doomed_worker.tell("raise")
    child_events.wait("gave_up", "w")
    assert outer_events.wait("exited", "inner").detail == "SupervisionEscalated"
    outer_events.wait("restarted", "inner")
    assert not doomed_worker.is_alive() and not inner_ref.is_alive()
    new_inner = whereis(outer, "inner", TIMEOUT)
    assert call(new_inner, "w", "fresh", TIMEOUT) == ("", "fresh")


def test_root_giving_up_stops_its_children_and_reports_an_abnormal_exit() -> None:
    exited: Queue = Queue()
    root = start_linked(Supervisor, Link("root", exited.put), abc(), backoff=FAST,
                        intensity=Intensity(max_restarts=0, period_s=60))
    children = [whereis(root, n, TIMEOUT) for n in ("a", "b", "c")]
    children[1].tell("raise")
    report: ChildExited = exited.get(timeout=TIMEOUT)
    assert isinstance(report.reason, SupervisionEscalated)
    assert not any(c.is_alive() for c in children)


def test_backoff_grows_per_consecutive_crash_and_resets_after_a_stable_period() -> None:
    now = [1000.0]
    backoff = Backoff(base_s=0.001, cap_s=1.0, jitter=0.0, stable_s=30.0)
    sup, events = start([ChildSpec("w", Echo)], backoff=backoff, clock=lambda: now[0])
    delays = []
    for _ in range(3):
        whereis(sup, "w", TIMEOUT).tell("raise")
        delays.append(events.wait("restart_scheduled", "w").backoff_s)
        events.wait("restarted", "w")
    now[0] += 31.0  # the child has now run longer than stable_s
    whereis(sup, "w", TIMEOUT).tell("raise")
    delays.append(events.wait("restart_scheduled", "w").backoff_s)
    assert delays == [0.001, 0.002, 0.004, 0.001]


def test_callers_wait_for_a_restarting_child_by_name() -> None:
    sup, events = start([ChildSpec("slow", Echo)], backoff=Backoff(base_s=0.2, jitter=0.0))
    old = whereis(sup, "slow", TIMEOUT)
    old.tell("raise")
    events.wait("restart_scheduled", "slow")
    answer = call(sup, "slow", "after restart", TIMEOUT)  # waits on the restart, not a sleep
    assert answer == ("", "after restart")
    assert whereis(sup, "slow", TIMEOUT).actor_urn != old.actor_urn


def test_a_child_ignoring_stop_is_killed_after_its_stop_timeout() -> None:
    sup, _ = start([ChildSpec("stuck", Echo, stop_timeout=0.2)])
    stuck = whereis(sup, "stuck", TIMEOUT)
    never = Event()
    stuck.tell(never)  # the child now blocks inside a handler
    sup.stop(block=True, timeout=TIMEOUT)
    assert not stuck.is_alive()


def test_children_added_and_removed_at_runtime() -> None:
    sup, _ = start([])
    ref = sup.ask(StartChild(ChildSpec("dyn", Echo, kwargs={"tag": "d"})), timeout=TIMEOUT)
    again = sup.ask(StartChild(ChildSpec("dyn", Echo)), timeout=TIMEOUT)
    assert again.actor_urn == ref.actor_urn  # idempotent by name
    assert call(sup, "dyn", 1, TIMEOUT) == ("d", 1)
    assert sup.ask(TerminateChild("dyn"), timeout=TIMEOUT) is True
    assert not ref.is_alive()
    with pytest.raises(LookupError):
        whereis(sup, "dyn", TIMEOUT)


def test_crash_drill_reaches_a_nested_child_by_path() -> None:
    inner_events = Events()
    inner = ChildSpec("bots", Supervisor, kwargs={
        "children": [ChildSpec("bot-1", Echo)], "backoff": FAST, "listener": inner_events})
    root, _ = start([inner])
    bots = whereis(root, "bots", TIMEOUT)
    old = whereis(bots, "bot-1", TIMEOUT)
    root.ask(CrashChild("bots/bot-1"), timeout=TIMEOUT)
    inner_events.wait("restarted", "bot-1")
    assert whereis(bots, "bot-1", TIMEOUT).actor_urn != old.actor_urn
    with pytest.raises(NoSuchChild):
        root.ask(CrashChild("bots/nope"), timeout=TIMEOUT)
    assert bots.is_alive()


def test_asking_for_an_unknown_child_is_refused_without_crashing_the_supervisor() -> None:
    sup, events = start(abc())
    with pytest.raises(NoSuchChild):
        whereis(sup, "missing", TIMEOUT)
    with pytest.raises(NoSuchChild):
        sup.ask(CrashChild("a/deeper"), timeout=TIMEOUT)
    assert sup.is_alive()
    assert events.queue.empty()  # nothing exited, nothing restarted
    assert call(sup, "a", "ok", TIMEOUT) == ("a", "ok")


def test_a_dynamic_child_failing_its_start_is_refused_and_not_restarted() -> None:
    FlakyStart.starts, FlakyStart.failures = 0, 1
    sup, events = start([ChildSpec("steady", Echo)])
    with pytest.raises(ChildStartFailed):
        sup.ask(StartChild(ChildSpec("flaky", FlakyStart)), timeout=TIMEOUT)
    assert sup.is_alive() and "flaky" not in sup.ask(Status(), timeout=TIMEOUT)["children"]
    ref = sup.ask(StartChild(ChildSpec("flaky", FlakyStart)), timeout=TIMEOUT)  # works now
    assert ref.ask("?", timeout=TIMEOUT) == ("started after", 2)
    assert all(e.kind != "restart_scheduled" for e in list(events.queue.queue))
