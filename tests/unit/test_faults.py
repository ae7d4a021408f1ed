"""Unit tests of kernsim.faults: no event loop, fixed seeds, virtual time."""

from __future__ import annotations

import copy
import math
import random
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from kernsim.faults import (
    DelayQueue,
    FaultModel,
    Latency,
    Profile,
    Rule,
    Verdict,
    list_profiles,
    load_profile,
)

N = 20_000


def samples(lat: Latency, seed: int = 1, n: int = N) -> list[float]:
    rng = random.Random(seed)
    return [lat.sample(rng) for _ in range(n)]


def model(*rules: Rule, seed: int = 7) -> FaultModel:
    return FaultModel(Profile("test", rules=rules), random.Random(seed))


# -- Latency ---------------------------------------------------------------


def test_constant_is_exact_without_jitter() -> None:
    assert set(samples(Latency.constant(0.003), n=100)) == {0.003}


def test_uniform_range_and_mean() -> None:
    xs = samples(Latency.uniform(0.001, 0.003))
    assert 0.001 <= min(xs) < 0.0011 and 0.0029 < max(xs) <= 0.003
    assert statistics.fmean(xs) == pytest.approx(0.002, rel=0.02)


def test_exponential_mean_and_spread() -> None:
    xs = samples(Latency.exponential(0.001))
    assert min(xs) >= 0.0
    assert statistics.fmean(xs) == pytest.approx(0.001, rel=0.05)
    # Exponential: the standard deviation equals the mean.
    assert statistics.pstdev(xs) == pytest.approx(0.001, rel=0.1)


def test_pareto_floor_cap_and_capped_mean() -> None:
    lat = Latency.pareto(0.002, 1.5, 0.2)
    xs = samples(lat)
    assert min(xs) >= 0.002 and max(xs) <= 0.2
    assert max(xs) == 0.2, "a heavy tail over 20k draws must hit the cap"
    assert lat.mean_s() == pytest.approx(0.0056)
    assert statistics.fmean(xs) == pytest.approx(lat.mean_s(), rel=0.1)


