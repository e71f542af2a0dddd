"""Drive a simulated node from the wall clock, real time or accelerated."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

from .node import SimulatedNode

Action = tuple[float, Callable[[SimulatedNode], None]]  # (virtual time, what the node does then)


def run(
    node: SimulatedNode,
    *,
    speed: float = 1.0,
    duration_s: float | None = None,
    actions: Sequence[Action] = (),
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], bool] | None = None,
    on_tick: Callable[[float], None] | None = None,
    max_wait_s: float = 0.25,
) -> float:
    """Advance `node` so that virtual time = start + elapsed wall time × speed, until `duration_s` of virtual
    time has passed or `wait` reports a stop; returns the final virtual time.

    `wait(seconds)` blocks up to that long and returns True to stop (default: never stops early); the CLI
    passes a `threading.Event.wait` set by Ctrl-C. `actions` run at their virtual times (e.g. a node restart).
    """
    if node.now is None:
        raise RuntimeError("start the node's first folder before running it")
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    wait = wait or threading.Event().wait
    start_virtual, start_wall = node.now, clock()
    end = start_virtual + duration_s if duration_s is not None else math.inf
    pending = sorted(actions, key=lambda action: action[0])
    while True:
        target = min(start_virtual + (clock() - start_wall) * speed, end)
        while pending and pending[0][0] <= target:
            at, act = pending.pop(0)
            node.advance_to(max(at, node.now))
            act(node)
        node.advance_to(max(target, node.now))
        if on_tick:
            on_tick(node.now)
        if node.now >= end:
            return node.now
        upcoming = min(node.next_event_time() or math.inf, pending[0][0] if pending else math.inf, end)
        # Sleep until the next publication is due, but wake regularly so progress shows and Ctrl-C is prompt.
        delay = (upcoming - start_virtual) / speed - (clock() - start_wall)
        if wait(min(max_wait_s, max(0.0, delay))):
            return node.now
