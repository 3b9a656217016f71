"""Choosing among candidates: the best on validation, and among those within the seed spread of it, the cheapest.

Two candidates whose validation scores differ by less than what a change of seed moves them are a tie; serving
the cheaper one costs nothing in expected quality. select uses this across the candidates, and the ensemble
stage across the subsets of the trained models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    name: str
    val_macro_f1: float
    cost_ms: float | None = None  # measured serving cost per text; None: unknown (never preferred on cost)


def cheapest_within(options: list[Option], tolerance: float) -> tuple[Option, str]:
    """The cheapest option whose val macro-F1 is within `tolerance` of the best; ties keep the listed order.

    Returns the option and a sentence saying why, naming the best and the tied ones.
    """
    if not options:
        raise ValueError("nothing to choose from")
    best = max(options, key=lambda o: o.val_macro_f1)  # max keeps the first of equals
    tied = [o for o in options if o.val_macro_f1 >= best.val_macro_f1 - tolerance]
    chosen = min(tied, key=lambda o: math.inf if o.cost_ms is None else o.cost_ms)
    if chosen is best or len(tied) == 1:
        return chosen, f"best val macro-F1 ({best.val_macro_f1:.4f})"
    others = ", ".join(f"{o.name} {o.val_macro_f1:.4f}" for o in tied if o is not chosen)
    return chosen, (f"cheapest to serve ({_cost(chosen)}) of those within {tolerance:g} of the best val "
                    f"macro-F1 ({best.name} {best.val_macro_f1:.4f}, {_cost(best)}): {chosen.name} "
                    f"{chosen.val_macro_f1:.4f}; also tied: {others}")


def _cost(option: Option) -> str:
    return "cost unknown" if option.cost_ms is None else f"{option.cost_ms:.2f} ms a text"
