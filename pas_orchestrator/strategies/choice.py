"""The strategy of a search definition (its ``strategy`` and ``halving`` keys): a new strategy is chosen here."""

from __future__ import annotations

from pas_models.layout import RunLayout
from pas_orchestrator import replicas
from pas_orchestrator.config.search import SearchDef
from pas_orchestrator.strategies.base import Strategy
from pas_orchestrator.strategies.coordinate_descent import CoordinateDescent
from pas_orchestrator.strategies.gradient import GradientSearch
from pas_orchestrator.strategies.halving import SuccessiveHalving


def strategy_for(search: SearchDef, layout: RunLayout) -> Strategy:
    """The search strategy of a definition: the paper's coordinate descent, with successive halving inside
    each iteration when ``halving`` is set, deciding on its replicas' pooled figures with ``replicas`` (a new
    strategy is chosen here, from a key of the definition)."""
    if search.strategy == "gradient":
        assert search.gradient is not None
        h = search.candidate_halving()
        return GradientSearch(search.gradient.targets_gflops, h.eta, h.rungs, promote_one=search.halving is None,
                              layout=layout)
    cd = CoordinateDescent(iterations=search.iterations, target_gflops=search.stop.target_gflops,
                           selection=search.selection, ratio_tolerance=search.ratio_tolerance,
                           baselines=search.baselines, layout=layout,
                           ties_level=search.ties.level if search.ties is not None else None)
    strategy: Strategy = cd if search.halving is None else SuccessiveHalving(cd, search.halving.eta,
                                                                               search.halving.rungs)
    return replicas.wrap(strategy, search.replicas)