def test_jitter_is_symmetric_and_clamped_at_zero() -> None:
    xs = samples(Latency.constant(0.001, jitter_s=0.0002))
    assert 0.0008 <= min(xs) < 0.00081 and 0.00119 < max(xs) <= 0.0012
    assert statistics.fmean(xs) == pytest.approx(0.001, rel=0.01)
    clamped = samples(Latency.constant(0.0, jitter_s=0.001))
    assert min(clamped) == 0.0
    assert sum(x == 0.0 for x in clamped) > N // 3


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Latency.constant(-1.0), "delay_s: must be a finite number >= 0, got -1.0"),
        (lambda: Latency.constant(math.nan), "delay_s: must be a finite number >= 0, got nan"),
        (lambda: Latency.uniform(0.0, math.inf), "hi_s: must be a finite number >= 0, got inf"),
        (lambda: Latency.uniform(0.002, 0.001), "hi_s: must be >= lo_s (0.002), got 0.001"),
        (lambda: Latency.exponential(0.001, jitter_s=-0.1), "jitter_s: must be a finite"),
        (lambda: Latency.pareto(0.002, 0.0, 0.2), "alpha: must be > 0, got 0.0"),
        (lambda: Latency.pareto(0.002, 1.5, 0.001), "cap_s: must be >= scale_s (0.002)"),
        (lambda: Latency("gauss", (1.0,)), "kind: unknown distribution 'gauss'"),
    ],
)
def test_latency_validation_messages(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_delays_are_bounded_like_a_posts_delay() -> None:
    # An infinite cap (or a delay of 1e308 s) holds a message for good; hold/pause do that.
    with pytest.raises(ValueError, match=re.escape("cap_s: must be a finite number >= 0, got inf")):
        Latency.pareto(0.001, 3.0, math.inf)
    with pytest.raises(ValueError, match=re.escape("delay_s: must be at most 3600 s, got 1e+308")):
        Latency.constant(1e308)
    assert Latency.pareto(0.001, 3.0, 3600.0).mean_s() == pytest.approx(0.0015, rel=1e-6)


# -- rules and verdicts ------------------------------------------------------


def test_no_rules_passes_at_once() -> None:
    m = model()
    assert m.on_send("mm", "memcg", "swap_duplicate", 5.0) == Verdict(5.0, False, "pass")
    assert m.statistics()["kinds"]["pass"] == 1


def test_first_matching_rule_wins() -> None:
    m = model(
        Rule(msg_type="trylock_page", latency=Latency.constant(0.5)),
        Rule(src="vmscan", latency=Latency.constant(0.1)),
        Rule(latency=Latency.constant(0.01)),
    )
    assert m.on_send("vmscan", "mm", "trylock_page", 0.0).deliver_at_s == 0.5
    assert m.on_send("vmscan", "memcg", "swap_duplicate", 10.0).deliver_at_s == 10.1
    assert m.on_send("tasks", "mm", "add_to_swap_cache", 20.0).deliver_at_s == 20.01


def test_rule_without_latency_exempts_from_later_rules() -> None:
    m = model(Rule(dest="workqueue"), Rule(latency=Latency.constant(1.0)))
    assert m.on_send("mm", "workqueue", "drain", 0.0).kind == "pass"
    assert m.on_send("mm", "memcg", "charge", 0.0).kind == "delay"


def test_probability_applies_to_that_fraction_and_falls_through() -> None:
    m = model(Rule(probability=0.25, latency=Latency.constant(1.0)), Rule())
    verdicts = [m.on_send("mm", "memcg", "charge", float(i * 10)) for i in range(4000)]
    delayed = sum(v.kind == "delay" for v in verdicts)
    assert 850 < delayed < 1150
    assert {v.deliver_at_s - i * 10 for i, v in enumerate(verdicts)} == {0.0, 1.0}


def test_probability_zero_never_applies() -> None:
    m = model(Rule(probability=0.0, latency=Latency.constant(1.0)))
    assert all(m.on_send("a", "b", "t", 0.0).kind == "pass" for _ in range(100))


def test_fifo_link_never_overtakes() -> None:
    m = model(Rule(latency=Latency.exponential(0.001), reorder=False))
    times = [m.on_send("mm", "memcg", "charge", i * 1e-5).deliver_at_s for i in range(2000)]
    assert times == sorted(times)
    assert m.statistics()["reordered"] == 0


def test_reorder_link_overtakes_and_counts_it() -> None:
    m = model(Rule(latency=Latency.exponential(0.001), reorder=True))
    times = [m.on_send("mm", "memcg", "charge", i * 1e-5).deliver_at_s for i in range(2000)]
    assert times != sorted(times)
    overtakes = sum(t < max(times[:i]) for i, t in enumerate(times) if i)
    assert m.statistics()["reordered"] == overtakes > 100


def test_fifo_is_per_link_not_global() -> None:
    m = model(Rule(src="mm", latency=Latency.constant(1.0)))
    assert m.on_send("mm", "memcg", "charge", 0.0).deliver_at_s == 1.0
    # A different link is not held back by mm->memcg's slow message.
    assert m.on_send("tasks", "memcg", "charge", 0.0).deliver_at_s == 0.0


def test_fifo_survives_clearing_the_rules() -> None:
    m = model(Rule(latency=Latency.constant(1.0)))
    assert m.on_send("mm", "memcg", "charge", 0.0).deliver_at_s == 1.0
    m.set_rules([])
    later = m.on_send("mm", "memcg", "charge", 0.5)
    assert later == Verdict(1.0, False, "delay")
    assert m.on_send("mm", "memcg", "charge", 2.0) == Verdict(2.0, False, "pass")


def test_same_seed_same_verdicts_different_seed_different() -> None:
    def run(seed: int) -> list[Verdict]:
        m = FaultModel(load_profile("reorder-heavy"), random.Random(seed))
        names = ["mm", "memcg", "vmscan", "tasks"]
        return [m.on_send(names[i % 4], names[i % 3], "x", i * 1e-4) for i in range(500)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_statistics_counts_each_kind() -> None:
    m = model(Rule(dest="memcg", latency=Latency.constant(0.1)))
    m.on_send("mm", "memcg", "charge", 0.0)
    m.on_send("mm", "blockdev", "submit_bio", 0.0)
    m.hold("mm", "vmscan")
    m.on_send("mm", "vmscan", "isolate", 0.0)
    m.pause("tasks")
    m.on_send("mm", "tasks", "fault", 0.0)
    stats = m.statistics()
    assert stats["kinds"] == {"pass": 1, "delay": 1, "hold": 1, "paused": 1}
    assert (stats["seen"], stats["delayed"], stats["held"]) == (4, 1, 2)
    assert (stats["held_links"], stats["paused_services"], stats["rules"]) == (1, 1, 1)


# -- hold / pause through the DelayQueue ---------------------------------------


def send(m: FaultModel, q: DelayQueue[str], src: str, dest: str, item: str, now: float) -> None:
    verdict = m.on_send(src, dest, "msg", now)
    q.push(item, verdict.deliver_at_s, link=(src, dest))


def test_delay_queue_orders_by_time_then_push_order() -> None:
    q: DelayQueue[str] = DelayQueue()
    for item, t in [("c", 3.0), ("a1", 1.0), ("b", 2.0), ("a2", 1.0)]:
        q.push(item, t)
    assert q.next_deadline_s() == 1.0
    assert q.pop_ready(0.5) == []
    assert q.pop_ready(2.0) == ["a1", "a2", "b"]
    assert (len(q), q.next_deadline_s()) == (1, 3.0)
    assert q.pop_ready(10.0) == ["c"] and q.next_deadline_s() is None


def test_hold_then_release_delivers_in_order_before_later_messages() -> None:
    m = model(Rule(latency=Latency.constant(0.1)))
    q: DelayQueue[str] = DelayQueue(m.controls)
    m.hold("mm", "memcg")
    send(m, q, "mm", "memcg", "held1", 0.0)
    send(m, q, "mm", "memcg", "held2", 0.5)
    send(m, q, "mm", "vmscan", "other", 0.5)
    assert q.next_deadline_s() == 0.6
    assert q.pop_ready(5.0) == ["other"]
    assert q.next_deadline_s() is None and len(q) == 2
    m.release("mm", "memcg")
    send(m, q, "mm", "memcg", "after", 5.0)
    assert q.next_deadline_s() == 0.1
    assert q.pop_ready(5.0) == ["held1", "held2"]
    assert q.pop_ready(5.1) == ["after"]


def test_verdict_for_held_link_says_hold() -> None:
    m = model()
    m.hold("mm", "memcg")
    assert m.on_send("mm", "memcg", "charge", 1.0) == Verdict(1.0, True, "hold")
    assert m.on_send("memcg", "mm", "charge_ok", 1.0) == Verdict(1.0, False, "pass")
    m.release("mm", "memcg")
    assert m.on_send("mm", "memcg", "charge", 1.0).kind == "pass"


def test_pause_blocks_every_link_into_the_service_until_resume() -> None:
    m = model()
    q: DelayQueue[str] = DelayQueue(m.controls)
    send(m, q, "tasks", "mm", "already-in-flight", 0.0)
    m.pause("mm")
    send(m, q, "vmscan", "mm", "from-vmscan", 1.0)
    send(m, q, "mm", "memcg", "from-mm", 1.0)
    assert m.on_send("tasks", "mm", "x", 1.0).kind == "paused"
    assert q.pop_ready(2.0) == ["from-mm"]
    m.resume("mm")
    assert q.pop_ready(2.0) == ["already-in-flight", "from-vmscan"]


def test_release_while_paused_keeps_holding_until_resume() -> None:
    m = model()
    q: DelayQueue[str] = DelayQueue(m.controls)
    m.hold("mm", "memcg")
    m.pause("memcg")
    send(m, q, "mm", "memcg", "x", 0.0)
    m.release("mm", "memcg")
    assert q.pop_ready(1.0) == []
    m.resume("memcg")
    assert q.pop_ready(1.0) == ["x"]


def test_queue_is_deterministic() -> None:
    def run() -> list[str]:
        m = FaultModel(load_profile("reorder-heavy"), random.Random(3))
        q: DelayQueue[str] = DelayQueue(m.controls)
        out: list[str] = []
        for i in range(300):
            send(m, q, "mm", ["memcg", "vmscan"][i % 2], f"m{i}", i * 1e-4)
            out += q.pop_ready(i * 1e-4)
        return out + q.pop_ready(math.inf)

    first = run()
    assert first == run() and sorted(first) == sorted(f"m{i}" for i in range(300))


# -- block device --------------------------------------------------------------


def test_bio_latency_by_direction() -> None:
    p = Profile("d", bio_read=Latency.constant(0.001), bio_write=Latency.constant(0.002))
    rng = random.Random(0)
    assert (p.bio_latency_s("read", rng), p.bio_latency_s("write", rng)) == (0.001, 0.002)
    with pytest.raises(ValueError, match="direction: must be 'read' or 'write', got 'rw'"):
        p.bio_latency_s("rw", rng)


@pytest.mark.parametrize("device_reorder", [False, True])
def test_bio_completion_order_follows_device_reorder(device_reorder: bool) -> None:
    p = Profile("d", bio_read=Latency.uniform(0.0001, 0.02), device_reorder=device_reorder)
    m = FaultModel(p, random.Random(5))
    times = [m.bio_complete_at_s("read", i * 1e-4) for i in range(200)]
    assert (times == sorted(times)) is not device_reorder
    assert m.statistics()["bios"] == 200


# -- profiles -----------------------------------------------------------------


def test_shipped_profiles_are_listed() -> None:
    assert {"none", "lan", "slow-disk", "reorder-heavy"} <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_loads_and_round_trips(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert Profile.from_dict(profile.to_dict()) == profile
    FaultModel(profile, random.Random(0)).on_send("mm", "memcg", "swap_duplicate", 0.0)


def test_profile_shapes_match_their_names() -> None:
    assert load_profile("none").rules == ()
    assert load_profile("lan").rules[0].reorder is False
    assert load_profile("reorder-heavy").rules[0].reorder is True
    assert load_profile("slow-disk").bio_read.kind == "pareto"


def test_profile_stores_rules_as_a_tuple_and_needs_a_name() -> None:
    rule = Rule(latency=Latency.constant(0.1))
    assert Profile("p", rules=[rule]) == Profile("p", rules=(rule,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name: must be a non-empty string, got ''"):
        Profile("")


def test_load_by_path_and_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mine.toml").write_text('[bio_read]\nkind = "constant"\ndelay_s = 0.25\n')
    assert load_profile(tmp_path / "mine.toml").bio_read == Latency.constant(0.25)
    monkeypatch.setenv("KERNSIM_FAULTS_DIR", str(tmp_path))
    assert list_profiles() == ["mine"]
    assert load_profile("mine").name == "mine"


def test_unknown_profile_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown fault profile 'wan' \(known: .*lan.*none"):
        load_profile("wan")


def lan_dict() -> dict[str, Any]:
    return load_profile("lan").to_dict()


def broken(edit: Any) -> dict[str, Any]:
    data = lan_dict()
    data["rules"] = [copy.deepcopy(data["rules"][0]) for _ in range(3)]
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["rules"][2].__setitem__("latency", {"kind": "gauss", "sigma": 1.0}),
            "rules[2].latency.kind: unknown distribution 'gauss' "
            "(known: constant, exponential, pareto, uniform)",
        ),
        (
            lambda d: d["rules"][1].__setitem__("latncy", {}),
            "rules[1].latncy: unknown key (known: dest, latency, msg_type, probability, "
            "reorder, src)",
        ),
        (
            lambda d: d["rules"][0].__setitem__("reorder", "yes"),
            "rules[0].reorder: expected bool, got string",
        ),
        (
            lambda d: d["rules"][0].__setitem__("probability", 1.5),
            "rules[0].probability: must be a number within [0, 1], got 1.5",
        ),
        (lambda d: d["rules"][0].__setitem__("src", ""), "rules[0].src: must be a non-empty"),
        (
            lambda d: d["bio_read"].__setitem__("delay_s", True),
            "bio_read.delay_s: expected number, got bool",
        ),
        (
            lambda d: d["bio_write"].pop("delay_s"),
            "bio_write.delay_s: missing (required: kind, delay_s)",
        ),
        (
            lambda d: d["bio_write"].__setitem__("delay_s", -0.5),
            "bio_write.delay_s: must be a finite number >= 0, got -0.5",
        ),
        (
            lambda d: d["rules"][1]["latency"].__setitem__("lo_s", 0.9),
            "rules[1].latency.hi_s: must be >= lo_s (0.9), got 0.0005",
        ),
        (lambda d: d.__setitem__("rules", {}), "rules: expected array, got table"),
        (lambda d: d.__setitem__("rules", [3]), "rules[0]: expected table, got int"),
        (lambda d: d.__setitem__("seed", 1), "seed: unknown key"),
        (lambda d: d.pop("name"), "name: missing"),
    ],
)
def test_bad_profiles_name_the_path(edit: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Profile.from_dict(broken(edit))


def test_bad_profile_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\nlatency = { kind = "gauss" }\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: rules[0].latency.kind: unknown")):
        load_profile(path)
    path.write_text("rules = [\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: invalid TOML")):
        load_profile(path)
