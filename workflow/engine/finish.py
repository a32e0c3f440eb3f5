"""A step's end: retried if it may be (`retry`), else recorded once with its effects on
the joins (the store's END transition and `model.join`), its slot freed, the successors
it unblocked dispatched, what it dooms skipped (`skip`); and a run's end, announced once."""

from __future__ import annotations

from ..model.events import RunEnded
from ..model.messages import CheckJob, RunFinished, StepFinished
from ..model.records import Completion, Job, StepOutcome, StepRecord
from ..model.states import RunStatus, StepState
from ..model.text import excerpt
from .context import Ports, dispatch, ids, log, once
from .retry import retried
from .skip import skip_descendants


def finish(ports: Ports, ended: StepRecord | CheckJob, state: StepState, job: Job | None, message: str, *,
           retries: int = 0) -> None:
    """The attempt `ended` (a step as read, or its check) ended: retry the step if it may be
    (`retries`: the step's, when this end is one that is retried), else record its end, here
    in the handler that saw it."""
    job_id, job_state = (job.job_id, job.state) if job else ("", "")
    if not message and job_state:
        message = f"job {job_state}"
    outcome = StepOutcome(state, ports.clock(), job_id, excerpt(message), job_state, ended.attempt,
                          ended.submitted_at)
    if retries and retried(ports, ended.run_id, ended.step_id, outcome, ended.max_parallel):
        return
    complete(ports, ended.run_id, ended.step_id, outcome, ended.successors, ended.max_parallel)


def complete(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome,
             successors: tuple[str, ...] | None = None, max_parallel: int = 0) -> None:
    """Record a step's end once, free its slot, dispatch the successors it unblocks and skip
    what it dooms. Safe to repeat: a second call records nothing and reads the same facts
    back, so it finishes what a first call that crashed half-way left undone."""
    done = ports.store.steps.complete_step(run_id, step_id, outcome, successors, free_slot=max_parallel > 0)
    if done.recorded:  # once, however many deliveries repeat it
        log.info("step %s: %s", outcome.state.value, outcome.message, extra=ids(run_id, step_id))
    if done.woke:
        dispatch(ports, run_id, [done.woke])
    if outcome.state is not StepState.SUCCEEDED:
        skipped = skip_descendants(ports, run_id, step_id, outcome)
        done = Completion(done.recorded, done.unblocked + skipped.unblocked, done.run_complete or skipped.run_complete)
    # An end that unblocked several steps dispatches them under a claim: its redeliveries,
    # which read the same steps back, publish them again only if the first one never did.
    key = f"released:{step_id}#{outcome.attempt}" if len(done.unblocked) > 1 else ""
    carry_on(ports, run_id, done, max_parallel, key)


def carry_on(ports: Ports, run_id: str, done: Completion, max_parallel: int = 0, key: str = "") -> None:
    """Dispatch what an end unblocked (once, under the claim `key` if given); finish the
    run if nothing is open."""
    if key:
        once(ports, run_id, key, lambda: _dispatch_ready(ports, run_id, done, max_parallel))
    else:
        _dispatch_ready(ports, run_id, done, max_parallel)
    if done.run_complete:
        finish_run(ports, run_id)


def _dispatch_ready(ports: Ports, run_id: str, done: Completion, max_parallel: int) -> None:
    """Under a limit, steps past the first `max_parallel` are queued for a slot rather than
    dispatched only to find none; queued first, so a slot freed meanwhile wakes one."""
    ready = list(done.unblocked)
    if max_parallel and len(ready) > max_parallel:
        ports.store.slots.queue_steps(run_id, ready[max_parallel:], ports.clock())
        del ready[max_parallel:]
    if ready:  # a step is unblocked at its first attempt unless a rerun moved it on (the dispatch sees it)
        dispatch(ports, run_id, ready, 1, max_parallel)


def finish_run(ports: Ports, run_id: str) -> None:
    """Set the run's end from its steps' (CANCELLED, else FAILED, else SUCCEEDED) and announce it."""
    steps = ports.store.steps.list_steps(run_id)
    states = {s.state for s in steps}
    if StepState.CANCELLED in states:
        status = RunStatus.CANCELLED
    else:  # steps SKIPPED by a runIf that was not met do not fail a run; a run of no step never succeeds
        status = RunStatus.FAILED if StepState.FAILED in states or not steps else RunStatus.SUCCEEDED
    if ports.store.runs.finish_run(run_id, status, ports.clock()):
        log.info("run %s", status.value, extra=ids(run_id))
    run = ports.store.runs.get_run(run_id)
    if run is not None:
        announce(ports, RunEnded.of(run, steps))


def announce(ports: Ports, event: RunEnded) -> None:
    """Publish a run's end once, however many deliveries get here (a claim per end)."""
    events = ports.events
    if events is not None:
        once(ports, event.run.run_id, event.key, lambda: events.run_ended(event))


def step_finished(msg: StepFinished, ports: Ports) -> None:
    """Record a step's end handed over as a message (a replay, or an older deployment's)."""
    complete(ports, msg.run_id, msg.step_id, StepOutcome(msg.state, msg.at, msg.job_id, msg.message, msg.job_state))


def run_finished(msg: RunFinished, ports: Ports) -> None:
    """An event for observers; the engine has nothing left to do."""
