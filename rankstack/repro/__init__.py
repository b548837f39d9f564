"""``rankstack repro``: every number the docs quote, with the command that reproduces it.

    from rankstack.repro import load_conditions, run_conditions, select
    outcomes = run_conditions(select(load_conditions(), quick=True))
    print([(o.condition.id, o.measured, o.status) for o in outcomes])

:mod:`~rankstack.repro.conditions` reads the conditions YAML (packaged: ``conditions.yaml``
beside this file), :mod:`~rankstack.repro.runner` runs their commands and checks each number
against its tolerance, :mod:`~rankstack.repro.page` writes ``docs/reproduction.md`` and an HTML
page, and :mod:`~rankstack.repro.quoted` finds numbers the docs quote that no results file prints.
"""

from __future__ import annotations

from rankstack.repro.conditions import DEFAULT_CONDITIONS, Condition, load_conditions, select
from rankstack.repro.runner import Outcome, run_conditions

__all__ = ["DEFAULT_CONDITIONS", "Condition", "Outcome", "load_conditions", "run_conditions", "select"]
