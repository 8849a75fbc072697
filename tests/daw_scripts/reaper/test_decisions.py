"""The producer decides on a delivered job from a pad, OSC or the voice; the companion makes it so in the project.

choose n makes variant n the active take, keep crops the item to it, discard takes the job's takes away again;
each is one undo point, applied once (also across restarts), after the import when it arrives first.
"""

import copy
from pathlib import Path

import pytest

from osc_schema.spec import DECISIONS_FOLDER

from .conftest import to_lua
from .results import (
    MIX,
    active,
    bounds,
    decide,
    decision_json,
    deliver,
    publish_decision,
)

JOB = "j-20261121-190512-3f2a"
OTHER_JOB = "j-20261121-191000-77aa"


def names(item) -> list[str]:
    return [t["name"] for t in item["takes"]]


def two_variants(project, *, job=JOB, **where):
    """An item at 30..90 s with the job's two inpainted variants imported onto its middle piece (41.5..51 s)."""
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    ids = dict(item=item["guid"], track=mix["guid"], position=30.0, job=job, **where)
    manifests = [deliver(project.drop_folder, variant=1, **ids), deliver(project.drop_folder, variant=2, prompt="", **ids)]
    result = project.run("import now")
    assert result.errors == [] and names(project.items()[1]) == ["mix.wav", "inpaint v1: soft guitar solo", "inpaint v2"]
    return manifests


def published_later(project, text: str) -> str:
    """A tick hook (Lua) that publishes the decision `text` for JOB while the companion runs, as the daemon would."""
    staged = project.tmp / f"staged-{len(list(project.tmp.glob('staged-*')))}.json"
    staged.write_text(text)
    return f'function() os.rename("{staged}", "{project.drop_folder / DECISIONS_FOLDER / (JOB + ".json")}") end'


def selection(project) -> list[bool]:
    return [bool(item.get("selected")) for track in project.state["tracks"] for item in track["items"]]


def test_choose_makes_the_variant_the_active_take_as_one_undo_point(project):
    manifests = two_variants(project)
    project.items()[1]["active_take"] = 2  # the producer listened to variant 1 last
    decide(project.drop_folder, JOB, 1, "choose", 2, manifests)

    result = project.run("import now")

    assert result.errors == [] and result.outside_undo == []
    middle = project.items()[1]
    assert names(middle) == ["mix.wav", "inpaint v1: soft guitar solo", "inpaint v2"]  # nothing removed
    assert active(middle)["name"] == "inpaint v2"
    assert result.undo == [f"DAW Bridge: choose variant 2 of job {JOB}"]
    assert f"DAW Bridge: {JOB}: choose variant 2\n" in result.console
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t1\n"


def test_choosing_0_brings_back_the_take_that_was_active_before_the_job(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 1, "choose", 0, manifests)

    project.run("import now")

    middle = project.items()[1]
    assert active(middle)["source"]["file"] == MIX and len(middle["takes"]) == 3


def test_keep_crops_the_piece_to_the_variant_and_leaves_the_rest_of_the_song_and_the_selection(project):
    manifests = two_variants(project)
    left, _, right = copy.deepcopy(project.items())
    selected = selection(project)
    decide(project.drop_folder, JOB, 1, "keep", 2, manifests)

    result = project.run("import now")

    assert result.errors == [] and result.outside_undo == []
    new_left, middle, new_right = project.items()
    assert names(middle) == ["inpaint v2"] and active(middle)["name"] == "inpaint v2"
    assert bounds(middle) == (41.5, pytest.approx(51.0))
    assert (new_left, new_right) == (left, right)
    assert selection(project) == selected  # the crop ran on the job's piece alone
    assert result.actions == [40131]  # Take: Crop to active take in items
    assert result.undo == [f"DAW Bridge: keep variant 2 of job {JOB}"]


def test_choose_2_then_keep_leaves_variant_2_alone_even_when_keep_names_no_take(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 1, "choose", 2, manifests)
    keep = published_later(project, decision_json(JOB, 2, "keep", None, manifests))  # keep whatever is active

    result = project.run("companion", ticks=4, on_tick={2: keep})

    assert result.errors == []
    assert names(project.items()[1]) == ["inpaint v2"]
    assert result.undo == [f"DAW Bridge: choose variant 2 of job {JOB}", f"DAW Bridge: keep the active take of job {JOB}"]
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t1\n{JOB}\t2\n"


