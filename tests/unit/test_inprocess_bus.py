from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from bus_contract import BusContract, Channel, Delivered
from polling import wait_until
from workflow.adapters.embedded.inprocess_bus import InProcessBus
from workflow.errors import PoisonMessage, TransientError
from workflow.model.messages import DispatchStep, Message


def test_delivers_every_message_from_many_workers() -> None:
    got: list[str] = []
    lock = threading.Lock()

    def handler(msg: Message) -> None:
        with lock:
            got.append(msg.step_id)  # type: ignore[union-attr]

    bus = InProcessBus(workers=4).start(handler)
    try:
        bus.publish([DispatchStep("r", f"s{i}") for i in range(500)])
        wait_until(lambda: len(got) == 500 and bus.idle(), 10, "the bus to deliver")
        assert sorted(got) == sorted(f"s{i}" for i in range(500))
    finally:
        bus.close()


def test_delayed_message_waits_its_delay() -> None:
    seen: dict[str, float] = {}
    order: list[str] = []

    def handler(msg: Message) -> None:
        seen[msg.step_id] = time.monotonic()  # type: ignore[union-attr]
        order.append(msg.step_id)  # type: ignore[union-attr]

    bus = InProcessBus(workers=2).start(handler)
    try:
        t0 = time.monotonic()
        bus.publish([DispatchStep("r", "late")], delay=0.3)
        bus.publish([DispatchStep("r", "now")])
        wait_until(lambda: "late" in seen, 10, "the bus to deliver")
        assert order == ["now", "late"] and seen["late"] - t0 >= 0.3  # never early
    finally:
        bus.close()


def test_transient_error_is_retried_then_dead_lettered_and_poison_dropped() -> None:
    attempts: dict[str, int] = {}

    def handler(msg: Message) -> None:
        sid = msg.step_id  # type: ignore[union-attr]
        attempts[sid] = attempts.get(sid, 0) + 1
        if sid == "poison":
            raise PoisonMessage("bad")
        if sid == "flaky" and attempts[sid] < 3:
            raise TransientError("later")
        if sid == "broken":
            raise RuntimeError("bug")

    bus = InProcessBus(workers=2, max_attempts=4, backoff=0.01).start(handler)
    try:
        bus.publish([DispatchStep("r", s) for s in ("poison", "flaky", "broken")])
        wait_until(lambda: bus.idle() and attempts.get("broken") == 4, 10, "the bus to deliver")
        assert attempts == {"poison": 1, "flaky": 3, "broken": 4}
        assert [m.step_id for m, _ in bus.dead_letters] == ["broken"]  # type: ignore[union-attr]
        assert "RuntimeError: bug" in bus.dead_letters[0][1]
    finally:
        bus.close()


def test_handlers_take_turns_but_network_waits_overlap() -> None:
    bus = InProcessBus(workers=4)
    together = threading.Barrier(3, timeout=10)  # broken unless three waits overlap
    active, most, done = [0], [0], []

    def handler(msg: Message) -> None:
        sid = msg.step_id  # type: ignore[union-attr]
        if sid.startswith("net"):
            with bus.waiting():
                together.wait()
        else:  # stands for CPU work: holds the turn
            active[0] += 1
            most[0] = max(most[0], active[0])
            time.sleep(0.02)  # room for another handler to run, were it allowed to
            active[0] -= 1
        done.append(sid)

    bus.start(handler)
    try:
        bus.publish([DispatchStep("r", s) for s in ("net1", "net2", "net3")])
        wait_until(lambda: len(done) == 3 and bus.idle(), 10, "the bus to deliver")
        assert not together.broken and bus.dead_letters == []
        bus.publish([DispatchStep("r", s) for s in ("cpu1", "cpu2", "cpu3", "cpu4")])
        wait_until(lambda: len(done) == 7 and bus.idle(), 10, "the bus to deliver")
        assert most[0] == 1  # one at a time
    finally:
        bus.close()


class TestInProcessBus(BusContract):
    @pytest.fixture
    def channel(self) -> Iterator[Channel]:
        got: list[Delivered] = []
        bus = InProcessBus(workers=2).start(lambda m: got.append(Delivered(m, time.time())))

        def receive(n: int) -> list[Delivered]:
            wait_until(lambda: len(got) >= n and bus.idle(), 10, f"{n} deliveries")
            return list(got)

        yield Channel(bus, receive)
        bus.close()
