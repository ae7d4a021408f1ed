"""The tools that run a cluster from the outside: start the six service processes
(``cluster``), run one experiment on them (``experiment``, ``launcher``), handle
signals, setup errors and remote services (``lifecycle``) and record what happened
(``records``).  They drive the services over their ports; no service imports them."""