def test_a_companion_that_was_not_running_applies_only_the_latest_decision(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 1, "choose", 1, manifests)
    decide(project.drop_folder, JOB, 2, "keep", 2, manifests)  # rewrote the file before REAPER looked

    result = project.run("import now")

    assert result.undo == [f"DAW Bridge: keep variant 2 of job {JOB}"]
    assert names(project.items()[1]) == ["inpaint v2"]


def test_discard_removes_the_jobs_takes_and_heals_the_splits_leaving_the_item_as_it_was(project):
    manifests = two_variants(project)
    before = dict(copy.deepcopy(project.items()[0]), length=60.0)  # the item before the job split it at 41.5 s
    decide(project.drop_folder, JOB, 1, "discard", None, manifests)

    result = project.run("import now")

    assert result.errors == [] and result.outside_undo == []
    assert project.items() == [before]
    assert result.actions == [40129, 40129]  # Take: Delete active take from items, once per variant
    assert result.undo == [f"DAW Bridge: discard the variants of job {JOB}"]


def test_a_split_the_producer_changed_since_is_not_healed(project):
    manifests = two_variants(project)
    project.items()[2]["position"] += 1.0  # the rest of the song moved a second later by hand
    decide(project.drop_folder, JOB, 1, "discard", None, manifests)

    project.run("import now")

    start, rest = project.items()
    assert bounds(start) == (30.0, pytest.approx(51.0)) and names(start) == ["mix.wav"]
    assert bounds(rest)[0] == pytest.approx(52.0)


def test_keeping_the_original_is_a_discard(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 1, "keep", 0, manifests)

    project.run("import now")

    [whole] = project.items()
    assert bounds(whole) == (30.0, 90.0) and names(whole) == ["mix.wav"]


