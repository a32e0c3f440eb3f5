from __future__ import annotations

import threading
import time

from workflow.adapters.embedded.inprocess_bus import InProcessBus
from workflow.errors import PoisonMessage, TransientError
from workflow.model.messages import DispatchStep, Message


def wait_until(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_delivers_every_message_from_many_workers() -> None:
    got: list[str] = []
    lock = threading.Lock()

    def handler(msg: Message) -> None:
        with lock:
            got.append(msg.step_id)  # type: ignore[union-attr]

    bus = InProcessBus(workers=4).start(handler)
    try:
        bus.publish([DispatchStep("r", f"s{i}") for i in range(500)])
        wait_until(lambda: len(got) == 500 and bus.idle())
        assert sorted(got) == sorted(f"s{i}" for i in range(500))
    finally:
        bus.close()


def test_delayed_message_waits_its_delay() -> None:
    seen: dict[str, float] = {}
    bus = InProcessBus(workers=2).start(lambda m: seen.setdefault(m.step_id, time.monotonic()))  # type: ignore[union-attr]
    try:
        t0 = time.monotonic()
        bus.publish([DispatchStep("r", "late")], delay=0.3)
        bus.publish([DispatchStep("r", "now")])
        wait_until(lambda: "late" in seen)
        assert seen["now"] - t0 < 0.2 and seen["late"] - t0 >= 0.3
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
        wait_until(lambda: bus.idle() and attempts.get("broken") == 4)
        assert attempts == {"poison": 1, "flaky": 3, "broken": 4}
        assert [m.step_id for m, _ in bus.dead_letters] == ["broken"]  # type: ignore[union-attr]
        assert "RuntimeError: bug" in bus.dead_letters[0][1]
    finally:
        bus.close()


def test_handlers_take_turns_but_network_waits_overlap() -> None:
    spans: dict[str, tuple[float, float]] = {}
    bus = InProcessBus(workers=4)

    def handler(msg: Message) -> None:
        sid = msg.step_id  # type: ignore[union-attr]
        t0 = time.monotonic()
        if sid.startswith("net"):
            with bus.waiting():
                time.sleep(0.3)
        else:
            time.sleep(0.3)  # stands for CPU work: holds the turn
        spans[sid] = (t0, time.monotonic())

    bus.start(handler)
    try:
        bus.publish([DispatchStep("r", s) for s in ("net1", "net2", "net3")])
        wait_until(lambda: len(spans) == 3 and bus.idle())
        starts, ends = [s for s, _ in spans.values()], [e for _, e in spans.values()]
        assert max(ends) - min(starts) < 0.55  # the three waits overlapped
        spans.clear()
        bus.publish([DispatchStep("r", s) for s in ("cpu1", "cpu2")])
        wait_until(lambda: len(spans) == 2 and bus.idle())
        (_, a1), (b0, _) = sorted(spans.values())
        assert b0 >= a1 - 0.01  # one at a time
    finally:
        bus.close()
