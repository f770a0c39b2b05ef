"""Search strategies: what a search does once jobs have ended (``base.Strategy``).

``coordinate_descent``: the paper's PAS (each operator applied to the last winner, the best kept).
A new strategy is a class with ``advance(snapshot) -> [Action]`` (pure), chosen in
``choice.strategy_for``; the job lifecycle (retries, requeues, submission) is not its business.
"""

