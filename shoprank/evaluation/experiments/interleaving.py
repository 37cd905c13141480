"""Team-draft interleaving (Radlinski, Kurup & Joachims, CIKM 2008): one list from two rankings, each
item credited to the ranker that contributed it.

Why: in an A/B test each shopper sees one ranker, and the two arms' purchase rates differ by a few
percent under a large variance between shoppers. In an interleaved list the same shopper, at the
same moment, chooses between the two rankers' items. The preference is measured within each list,
so the variance between shoppers drops out. `make bench-experiments` measures how many fewer requests
that needs.

Each round, the team that has contributed fewer items picks next (a coin decides ties). It takes its
best-ranked item not yet in the list. A team whose ranking is used up lets the other pick. An
item both rankings share still belongs to whichever team put it in first, so neither is credited
for the other's choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TEAMS = ("a", "b")


def team_draft(first: Sequence[str], second: Sequence[str], k: int,
               rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(items, teams): up to k items, and per item "a" (from `first`) or "b" (from `second`)."""
    rankings = (list(first), list(second))
    cursor = [0, 0]
    taken: set[str] = set()
    items: list[str] = []
    teams: list[str] = []
    counts = [0, 0]

    def next_of(team: int) -> str | None:
        ranking = rankings[team]
        while cursor[team] < len(ranking) and ranking[cursor[team]] in taken:
            cursor[team] += 1
        return ranking[cursor[team]] if cursor[team] < len(ranking) else None

    while len(items) < k:
        if counts[0] != counts[1]:
            team = 0 if counts[0] < counts[1] else 1
        else:
            team = int(rng.random() < 0.5)
        item = next_of(team)
        if item is None:
            team = 1 - team
            item = next_of(team)
            if item is None:
                break
        taken.add(item)
        items.append(item)
        teams.append(TEAMS[team])
        counts[team] += 1
    return items, teams


def credit(teams: Sequence[str | None], clicked_positions: Sequence[int]) -> tuple[int, int]:
    """(credit of a, credit of b) for the clicks at 1-based `clicked_positions` of one list. An item
    no team placed (a merchandising rule's) credits nobody."""
    a = b = 0
    for position in (int(p) for p in clicked_positions):
        if 1 <= position <= len(teams):
            team = teams[position - 1]
            a += team == "a"
            b += team == "b"
    return a, b
