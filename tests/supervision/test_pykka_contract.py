"""The Pykka internals supervision/ overrides and calls, pinned so an upgrade fails here, loudly.

`SupervisedActor` overrides `_handle_receive`, `_handle_failure` and `_actor_loop`, calls
`_actor_loop_teardown`, and relies on Pykka's loop calling those overrides (a failure reached by
`tell` and one in `on_start` go to `_handle_failure`; the thread runs `_actor_loop`). None of
that is Pykka's public API: a new Pykka must be read against supervision/supervised_actor.py
before the pin in setup.cfg moves.
"""

from __future__ import annotations

import importlib.metadata
import inspect

import pykka
import pytest

from supervision.supervised_actor import SupervisedActor
from tests.setup_cfg import pinned_version

PYKKA_INTERNALS = {
    "_handle_receive": ["self", "message"],
    "_handle_failure": ["self", "exception_type", "exception_value", "traceback"],
    "_actor_loop": ["self"],
    "_actor_loop_setup": ["self"],
    "_actor_loop_running": ["self"],
    "_actor_loop_teardown": ["self"],
    "_start_actor_loop": ["self"],
}
OVERRIDDEN = ("_handle_receive", "_handle_failure", "_actor_loop")
# (Pykka method, what its source must call): how Pykka reaches the overrides
CALLS = [
    ("_actor_loop", "self._actor_loop_setup()"),
    ("_actor_loop", "self._actor_loop_running()"),
    ("_actor_loop", "self._actor_loop_teardown()"),
    ("_actor_loop_setup", "self._handle_failure(*sys.exc_info())"),
    ("_actor_loop_running", "self._handle_receive(envelope.message)"),
    ("_actor_loop_running", "self._handle_failure(*sys.exc_info())"),
    ("_start_actor_loop", "target=self._actor_loop"),
]


def test_the_installed_pykka_is_the_pinned_one() -> None:
    # the version these internals were read against: a new pin is read again, here too
    assert importlib.metadata.version("pykka") == pinned_version("pykka") == "4.5.0"


@pytest.mark.parametrize(("name", "parameters"), sorted(PYKKA_INTERNALS.items()))
def test_the_internals_keep_their_signatures(name: str, parameters: list[str]) -> None:
    method = getattr(pykka.ThreadingActor, name)
    assert list(inspect.signature(method).parameters) == parameters


@pytest.mark.parametrize("name", OVERRIDDEN)
def test_the_overrides_match_what_they_override(name: str) -> None:
    ours, theirs = getattr(SupervisedActor, name), getattr(pykka.ThreadingActor, name)
    assert ours is not theirs
    assert list(inspect.signature(ours).parameters) == list(inspect.signature(theirs).parameters)


@pytest.mark.parametrize(("name", "call"), CALLS)
def test_pykkas_loop_still_reaches_the_overrides(name: str, call: str) -> None:
    assert call in inspect.getsource(getattr(pykka.ThreadingActor, name))


def test_the_actor_attributes_supervision_reads_exist() -> None:
    annotated = inspect.get_annotations(pykka.Actor)
    assert {"actor_urn", "actor_inbox", "actor_stopped"} <= annotated.keys()
    assert isinstance(inspect.getattr_static(pykka.Actor, "actor_ref"), property)
    assert pykka.ThreadingActor.use_daemon_thread is False  # a class attribute we override
