"""The Bus contract, written once; each adapter's test module subclasses it and provides
a `channel` fixture: the bus and a way to read what it delivers (in-process in
tests/unit, Pub/Sub on the emulator in tests/cloud)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workflow.model.dag import Dag, Step, Task
from workflow.model.messages import CheckJob, DispatchStep, Message, RunFinished, StartRun, StepFinished
from workflow.model.states import RunStatus, StepState


@dataclass(frozen=True)
class Delivered:
    msg: Message
    earliest: float  # Unix time before which the receiver may not handle it


@dataclass
class Channel:
    bus: Any
    receive: Callable[[int], list[Delivered]]  # wait for n deliveries, return every one so far


EVERY_KIND: list[Message] = [
    StartRun("r1", Dag((Step("a", Task("a", "img/a", ("--x", "1"))),), "n"), "https://tr.example", "inline", "sealed"),
    DispatchStep("r1", "a"),
    CheckJob("r1", "a", "job-1", 3, "https://tr.example", "sealed", 12.5, "RUNNING", "msg", 2, ("b", "c")),
    StepFinished("r1", "a", StepState.FAILED, 13.0, "job-1", "exit 1", "FAILED"),
    RunFinished("r1", RunStatus.FAILED),
]


class BusContract:
    def test_every_kind_of_message_is_delivered_as_published(self, channel: Channel) -> None:
        channel.bus.publish(EVERY_KIND)
        got = [d.msg for d in channel.receive(len(EVERY_KIND))]
        assert sorted(map(repr, got)) == sorted(map(repr, EVERY_KIND))

    def test_a_delayed_message_is_never_handed_over_early(self, channel: Channel) -> None:
        before = time.time()
        channel.bus.publish([DispatchStep("r2", "late")], delay=0.5)
        channel.bus.publish([DispatchStep("r2", "now")])
        got = {d.msg: d.earliest for d in channel.receive(2)}
        assert got[DispatchStep("r2", "late")] >= before + 0.5 - 0.001  # a Pub/Sub attribute keeps milliseconds
        assert got[DispatchStep("r2", "now")] < got[DispatchStep("r2", "late")]

    def test_begin_publish_counts_a_message_once_its_acceptance_is_confirmed(self, channel: Channel) -> None:
        confirmed = channel.bus.begin_publish([DispatchStep("r4", "a"), DispatchStep("r4", "b")])
        confirmed()
        assert channel.bus.published == 2
        assert {d.msg for d in channel.receive(2)} == {DispatchStep("r4", "a"), DispatchStep("r4", "b")}

    def test_publish_counts_what_was_accepted(self, channel: Channel) -> None:
        channel.bus.publish([DispatchStep("r3", f"s{i}") for i in range(25)])
        assert len(channel.receive(25)) == 25 and channel.bus.published == 25
