"""The ClaimStore: a side effect claimed, settled, released, taken over after its lease."""

from __future__ import annotations

from typing import Any

import pytest

from workflow.model.records import Claim
from workflow.model.states import StepState

from .builders import make_run


class ClaimsContract:
    def fail_reads(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the store's next reads of a step fail (each adapter's module knows how)."""
        raise NotImplementedError

    def test_claim_reading_claims_as_claim_does_and_a_release_lets_the_next_caller_win(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        claim, step = store.claim_reading(run_id, "submit:a", "a", 1.0)
        assert claim is Claim.WON and step.step_id == "a" and step.state is StepState.PENDING
        assert store.claim_reading(run_id, "submit:a", "a", 10**9)[0] is Claim.BUSY  # no lease: never taken over
        store.release(run_id, "submit:a")
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim_reading(run_id, "submit:a", "a", 2.0)[0] is Claim.WON
        store.settle(run_id, "submit:a")
        assert store.claim_reading(run_id, "submit:a", "a", 3.0)[0] is Claim.DONE
        assert store.claim_reading(run_id, "submit:nope", "nope", 3.0) == (Claim.WON, None)

    def test_a_claim_whose_read_failed_is_given_back(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        run_id = make_run(store, {"a": []})
        with monkeypatch.context() as patched:
            self.fail_reads(store, patched)
            with pytest.raises(Exception, match="read failed"):
                store.claim_reading(run_id, "submit:a", "a", 1.0)
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim_reading(run_id, "submit:a", "a", 2.0)[0] is Claim.WON

    def test_claim_lifecycle(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.claim(run_id, "submit:a", 10.0, 5.0) is Claim.WON
        assert store.claim(run_id, "submit:a", 12.0, 5.0) is Claim.BUSY
        assert store.claim(run_id, "submit:a", 16.0, 5.0) is Claim.WON
        store.settle(run_id, "submit:a")
        store.settle(run_id, "submit:a")
        assert store.claim(run_id, "submit:a", 100.0, 5.0) is Claim.DONE
        assert store.claim(run_id, "check:a:0", 100.0, 5.0) is Claim.WON

    def test_held_since_reports_only_unsettled_claims(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim(run_id, "submit:a", 50.0, lease=10) is Claim.WON
        assert store.held_since(run_id, "submit:a") == 50.0
        store.settle(run_id, "submit:a")
        assert store.held_since(run_id, "submit:a") is None
