"""Coalesced: one call serves every caller that arrived while the previous call was in flight.

A DataLoader-style batcher for the greenlets of one hub (no locks, no timer), kept in this
bottom layer so that actors and storage alike can batch statements or reads with it: a caller
alone when all is idle, batches under a burst.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import gevent
from gevent.event import AsyncResult

T = TypeVar("T")
R = TypeVar("R")


class Coalesced(Generic[T, R]):
    """`run` takes a batch of at most `most` items and answers each in order; a caller waits
    for the call its item went in and gets that call's answer for it, or its error. With
    `key`, a batch holds at most one item per key (a statement that matches its answers to
    its items by key); a second item of the same key waits for a later call."""

    def __init__(self, run: Callable[[list[T]], list[R]], most: int,
                 key: Callable[[T], Hashable] | None = None) -> None:
        self._run = run
        self._most = most
        self._key = key
        self._waiting: list[tuple[T, AsyncResult]] = []
        self._running = False

    def __call__(self, item: T) -> R:
        done = AsyncResult()
        self._waiting.append((item, done))
        if not self._running:
            self._running = True
            gevent.spawn(self._drain)
        return done.get()

    def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._next_batch()
                try:
                    answers = self._run([item for item, _ in batch])
                except BaseException as exc:
                    if not isinstance(exc, Exception):  # the drain is killed: nobody is left
                        batch += self._waiting  # to serve those who came meanwhile
                        self._waiting.clear()
                    for _, done in batch:
                        done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, done), answer in zip(batch, answers, strict=True):
                    done.set(answer)
        finally:
            self._running = False

    def _next_batch(self) -> list[tuple[T, AsyncResult]]:
        """The oldest waiting items, at most `most`, and one per key; the rest keep waiting
        in their order."""
        if self._key is None:
            batch = self._waiting[:self._most]
            del self._waiting[:self._most]
            return batch
        batch, rest, keys = [], [], set()
        for entry in self._waiting:
            key = self._key(entry[0])
            if len(batch) < self._most and key not in keys:
                keys.add(key)
                batch.append(entry)
            else:
                rest.append(entry)
        self._waiting[:] = rest
        return batch
