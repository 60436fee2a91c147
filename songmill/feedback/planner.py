"""Thompson sampling of a night's track attributes from what listeners kept.

For each track and each planned attribute the planner draws one completion rate from every
allowed value's posterior (`measures.FeedbackSnapshot`) and takes the value that drew highest:
values listeners keep win most nights, and a value with few plays (a wide posterior) still wins
now and then, so it gets heard. Within limits from `config/catalogue.yaml` (`feedback:`):

* `exploration_share` of the choices ignore feedback and draw by the configured weights;
* `never_change` attributes always draw by the configured weights;
* `min_variety` asks for at least N distinct values of an attribute in a night.

Every choice is returned with why it was made. The generator is seeded by the date and the
snapshot's hash: the same date and feedback give the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from songmill.feedback.measures import FeedbackSnapshot


@dataclass(frozen=True)
class Choice:
    track: int  # 1-based; 0 for the release
    attribute: str
    value: str
    why: str

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def by_weight(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


class ThompsonPlanner:
    def __init__(self, snapshot: FeedbackSnapshot, rng: np.random.Generator, *, exploration_share: float, never_change: set[str]):
        self.snapshot, self.rng = snapshot, rng
        self.exploration_share, self.never_change = exploration_share, never_change

    def choose(self, track: int, attribute: str, weights: dict[str, float], *, exclude: frozenset[str] | set[str] = frozenset()) -> Choice:
        allowed = {v: w for v, w in weights.items() if v not in exclude} or weights
        if attribute in self.never_change:
            return Choice(track, attribute, by_weight(self.rng, allowed), f"catalogue.yaml keeps {attribute} to its weights (never_change)")
        if self.snapshot.empty:
            return Choice(track, attribute, by_weight(self.rng, allowed), "no listener feedback yet: drawn by catalogue.yaml's weights")
        if self.rng.random() < self.exploration_share:
            return Choice(
                track, attribute, by_weight(self.rng, allowed), f"exploration ({self.exploration_share:.0%} of choices): drawn by catalogue.yaml's weights"
            )
        draws = {value: self.snapshot.posterior(attribute, value).sample(self.rng) for value in sorted(allowed)}
        ranked = sorted(draws, key=lambda v: -draws[v])
        best = ranked[0]
        post = self.snapshot.posterior(attribute, best)
        why = f"Thompson draw {draws[best]:.3f} from its completion posterior (mean {post.mean:.3f} over {self.snapshot.trials(attribute, best)} streams)"
        if len(ranked) > 1:
            why += f"; next {ranked[1]} drew {draws[ranked[1]]:.3f}"
        if exclude:
            why += f"; variety: not {', '.join(sorted(exclude))} again"
        return Choice(track, attribute, best, why)


def with_variety(choices: list[Choice], minimum: int, redraw) -> list[Choice]:
    """Replace the latest repeated values until `minimum` distinct values are planned (or every
    track has its own). `redraw(track, exclude)` draws a new choice avoiding `exclude`."""
    minimum = min(minimum, len(choices))
    result = list(choices)
    for index in range(len(result) - 1, -1, -1):
        used = {c.value for c in result}
        if len(used) >= minimum:
            break
        if [c.value for c in result].count(result[index].value) > 1:
            result[index] = redraw(result[index].track, used)
    return result
