"""From what a run is of to how it is set up: the one place that turns a scenario, a
variant, a page_cluster and a fault profile into the machine's MmConfig and the
workload's parameters.

The simulation (``kernsim sim``), the explorer (its jobs, its shrinker) and the
cluster (the mm and tasks services) all ask here, so a scenario runs on the
same machine with the same workload parameters wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kernsim.faults import Profile, load_profile
from kernsim.model.mm import MmConfig
from kernsim.sim.scenarios import get_scenario
from kernsim.variants import get_variant

Params = Mapping[str, Any] | Iterable[tuple[str, Any]]


def mm_config(scenario: str, variant: str, page_cluster: int | None = None) -> MmConfig:
    """The scenario's machine, with the variant's swap_map encoding and, when given,
    /proc/sys/vm/page-cluster (else the scenario's)."""
    kwargs: dict[str, Any] = dict(get_scenario(scenario).mm)
    kwargs["swap_has_cache"] = get_variant(variant).swap_has_cache
    if page_cluster is not None:
        kwargs["page_cluster"] = page_cluster
    return MmConfig(**kwargs)


def fault_profile(scenario: str, faults: str | Profile | None = None) -> Profile:
    """The profile named (or given), or the scenario's own when ``faults`` is None."""
    if isinstance(faults, Profile):
        return faults
    return load_profile(faults if faults is not None else get_scenario(scenario).faults)


def workload_params(
    scenario: str,
    profile: Profile | None = None,
    overrides: Params = (),
    duration_s: float | None = None,
) -> dict[str, Any]:
    """The parameters the scenario's workload runs with.

    In order: the scenario's own; every timing stretched by ``profile``
    (Profile.scale_workload: the simulation's workloads are tuned for kernel
    steps of about 1 us, and a profile with slow messages or disks stretches
    them to its latencies; the cluster passes no profile, its clock is real);
    fitted to ``duration_s`` seconds of load when given (the cluster's runs);
    then ``overrides`` (a caller's explicit values, e.g. a shrunk job's) as they are.
    """
    params = dict(get_scenario(scenario).params)
    if profile is not None:
        params = profile.scale_workload(params)
    if duration_s is not None:
        params = fit_to_duration(scenario, params, duration_s)
    return {**params, **dict(overrides)}


def fit_to_duration(scenario: str, p: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The scenario's parameters for a run of ``duration_s`` seconds: kamezawa keeps its
    round count at least and shortens its period to fit; nishimura stops starting
    tasks at the deadline; the others run as they are."""
    if scenario == "kamezawa":
        period_s = min(p["period_s"], duration_s / p["rounds"])
        return {**p, "period_s": period_s, "rounds": max(p["rounds"], int(duration_s // period_s))}
    if scenario == "nishimura":
        return {**p, "duration_s": duration_s}
    return p
