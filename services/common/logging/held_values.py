"""The registry of exact restricted values to scrub from log text while they are in use.

Intake holds a request's decrypted restricted values here while it handles them; the
log scrubber (redaction.py `scrub_text`) reads what is held at each line.
"""

from __future__ import annotations

import bisect
import string
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["NOTHING_HELD", "PLAIN_CHARACTERS", "Held", "PendingGroup", "SensitiveValues"]


# Characters of what most log strings are made of: ids, timestamps, event, logger and
# route names, states. A held value with any other character (a space, "@", "+", an
# accent: most names, addresses and e-mail addresses) cannot be inside a string made of
# these alone, so such a string is searched for the few held values made of them only.
PLAIN_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:/")


class Held(NamedTuple):
    """What the registry holds at one moment; swapped whole, so a reader sees one state."""

    values: tuple[str, ...]  # longest first: the order they are replaced in
    plain: tuple[str, ...]  # those made of `PLAIN_CHARACTERS` only


NOTHING_HELD = Held((), ())


class PendingGroup(NamedTuple):
    """Values one holder holds (`SensitiveValues.hold`) and not yet folded into `held`."""

    values: tuple[str, ...]
    plain: tuple[str, ...]  # those made of `PLAIN_CHARACTERS` only


# A holder that never releases must not grow the pending groups without end: past this
# many they are folded into the bounded registry.
_MAX_PENDING_GROUPS = 1024


class SensitiveValues:
    """A bounded, reference-counted registry of exact values to scrub from text.

    Intake registers decrypted restricted values while it handles them. Counting
    references keeps a value registered while two requests handle it at once; the
    LRU bound keeps a leak of forgotten registrations from growing without end.

    The values stay in order, longest first, as they come and go (a binary search by
    length, then a list insert or delete): a request registers and forgets about ten,
    and with a few hundred held by concurrent requests, sorting them all again at each
    change was ~0.2 ms a request. Those made of plain characters only are kept apart
    too (see `scrub_text`). A block's values (`hold`) wait aside as one group until a
    line may hold one of them (`folded`): most blocks end before any line is written.
    """

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        # `_ordered` longest first; `_keys` its values' negated lengths (ascending, for
        # `bisect`); `_plain` the plain ones, in the order they came. Readers take
        # `held` without the lock: swapping one reference is atomic.
        self._ordered: list[str] = []
        self._keys: list[int] = []
        self._plain: dict[str, None] = {}
        self._plain_changed = False
        self.held: Held = NOTHING_HELD
        # `hold`'s groups not yet folded into `held` (see there); `pending` their values,
        # swapped whole like `held`; `_folded` the tokens of groups folded since.
        self._pending: dict[int, PendingGroup] = {}
        self._folded: dict[int, tuple[str, ...]] = {}
        self._next_token = 0
        self.pending: tuple[PendingGroup, ...] = ()

    @property
    def snapshot(self) -> tuple[str, ...]:
        """The held values, longest first."""
        return self.held.values

    def register(self, value: str) -> None:
        self.register_all((value,))

    def forget(self, value: str) -> None:
        self.forget_all((value,))

    def forget_all(self, values: Iterable[str]) -> None:
        """Drop one hold on each of `values`; what readers see changes once, at the end."""
        with self._lock:
            removed = False
            for value in values:
                count = self._counts.get(value)
                if count is None:
                    continue
                if count > 1:
                    self._counts[value] = count - 1
                    continue
                del self._counts[value]
                self._remove(value)
                removed = True
            if removed:
                self._publish()

    def hold(self, values: Iterable[str]) -> int:
        """Hold `values` until `release(token)`; the token is returned.

        A request's values are held while it runs and released when it is answered, and
        most requests write no log line in between (their line comes after): so they are
        kept aside as one group, two dictionary operations, and folded into the sorted
        registry (`register_all`'s work) only when a line may need them (`folded`).
        """
        group = tuple(values)
        pending = PendingGroup(group, tuple(v for v in group if PLAIN_CHARACTERS.issuperset(v)))
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._pending[token] = pending
            self.pending = tuple(self._pending.values())
            if len(self._pending) > _MAX_PENDING_GROUPS:
                self._fold()
        return token

    def release(self, token: int) -> None:
        """Drop the hold `hold` returned `token` for (values still held by others stay)."""
        with self._lock:
            if self._pending.pop(token, None) is not None:
                self.pending = tuple(self._pending.values())
                return
            values = self._folded.pop(token, None)
        if values is not None:
            self.forget_all(values)

    def folded(self) -> Held:
        """`held` with every pending group folded in: what a line's values are replaced by."""
        if self.pending:
            with self._lock:
                self._fold()
        return self.held

    def _fold(self) -> None:
        # `held` with the groups is published before `pending` loses them: a reader
        # without the lock (another thread's line) reads `pending`, then `held`, and so
        # finds every group in one or the other.
        for token, group in self._pending.items():
            self._folded[token] = group.values
            self._register_locked(group.values)
        self._pending = {}
        self.pending = ()

    def register_all(self, values: Iterable[str]) -> None:
        """Hold each of `values` once more; what readers see changes once, at the end."""
        with self._lock:
            self._register_locked(values)

    def _register_locked(self, values: Iterable[str]) -> None:
        added = False
        for value in values:
            count = self._counts.get(value, 0)
            self._counts[value] = count + 1
            self._counts.move_to_end(value)
            if not count:
                self._insert(value)
                added = True
        if not added:
            return
        while len(self._counts) > self._max_entries:
            oldest, _count = self._counts.popitem(last=False)
            self._remove(oldest)
        self._publish()

    def _publish(self) -> None:
        plain = self.held.plain
        if self._plain_changed:  # the plain ones are few, and most changes leave them be
            plain = tuple(self._plain)
            self._plain_changed = False
        self.held = Held(tuple(self._ordered), plain)

    def _insert(self, value: str) -> None:
        at = bisect.bisect_right(self._keys, -len(value))
        self._keys.insert(at, -len(value))
        self._ordered.insert(at, value)
        if PLAIN_CHARACTERS.issuperset(value):
            self._plain[value] = None
            self._plain_changed = True

    def _remove(self, value: str) -> None:
        start = bisect.bisect_left(self._keys, -len(value))
        at = self._ordered.index(value, start)
        del self._keys[at]
        del self._ordered[at]
        if value in self._plain:
            del self._plain[value]
            self._plain_changed = True
