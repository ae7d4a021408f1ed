"""The hook interface every variant fills, under the name the variants use.

The model declares it (:class:`kernsim.model.hooks.Hooks`, vanilla 2.6.30's
behaviour); a variant subclasses ``Variant`` and overrides the hooks its patch
touches.  Variants import the model, never the reverse.
"""

from __future__ import annotations

from kernsim.model.hooks import Claim
from kernsim.model.hooks import Hooks as Variant

__all__ = ["Claim", "Variant"]
