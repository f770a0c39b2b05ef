"""The controller's pure decision core: typed observations in, typed actions out (decide.py).

``outcomes``: what an executor says of a job. ``actions``: what the core asks for. ``decide``: the
policy of the job lifecycle (ingest, fail, retry, interrupt, submit), the search strategy plugged
in through ``pas_orchestrator.strategies``. No I/O, no clock, no scheduler anywhere in this package.
"""
