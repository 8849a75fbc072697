"""An outsider's imports: several jobs on one item, delivered together, each sounds over its whole span."""

import copy

import pytest

from .results import MIX, active, bounds, decide, deliver

FIRST, SECOND = "j-20261121-190512-aaaa", "j-20261121-190600-bbbb"


def sounding(project, start: float, end: float) -> list[tuple[float, float, str, float]]:
    """What plays from `start` to `end`: (from, to, file, file second at `from`) per item, in timeline order."""
    out = []
    for item in project.items():
        lo, hi = max(start, item["position"]), min(end, item["position"] + item["length"])
        if hi > lo + 1e-9:
            take = active(item)
            at = take["startoffs"] + (lo - item["position"]) * take["playrate"]
            out.append((pytest.approx(lo), pytest.approx(hi), take["source"]["file"].rsplit("/", 1)[-1],
                        pytest.approx(at)))
    return out


def next_to_each_other(project):
    """An item at 0..60 s and two jobs on it delivered at once: 12.5..20 s and 20.5..30 s (handles of 1 s)."""
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    ids = dict(item=item["guid"], track=mix["guid"])
    first = deliver(project.drop_folder, start=12.5, end=20.0, job=FIRST, **ids)
    second = deliver(project.drop_folder, start=20.5, end=30.0, job=SECOND, **ids)
    return first, second


def test_a_second_job_next_to_the_first_sounds_over_its_whole_span_across_the_first_ones_split(project):
    first, second = next_to_each_other(project)

    result = project.run("companion", ticks=1)

    assert result.errors == [] and result.outside_undo == []
    # the first job's span ends at 21 s, where it split the item; the second's runs 19.5..31 s and must not stop there
    assert sounding(project, 19.5, 31.0) == [(19.5, 21.0, second.with_suffix(".wav").name, 0.0),
                                             (21.0, 31.0, second.with_suffix(".wav").name, 1.5)]
    assert sounding(project, 31.0, 60.0) == [(31.0, 60.0, "mix.wav", 31.0)]
    assert len(result.undo) == 2


def test_discarding_the_second_job_leaves_the_item_as_the_first_job_left_it(project):
    first, second = next_to_each_other(project)
    (project.drop_folder / second.name).rename(project.tmp / second.name)
    (project.drop_folder / second.with_suffix(".wav").name).rename(project.tmp / second.with_suffix(".wav").name)
    project.run("import now")
    after_first = copy.deepcopy(project.items())
    (project.tmp / second.name).rename(project.drop_folder / second.name)
    (project.tmp / second.with_suffix(".wav").name).rename(project.drop_folder / second.with_suffix(".wav").name)
    project.run("import now")
    decide(project.drop_folder, SECOND, 1, "discard", None, [second])

    result = project.run("import now")

    assert result.errors == []
    assert [(bounds(i), [t["source"]["file"] for t in i["takes"]], i["active_take"]) for i in project.items()] == \
        [(bounds(i), [t["source"]["file"] for t in i["takes"]], i["active_take"]) for i in after_first]
    assert MIX in [t["source"]["file"] for t in project.items()[-1]["takes"]]
