"""What every run ends with, whichever machine ran it: settle, check, report.

- ``invariants``: the invariants of swap accounting as pure functions over the
  model's state (``MmState``, ``MemcgState``), the quiescence checks as a table;
- ``settle``: ``settle_and_check()`` over ``Settleable``, the small interface the
  simulation's ``World`` and the cluster's ``Cluster`` implement;
- ``result``: ``RunResult``, the one result builder, and the verdict;
- ``spec``: scenario + variant + page_cluster + fault profile -> the machine's
  ``MmConfig`` and the workload's parameters.

The trace-aware parts stay with the simulation: its continuous checker (an
engine observer) and the naming of trace events (kernsim.sim.checker).
"""