def test_discarding_an_extension_gives_the_item_its_length_back(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    manifest = deliver(project.drop_folder, operation="extend", start=60.0, end=90.0, item=item["guid"],
                       track=mix["guid"], variants=1)
    project.run("import now")
    assert bounds(project.items()[1]) == (59.0, 90.0)
    decide(project.drop_folder, JOB, 1, "discard", None, [manifest])

    project.run("import now")

    [original] = project.items()
    assert bounds(original) == (0.0, 60.0) and names(original) == ["mix.wav"]  # not 30 s more of the file


def test_discarding_removes_an_item_the_job_made(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    extension = deliver(project.drop_folder, operation="extend", start=60.0, end=75.0, handle=0.0, item=item["guid"],
                        track=mix["guid"], variants=1)
    project.run("import now")
    assert len(project.items()) == 2
    decide(project.drop_folder, JOB, 1, "discard", None, [extension])

    result = project.run("import now")

    assert result.errors == [] and result.outside_undo == []
    [original] = project.items()
    assert bounds(original) == (0.0, 60.0) and names(original) == ["mix.wav"]


def test_discarding_results_on_the_results_track_removes_their_item(project):
    project.add_track()
    manifests = [deliver(project.drop_folder, position=30.0, variant=n, item="{GONE}", track="{GONE TOO}")
                 for n in (1, 2)]
    project.run("import now")
    assert len(project.items(1)) == 1
    decide(project.drop_folder, JOB, 1, "discard", None, manifests)

    result = project.run("import now")

    assert result.errors == [] and project.items(1) == []
    assert result.actions == []  # the item went as a whole, no take was removed one by one


def test_a_full_delivery_extension_kept_stays_long_and_one_discarded_shrinks_back(project):
    mix = project.add_track()
    kept = project.add_item(mix, position=0.0, length=60.0)
    dropped = project.add_item(project.add_track("Stem"), position=0.0, length=60.0, file="/music/song/stem.wav")
    manifests = {}
    for item, track, job, source in ((kept, mix, JOB, MIX), (dropped, project.state["tracks"][1], OTHER_JOB,
                                                               "/music/song/stem.wav")):
        manifests[job] = deliver(project.drop_folder, operation="extend", start=60.0, end=90.0, delivery="full",
                                 item=item["guid"], track=track["guid"], job=job, source=source, variants=1)
    project.run("import now")
    decide(project.drop_folder, JOB, 1, "keep", 1, [manifests[JOB]])
    decide(project.drop_folder, OTHER_JOB, 1, "discard", None, [manifests[OTHER_JOB]])

    project.run("import now")

    [whole] = project.items(0)
    assert bounds(whole) == (0.0, 90.0) and names(whole) == ["extend v1: soft guitar solo"]
    [stem] = project.items(1)
    assert bounds(stem) == (0.0, 60.0) and names(stem) == ["mix.wav"]


def test_a_decision_that_arrives_before_its_results_waits_for_them_and_says_so_once(project, tmp_path):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    staged = [deliver(tmp_path / "staging", variant=n, position=30.0, item=item["guid"], track=mix["guid"])
              for n in (1, 2)]
    decide(project.drop_folder, JOB, 1, "keep", 1, staged)
    moves = " ".join(f'os.rename("{p}", "{project.drop_folder / p.name}")'
                     for m in staged for p in (m.with_suffix(".wav"), m))

    result = project.run("companion", ticks=5, on_tick={3: f"function() {moves} end"})

    assert result.errors == []
    assert result.console.count("waits for its results to be imported") == 1
    assert f"{JOB}: keep variant 1 waits for its results to be imported ({staged[0].name}, {staged[1].name})" \
        in result.console
    assert names(project.items()[1]) == ["inpaint v1: soft guitar solo"]
    assert result.undo[-1] == f"DAW Bridge: keep variant 1 of job {JOB}"


def test_a_decision_is_never_applied_twice_also_after_reaper_restarts(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 1, "choose", 1, manifests)
    project.run("companion", ticks=3)
    project.items()[1]["active_take"] = 3  # the producer clicks variant 2 by hand afterwards

    project.restart()
    result = project.run("companion", "import now", ticks=3)

    assert result.undo == []
    assert active(project.items()[1])["name"] == "inpaint v2"
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t1\n"
    assert project.project_record("daw_bridge_decided") == {JOB: "1"}


@pytest.mark.parametrize(("text", "said"), [
    ("{not json", "not applied: "),
    ('{"format": "daw-bridge.decision/2", "job_id": "%s", "seq": 1, "decision": "discard", "manifests": ["a.json"]}',
     'not applied: format is "daw-bridge.decision/2", this companion reads "daw-bridge.decision/1"'),
    ('{"format": "daw-bridge.decision/1", "job_id": "j-other", "seq": 1, "decision": "discard", "manifests": ["a.json"]}',
     "not applied: job_id j-other does not match the file name"),
    (('{"format": "daw-bridge.decision/1", "job_id": "%s", "seq": 1, "decision": "choose", "choice": 3, '
      '"manifests": ["a.json", "b.json"]}'), "not applied: choice must be 0 (the original) to 2, got 3"),
    ('{"format": "daw-bridge.decision/1", "job_id": "%s", "seq": 0, "decision": "keep", "manifests": ["a.json"]}',
     "not applied: seq must be a whole number from 1, got 0"),
    ('{"format": "daw-bridge.decision/1", "job_id": "%s", "seq": 1, "decision": "delete", "manifests": ["a.json"]}',
     "not applied: decision must be choose, keep or discard, got delete"),
    ('{"format": "daw-bridge.decision/1", "job_id": "%s", "seq": 1, "decision": "keep", "manifests": ["../a.json"]}',
     "not applied: manifests must be file names, got ../a.json"),
])
def test_a_malformed_decision_is_named_once_and_skipped_while_good_ones_apply(project, text, said):
    manifests = two_variants(project, job=OTHER_JOB)
    publish_decision(project.drop_folder, f"{JOB}.json", text.replace("%s", JOB))
    decide(project.drop_folder, OTHER_JOB, 1, "choose", 1, manifests)
    before = copy.deepcopy(project.state["tracks"])
    before[0]["items"][1]["active_take"] = 2

    result = project.run("companion", ticks=4)

    assert result.errors == []
    assert result.console.count(f"decision {JOB}.json not applied") == 1
    assert f"decision {JOB}.json {said}" in result.console
    assert project.state["tracks"] == before  # only the good decision did anything
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{OTHER_JOB}\t1\n"


def test_a_decision_on_takes_the_producer_deleted_does_what_it_can_and_says_so(project):
    manifests = two_variants(project)
    middle = project.items()[1]
    del middle["takes"][2]  # variant 2's take, deleted by hand
    middle["active_take"] = 2
    decide(project.drop_folder, JOB, 1, "keep", 2, manifests)

    result = project.run("import now")

    assert "keep variant 2 (variant 2's take is no longer in the project; nothing kept)" in result.console
    assert names(project.items()[1]) == ["mix.wav", "inpaint v1: soft guitar solo"]
    decide(project.drop_folder, JOB, 2, "discard", None, manifests)

    project.run("import now")

    assert [names(i) for i in project.items()] == [["mix.wav"]]


def test_a_decision_on_a_job_whose_takes_are_all_gone_changes_nothing_and_is_recorded(project):
    manifests = two_variants(project)
    middle = project.items()[1]
    middle["takes"], middle["active_take"] = middle["takes"][:1], 1
    decide(project.drop_folder, JOB, 1, "keep", 1, manifests)

    result = project.run("import now")

    assert result.undo == []
    assert "keep variant 1 (variant 1's take is no longer in the project; nothing kept)" in result.console
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t1\n"


def test_other_items_and_other_jobs_takes_are_untouched(project):
    manifests = two_variants(project)
    stem = project.add_track("Stem")
    project.add_item(stem, position=0.0, length=120.0, file="/music/song/stem.wav")
    project.state["tracks"][1]["items"][0]["takes"].append({"guid": "{STEM-COMP}", "name": "comp 2",
                                                            "source": {"file": "/music/comp2.wav"}})
    other = deliver(project.drop_folder, variant=1, start=40.0, end=44.0, position=0.0, job=OTHER_JOB,
                    item=project.state["tracks"][1]["items"][0]["guid"], track=stem["guid"],
                    source="/music/song/stem.wav")
    project.run("import now")
    untouched = copy.deepcopy(project.state["tracks"][1])
    decide(project.drop_folder, JOB, 1, "keep", 1, manifests)

    result = project.run("import now")

    assert result.errors == []
    assert names(project.items()[1]) == ["inpaint v1: soft guitar solo"]
    assert project.state["tracks"][1] == untouched
    decide(project.drop_folder, OTHER_JOB, 1, "discard", None, [other])

    project.run("import now")

    stem_items = project.state["tracks"][1]["items"]
    assert [names(i) for i in stem_items] == [["mix.wav", "comp 2"]]  # the producer's own take stays
    assert names(project.items()[1]) == ["inpaint v1: soft guitar solo"]


def test_the_jobs_takes_are_found_after_the_piece_moved_to_another_track(project):
    manifests = two_variants(project)
    piece = project.items(0).pop(1)
    project.add_track("Comp")["items"].append(piece)
    decide(project.drop_folder, JOB, 1, "keep", 1, manifests)

    project.run("import now")

    assert names(project.items(1)[0]) == ["inpaint v1: soft guitar solo"]


def test_takes_imported_before_they_were_marked_are_found_by_their_file(project):
    manifests = two_variants(project)
    for take in project.items()[1]["takes"]:
        take.pop("ext", None)  # as an older companion left them
    decide(project.drop_folder, JOB, 1, "discard", None, manifests)

    project.run("import now")

    assert [names(i) for i in project.items()] == [["mix.wav"]]


def test_after_a_keep_a_later_choose_or_discard_cannot_bring_back_what_the_crop_removed_and_says_so(project):
    manifests = two_variants(project)
    decide(project.drop_folder, JOB, 2, "keep", 2, manifests)
    project.run("import now")
    decide(project.drop_folder, JOB, 3, "choose", 1, manifests)
    discard = published_later(project, decision_json(JOB, 4, "discard", 0, manifests))

    result = project.run("companion", ticks=3, on_tick={2: discard})

    assert names(project.items()[1]) == ["inpaint v2"]  # no hole in the song: Edit > Undo brings the takes back
    assert "choose variant 1 (variant 1's take is no longer in the project; nothing changed)" in result.console
    assert ("discard the variants (the item at 41.50 s keeps the job's take: its original take is gone, and removing "
            "the last take would leave a hole)") in result.console
    assert result.undo == []
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t2\n{JOB}\t3\n{JOB}\t4\n"


def a_year_of_decisions(project, count: int = 40) -> list[Path]:
    """`count` jobs imported and kept long ago: their decision files in the drop folder, each applied (the project's
    record and .reaper-decided say so); their takes play on, elsewhere in the song."""
    files, ledger = [], ""
    for n in range(count):
        job, manifest = f"j-20261001-120000-{n:04x}", Path(f"mix_inpaint_12.50-20.00_v1_{n:04x}.json")
        files.append(decide(project.drop_folder, job, 1, "keep", 1, [manifest]))
        project.state["projext"].update({f"daw_bridge_imported/{manifest}": "1", f"daw_bridge_decided/{job}": "1"})
        ledger += f"{job}\t1\n"
    (project.drop_folder / ".reaper-decided").write_text(ledger)
    return files


def test_a_year_of_decisions_is_decoded_once_while_the_companion_runs_and_new_ones_apply_once(project, tmp_path):
    # Each scan (every second) read every decision file in the drop folder, one for each job ever decided, and decoded
    # each again: a year's thousands every second. A file is still read at each scan (the daemon replaces a job's file
    # with its next decision, and REAPER's API tells no file's time or size), but its text is decoded once.
    manifests = two_variants(project)
    year = a_year_of_decisions(project)
    ledger = (project.drop_folder / ".reaper-decided").read_text()
    decide(project.drop_folder, JOB, 1, "choose", 1, manifests)
    keep = published_later(project, decision_json(JOB, 2, "keep", 2, manifests))  # the producer decides again
    drums = project.add_track("Drums")
    item = project.add_item(drums, position=30.0, length=60.0, file="/music/drums.wav")
    staged = [deliver(tmp_path / "staging", variant=n, position=30.0, job=OTHER_JOB, item=item["guid"],
                      track=drums["guid"]) for n in (1, 2)]
    decide(project.drop_folder, OTHER_JOB, 1, "discard", None, staged)  # before its results
    arrive = " ".join(f'os.rename("{p}", "{project.drop_folder / p.name}")'
                      for m in staged for p in (m.with_suffix(".wav"), m))

    result = project.run("companion", ticks=5, on_tick={2: keep, 3: f"function() {arrive} end"})  # six scans

    assert result.errors == []
    assert result.undo == [f"DAW Bridge: choose variant 1 of job {JOB}", f"DAW Bridge: keep variant 2 of job {JOB}",
                           "DAW Bridge: import inpaint v1: soft guitar solo",
                           "DAW Bridge: import inpaint v2: soft guitar solo",
                           f"DAW Bridge: discard the variants of job {OTHER_JOB}"]
    assert names(project.items()[1]) == ["inpaint v2"] and [names(i) for i in project.items(1)] == [["mix.wav"]]
    assert (project.drop_folder / ".reaper-decided").read_text() == ledger + f"{JOB}\t1\n{JOB}\t2\n{OTHER_JOB}\t1\n"
    assert {result.opened[f.name] for f in year} == {6}  # read at each scan: a decision published is seen
    assert {result.decoded[f.read_text()] for f in year} == {1}  # and decoded once


def test_a_decision_applied_while_the_companion_runs_is_applied_again_after_the_project_is_reopened_unsaved(project):
    # The companion remembers the decision files it decoded, not which decisions it applied: the producer closes the
    # project without saving and opens it again (the companion goes on), so the decision's change and its record are
    # gone, and the decision, unchanged in its file, is applied again, once.
    manifests = two_variants(project)
    project.save()  # variant 2 is the active take
    saved = copy.deepcopy(project.state)
    decide(project.drop_folder, JOB, 1, "choose", 1, manifests)
    reopened = (f"function(state) state.tracks, state.projext, state.undo_last = {to_lua(saved['tracks'])}, "
                f"{to_lua(saved['projext'])}, nil for _, track in ipairs(state.tracks) do for _, item in "
                "ipairs(track.items) do item._track = track for _, take in ipairs(item.takes) do take._item = item "
                "end end end end")

    result = project.run("companion", ticks=4, on_tick={2: reopened})

    assert result.errors == []
    assert result.undo == [f"DAW Bridge: choose variant 1 of job {JOB}"] * 2
    assert active(project.items()[1])["name"] == "inpaint v1: soft guitar solo"
    assert project.project_record("daw_bridge_decided") == {JOB: "1"}
