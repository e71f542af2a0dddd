from __future__ import annotations

from collections.abc import Callable

import pytest
from hydrophone_worker.sim.clock import run
from hydrophone_worker.sim.node import SimulatedNode

from .conftest import EPOCH

SEGMENT = 94 * 1024 / 48_000  # segment_s=2.0 -> 2.005333 s


class FakeWall:
    """A wall clock that moves only when the driver waits: the run is exact and instant."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.stop_after = stop_after

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        assert len(self.waits) < 500, "the driver is spinning"
        self.waits.append(seconds)
        self.now += seconds
        return self.stop_after is not None and len(self.waits) >= self.stop_after


def test_accelerated_run_publishes_what_the_virtual_time_allows(
    make_node: Callable[..., SimulatedNode],
) -> None:
    node = make_node(segment_s=2.0)
    node.start_folder(EPOCH)
    wall = FakeWall()
    ticks: list[float] = []
    end = run(node, speed=10, duration_s=12, clock=wall.clock, wait=wall.wait, on_tick=ticks.append)
    assert end == node.now == EPOCH + 12
    assert wall.now - 1000.0 == pytest.approx(1.2)  # 12 s of stream in 1.2 s of wall time
    assert [s.end - EPOCH for s in node.truth().segments] == pytest.approx(
        [2 + SEGMENT * k for k in (1, 2, 3, 4)]
    )
    assert max(wall.waits) <= 0.25 and ticks == sorted(ticks)


def test_actions_run_at_their_virtual_time(make_node: Callable[..., SimulatedNode]) -> None:
    node = make_node(segment_s=2.0)
    node.start_folder(EPOCH)
    wall = FakeWall()
    seen: list[float] = []

    def restart(n: SimulatedNode) -> None:
        seen.append(n.now or 0.0)
        n.restart(EPOCH + 10)

    run(node, speed=50, duration_s=15, actions=[(EPOCH + 7.0, restart)], clock=wall.clock, wait=wall.wait)
    assert seen == [EPOCH + 7.0]
    assert node.current_folder == EPOCH + 10
    assert [span.reason for span in node.truth().lost] == ["stream-restart"]


def test_a_stop_request_ends_the_run_early(make_node: Callable[..., SimulatedNode]) -> None:
    node = make_node(segment_s=2.0)
    node.start_folder(EPOCH)
    wall = FakeWall(stop_after=3)
    end = run(node, speed=1, clock=wall.clock, wait=wall.wait)
    assert len(wall.waits) == 3
    assert end - EPOCH == pytest.approx(0.5)  # the third wait was interrupted: no further publishing


def test_bad_run_arguments(make_node: Callable[..., SimulatedNode]) -> None:
    node = make_node()
    with pytest.raises(RuntimeError, match="start the node"):
        run(node)
    node.start_folder(EPOCH)
    with pytest.raises(ValueError, match="speed must be > 0"):
        run(node, speed=0)
    with pytest.raises(ValueError, match="duration_s must be > 0"):
        run(node, duration_s=-1)
