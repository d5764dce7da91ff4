"""What every deliberation does once, done without waste: the ranking, the agents' identities,
the deliberation's id. Each keeps what it gave before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orchestrator_core.deliberation import new_deliberation_id
from orchestrator_core.hookspecs import identity_of
from orchestrator_core.models import AgentIdentity, CheckResult, Proposal
from orchestrator_core.scoring import Scorer, rank


def proposal(author: str) -> Proposal:
    return Proposal(proposal_id=f"{author}-v0", author_id=author, role="DEV", content=f"by {author}")


def result(kind: str, score: float, passed: bool) -> CheckResult:
    return CheckResult(name=kind, kind=kind, passed=passed, score=score)


def test_proposals_no_check_judged_rank_below_the_judged_in_council_order_scoring_zero() -> None:
    scorer = Scorer()
    judged = [
        (proposal("a"), ()),
        (proposal("b"), (result("lint", 0.4, True),)),
        (proposal("c"), ()),
        (proposal("d"), (result("lint", 0.9, True),)),
        (proposal("e"), (result("lint", 0.9, False),)),
    ]
    ranked = rank(judged, scorer)
    assert [r.proposal.author_id for r in ranked] == ["d", "b", "e", "a", "c"]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]
    unjudged = [r for r in ranked if not r.checks]
    assert [(r.viable, r.score) for r in unjudged] == [(scorer.viable(()), scorer.score(()))] * 2 == [(False, 0.0)] * 2


def test_ties_keep_the_council_order() -> None:
    judged = [(proposal(author), (result("lint", 0.7, True),)) for author in "zyxw"]
    assert [r.proposal.author_id for r in rank(judged, Scorer())] == ["z", "y", "x", "w"]
    assert [r.proposal.author_id for r in rank([(proposal(a), ()) for a in "zyx"], Scorer())] == ["z", "y", "x"]


@dataclass
class Described:
    identity: object

    def describe(self) -> object:
        return self.identity


class Identity(AgentIdentity):
    """A backend's own subclass: its identity is copied as a plain AgentIdentity."""


def test_a_valid_identity_is_taken_as_it_is() -> None:
    for identity in (AgentIdentity(), AgentIdentity("m", "http://x", "options"), AgentIdentity("m", "", "settings")):
        assert identity_of(Described(identity)) is identity


def test_an_identity_that_is_not_plain_is_rebuilt() -> None:
    bad_source = identity_of(Described(AgentIdentity("m", "e", "guessed")))
    assert bad_source == AgentIdentity("m", "e", "")
    not_text = identity_of(Described(AgentIdentity(model=3, endpoint=None)))  # type: ignore[arg-type]
    assert not_text == AgentIdentity("3", "None", "")
    subclass = identity_of(Described(Identity("m", "e", "options")))
    assert type(subclass) is AgentIdentity
    assert subclass == AgentIdentity("m", "e", "options")
    assert identity_of(Described("gpt")) == AgentIdentity()
    assert identity_of(object()) == AgentIdentity()


def test_a_deliberation_id_is_a_random_uuid4_in_hex() -> None:
    ids = {new_deliberation_id() for _ in range(2000)}
    assert len(ids) == 2000
    for made in ids:
        parsed = uuid.UUID(made)
        assert (parsed.hex, parsed.version, parsed.variant) == (made, 4, uuid.RFC_4122)
