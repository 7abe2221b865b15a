"""The local service's clock: manual steps fire what falls due, in order, each at its own
time and awaited; cancelled timers do nothing; real mode fires on its own."""

from __future__ import annotations

import asyncio

import pytest
from bspec.localbatch.clock import Clock


def test_manual_steps_fire_due_timers_in_order_at_their_time() -> None:
    async def scenario() -> list[tuple[str, float]]:
        clock = Clock("manual", start=1000.0)
        await clock.start()
        seen: list[tuple[str, float]] = []

        async def slow(name: str) -> None:
            await asyncio.sleep(0.01)  # awaited before the next timer fires
            seen.append((name, clock.time()))

        clock.after(60, lambda: slow("b"))
        clock.after(30, lambda: seen.append(("a", clock.time())))
        clock.after(600, lambda: seen.append(("late", clock.time())))
        clock.after(45, lambda: seen.append(("cancelled", clock.time()))).cancel()
        await clock.advance(59)
        assert seen == [("a", 1030.0)] and clock.time() == 1059.0
        await clock.advance(1)
        assert clock.to_json()["pendingTimers"] == 1
        clock.after(0, lambda: seen.append(("now", clock.time())))
        await asyncio.sleep(0.05)  # due at once: fired without a step
        await clock.stop()
        return seen

    assert asyncio.run(scenario()) == [("a", 1030.0), ("b", 1060.0), ("now", 1060.0)]


def test_real_mode_fires_by_itself_and_refuses_steps() -> None:
    async def scenario() -> bool:
        clock = Clock("real")
        await clock.start()
        fired = asyncio.Event()
        clock.after(0.02, fired.set)
        await asyncio.wait_for(fired.wait(), 5)
        with pytest.raises(RuntimeError):
            await clock.advance(1)
        await clock.stop()
        return fired.is_set()

    assert asyncio.run(scenario())


def test_unknown_mode() -> None:
    with pytest.raises(ValueError):
        Clock("fast")
