"""The services' runtime: everything between the sockets and a service's handlers.

- node.py: ``Node``, the server, the peer table and hello, sending (through
  the fault layer), the deadline sweep;
- session.py: ``RpcSession``, one connection's msg_ids, pending calls and
  deadlines, with no event loop;
- connection.py: ``Connection``, one TCP connection as an asyncio Protocol:
  framing in, flush batching, back-pressure;
- dispatch.py: ``Dispatcher``, fast or strict validation, the handler table,
  replies and error replies;
- guard.py: bounds on accepted connections, and what a hello may claim;
- faultlayer.py: the fault model on the wire (delay, reorder, hold);
- config.py: a service's configuration, every default with its variable;
- admin.py, openapi.py: the admin HTTP port (``/metrics``, ``/statistics``,
  ``/faults``, ``/openapi.json``); metrics.py: families read at scrape time;
- plumbing.py: JSON logs, rate-limited warnings, signals, the lifeline.

Every byte and every wire key is ``kernsim.protocol``'s: the runtime frames
with ``encode_frame``, builds maps with ``request_wire`` / ``ok_reply_wire``,
and validates with ``FastPath``, ``Envelope.from_wire`` and the ``Registry``.
"""

from kernsim.services.runtime.connection import Connection
from kernsim.services.runtime.dispatch import Body, Handler
from kernsim.services.runtime.node import MAX_LINKS, Node
from kernsim.services.runtime.plumbing import JsonFormatter, setup_logging, stop_on_signals

__all__ = [
    "MAX_LINKS",
    "Body",
    "Connection",
    "Handler",
    "JsonFormatter",
    "Node",
    "setup_logging",
    "stop_on_signals",
]
