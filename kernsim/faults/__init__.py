"""Fault injection as data: latency, reordering, hold and pause.

Theory of operation. Every message a service sends is shown to
`FaultModel.on_send(src, dest, msg_type, now_s)`, which returns a `Verdict`:
when the message may be delivered and whether it is held. The first `Rule`
matching (src, dest, msg_type) decides the added `Latency`; links stay FIFO
unless that rule says `reorder=True`. The caller pushes the message on a
`DelayQueue` built on `model.controls` and delivers what `pop_ready(now_s)`
returns; messages on a held link or to a paused service stay in the queue
until `release`/`resume`. Nothing is ever dropped.

The model does no IO and reads no clock and no global random: `now_s` and a
`random.Random` come from the caller, so a seeded simulation on a virtual
clock and the asyncio cluster run the same code, and the same seed gives the
same verdicts. Profiles (`deploy/faults/*.toml`) are the same data on disk.
"""

from kernsim.faults.controls import Controls, Link
from kernsim.faults.delayqueue import DelayQueue
from kernsim.faults.fault_model import FaultModel, FaultStatistics
from kernsim.faults.latency import Latency
from kernsim.faults.profiles import (
    Profile,
    faults_dir,
    list_profiles,
    load_profile,
    load_shipped,
)
from kernsim.faults.rules import ANY, KINDS, Rule, Verdict

__all__ = [
    "ANY",
    "KINDS",
    "Controls",
    "DelayQueue",
    "FaultModel",
    "FaultStatistics",
    "Latency",
    "Link",
    "Profile",
    "Rule",
    "Verdict",
    "faults_dir",
    "list_profiles",
    "load_profile",
    "load_shipped",
]
