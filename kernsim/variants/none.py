"""Vanilla 2.6.30: every hook as the kernel has it (see base.Variant)."""

from __future__ import annotations

from kernsim.variants.base import Variant


class Vanilla(Variant):
    name = "none"
