"""An outsider's imports: several jobs on one item, delivered together, each sounds over its whole span."""

import copy
import json
import subprocess
from pathlib import Path

import pytest

from tests.adversarial.support import small_tmpfs

from .conftest import PACKAGE, lua5_4, to_lua
from .results import MIX, active, bounds, decide, deliver

FIRST, SECOND = "j-20261121-190512-aaaa", "j-20261121-190600-bbbb"


def in_its_range(manifest) -> list[tuple]:
    """What a minute of mix.wav plays (``sounding``) with the variant of an inpaint of 12.5-20 s (1 s handles) in
    place: the song, the variant over the range and its handles, the song again."""
    return [(0.0, 11.5, "mix.wav", 0.0), (11.5, 21.0, manifest.with_suffix(".wav").name, 0.0),
            (21.0, 60.0, "mix.wav", 21.0)]


def sounding(project, start: float, end: float) -> list[tuple]:
    """What plays from `start` to `end`: (from, to, file, file second at `from`), pieces that play on in one file
    joined, in timeline order."""
    out = []
    for item in project.items():
        lo, hi = max(start, item["position"]), min(end, item["position"] + item["length"])
        if hi > lo + 1e-9:
            take = active(item)
            at = take["startoffs"] + (lo - item["position"]) * take["playrate"]
            file = take["source"]["file"].rsplit("/", 1)[-1]
            if out and out[-1][2] == file and abs(out[-1][1] - lo) < 1e-6 and abs(
                    out[-1][3] + (lo - out[-1][0]) - at) < 1e-6:
                out[-1][1] = hi
            else:
                out.append([lo, hi, file, at])
    return [(pytest.approx(lo), pytest.approx(hi), file, pytest.approx(at)) for lo, hi, file, at in out]


def next_to_each_other(project, second_start: float = 20.5):
    """An item at 0..60 s and two jobs on it delivered at once: 12.5..20 s and from ``second_start`` for 9.5 s
    (handles of 1 s)."""
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    ids = dict(item=item["guid"], track=mix["guid"])
    first = deliver(project.drop_folder, start=12.5, end=20.0, job=FIRST, **ids)
    second = deliver(project.drop_folder, start=second_start, end=second_start + 9.5, job=SECOND, **ids)
    return first, second


def test_a_second_job_next_to_the_first_sounds_over_its_whole_span_across_the_first_ones_split(project):
    first, second = next_to_each_other(project)

    result = project.run("companion", ticks=1)

    assert result.errors == [] and result.outside_undo == []
    # the first job's span ends at 21 s, where it split the item; the second's runs to 31 s and must not stop there
    assert sounding(project, 20.25, 31.0) == [(20.25, 31.0, second.with_suffix(".wav").name, 0.75)]
    assert sounding(project, 31.0, 60.0) == [(31.0, 60.0, "mix.wav", 31.0)]
    assert len(result.undo) == 2


@pytest.mark.parametrize("order", ["in time order", "later range first"])
def test_a_handle_never_cuts_off_the_other_jobs_replaced_range_they_meet_halfway_between_the_ranges(project, order):
    first, second = next_to_each_other(project)
    if order == "later range first":  # the companion imports in name order: the second job's range comes first
        for path in (first, first.with_suffix(".wav")):
            path.rename(path.with_name("z" + path.name))
        manifest = first.with_name("z" + first.name)
        manifest.write_text(manifest.read_text().replace(f'"{first.with_suffix(".wav").name}"',
                                                         f'"z{first.with_suffix(".wav").name}"'))
        first = manifest

    result = project.run("companion", ticks=1)

    assert result.errors == []
    # the first range ends at 20 s and the second starts at 20.5 s: each variant sounds up to 20.25 s, where both
    # files play the source (the first's file from 11.5 s, the second's from 19.5 s)
    assert sounding(project, 0.0, 31.0) == [(0.0, 11.5, "mix.wav", 0.0),
                                            (11.5, 20.25, first.with_suffix(".wav").name, 0.0),
                                            (20.25, 31.0, second.with_suffix(".wav").name, 0.75)]


def test_touching_ranges_meet_where_one_ends_and_the_other_starts(project):
    first, second = next_to_each_other(project, second_start=20.0)

    project.run("import now")

    assert sounding(project, 11.5, 28.5) == [(11.5, 20.0, first.with_suffix(".wav").name, 0.0),
                                             (20.0, 28.5, second.with_suffix(".wav").name, 1.0)]


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


def test_a_result_is_imported_once_not_every_second_where_the_drop_folder_takes_no_list(project):
    # the record of imports is the project's; a drop folder REAPER cannot write (a full disk, another user's files)
    # never makes a result placed again at every scan
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    manifest = deliver(project.drop_folder, item=item["guid"], track=mix["guid"])
    (project.drop_folder / ".reaper-imported").mkdir()  # an older companion's list, unreadable and unwritable

    result = project.run("companion", ticks=4)

    assert result.errors == [] and result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"]
    assert [len(i["takes"]) for i in project.items()] == [1, 2, 1]
    assert project.imported() == [manifest.name]


def test_a_result_whose_placement_failed_is_tried_again_at_the_next_scan(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    manifest = deliver(project.drop_folder, item=item["guid"], track=mix["guid"])
    manifest.write_text(manifest.read_text().replace(f'"path": "{MIX}"', '"path": 5'))

    failed = project.run("import now")

    assert failed.errors == [] and f"{manifest.name} not imported: " in failed.console
    assert [len(i["takes"]) for i in project.items()] == [1]
    assert project.imported() == []
    manifest.write_text(manifest.read_text().replace('"path": 5', f'"path": "{MIX}"'))

    project.run("import now")

    assert [len(i["takes"]) for i in project.items()] == [1, 2, 1]
    assert project.imported() == [manifest.name]


def test_audio_still_being_copied_in_is_imported_once_it_is_whole_and_not_before(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    manifest = deliver(project.drop_folder, item=item["guid"], track=mix["guid"])
    audio = manifest.with_suffix(".wav")
    whole = audio.read_bytes()
    audio.write_bytes(whole[:len(whole) // 2])  # a sync tool or a copy half way
    staged = project.tmp / "whole.wav"
    staged.write_bytes(whole)

    result = project.run("companion", ticks=4, on_tick={3: f'function() os.rename("{staged}", "{audio}") end'})

    assert result.errors == []
    assert result.console.count(f"{manifest.name} not imported yet: its audio {audio.name} holds ") == 1
    assert result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"]  # once, when whole
    assert [len(i["takes"]) for i in project.items()] == [1, 2, 1]


@pytest.mark.parametrize(("decision", "choice", "first_sounds"), [("discard", None, False), ("choose", 0, False),
                                                                   ("keep", 1, True), ("choose", 1, True)])
def test_a_decision_on_one_job_leaves_the_neighbouring_job_sounding_where_they_share_a_piece(
        project, decision, choice, first_sounds):
    first, second = next_to_each_other(project)
    project.run("import now")  # the second's take is the active one from 20.25 s on, on the first one's piece too
    decide(project.drop_folder, FIRST, 1, decision, choice, [first])

    result = project.run("import now")

    assert result.errors == [] and result.outside_undo == []
    shown = first.with_suffix(".wav").name if first_sounds else "mix.wav"
    assert sounding(project, 11.5, 31.0) == [(11.5, 20.25, shown, 0.0 if first_sounds else 11.5),
                                             (20.25, 31.0, second.with_suffix(".wav").name, 0.75)]
    assert result.undo == [f"DAW Bridge: {decision} " + ("the variants" if decision == "discard" else (
        "the original" if choice == 0 else "variant 1")) + f" of job {FIRST}"]


def test_an_item_the_producer_split_inside_the_range_while_the_job_ran_gets_the_variant_over_both_pieces(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=16.0)
    later = project.add_item(mix, position=16.0, length=44.0, offset=16.0)  # the right half of a split at 16 s
    later["takes"][0]["guid"] = project.guid()
    manifest = deliver(project.drop_folder, item=item["guid"], track=mix["guid"])  # range 12.5..20 s

    result = project.run("import now")

    assert result.errors == [] and len(result.undo) == 1
    assert sounding(project, 0.0, 60.0) == in_its_range(manifest)


def test_a_full_delivery_on_an_item_split_inside_the_range_is_a_take_on_both_pieces(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=16.0)
    project.add_item(mix, position=16.0, length=44.0, offset=16.0)  # the right half of a split at 16 s
    manifest = deliver(project.drop_folder, delivery="full", item=item["guid"], track=mix["guid"])  # 12.5..20 s

    result = project.run("import now")

    assert result.errors == [] and result.splits == [] and len(result.undo) == 1
    assert sounding(project, 0.0, 60.0) == [(0.0, 60.0, manifest.with_suffix(".wav").name, 0.0)]


def sent_from_song_then_other_open(project):
    """song.RPP sends 12.5..20 s of its item; then other.RPP, saved in the same folder, is open; the result arrives."""
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    project.select_time(12.5, 20.0)
    project.run("inpaint", dialog=[{"Prompt": "soft guitar solo", "Variants": "1"}])
    [request] = project.requests()
    manifest = deliver(project.drop_folder, item=item["guid"], track=mix["guid"])
    manifest.write_text(manifest.read_text().replace("reaper-1700000000-1", request["request_id"]))
    song = copy.deepcopy(project.state)
    project.state["project_file"] = str(project.project_path / "other.RPP")
    project.state["tracks"] = []
    project.state["projext"] = {}  # another project: its own extended state, none of song.RPP's records
    other = project.add_track("Drums")
    project.add_item(other, position=0.0, length=30.0, file="/music/other/drums.wav")
    return manifest, song


def test_a_result_of_another_project_saved_in_the_same_folder_waits_for_that_project(project):
    manifest, song = sent_from_song_then_other_open(project)
    other = copy.deepcopy(project.state["tracks"])

    result = project.run("companion", ticks=3)

    assert result.errors == [] and result.undo == []
    assert project.state["tracks"] == other  # no results track, nothing on the drums
    assert result.console.count(f"{manifest.name} left for song.RPP, the project that sent it") == 1
    assert project.imported() == []

    project.state = dict(song, now=project.state["now"])  # song.RPP is open again
    project.run("import now")

    assert [len(i["takes"]) for i in project.items()] == [1, 2, 1]


def test_a_copy_of_the_project_saved_under_another_name_takes_the_result_onto_its_item(project):
    manifest, song = sent_from_song_then_other_open(project)
    project.state = dict(song, project_file=str(project.project_path / "song v2.RPP"), now=project.state["now"])

    result = project.run("import now")

    assert result.errors == [] and [len(i["takes"]) for i in project.items()] == [1, 2, 1]


def test_another_projects_results_in_the_shared_folder_are_read_once_and_their_senders_once_a_scan(project):
    # song.RPP sent 40 requests and their results wait for it; other.RPP, saved in the same folder, is in front with
    # the companion running. Each result it leaves was looked up in the folder's ledger of senders (.reaper-sent, a line
    # for every request any project there ever sent) by reading all of it again, and read again with its audio at
    # every scan: a year's thousands of lines read thousands of times every second froze REAPER at each scan.
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    project.select_time(12.5, 20.0)
    project.run(*["inpaint"] * 40, dialog=[{"Prompt": "soft guitar solo", "Variants": "1", "Render": "n"}] * 40)
    manifests = []
    for n, request in enumerate(project.requests()):
        manifests.append(deliver(project.drop_folder, variants=1, job=f"j-20261121-190512-{n:04d}",
                                 item=item["guid"], track=mix["guid"]))
        manifests[-1].write_text(manifests[-1].read_text().replace("reaper-1700000000-1", request["request_id"]))
    song = dict(copy.deepcopy(project.state), project_file=str(project.project_path / "song.RPP"))
    project.state["project_file"] = str(project.project_path / "other.RPP")
    project.state["tracks"], project.state["projext"] = [], {}
    project.add_item(project.add_track("Drums"), position=0.0, length=30.0, file="/music/other/drums.wav")
    song_in_front = ("function(state) state.project_file, state.tracks, state.projext = "
                     f"{to_lua(song['project_file'])}, {to_lua(song['tracks'])}, {to_lua(song['projext'])} "
                     "for _, track in ipairs(state.tracks) do for _, item in ipairs(track.items) do "
                     "item._track = track for _, take in ipairs(item.takes) do take._item = item end end end end")

    other = copy.deepcopy(project.state)

    result = project.run("companion", ticks=2)  # three scans

    assert result.errors == [] and result.undo == [] and project.imported() == []
    assert result.console.count("left for song.RPP, the project that sent it") == 40
    assert result.opened[".reaper-sent"] == 3  # once a scan, for all 40
    assert {result.opened[m.name] for m in manifests} == {1}  # and each result once

    # the same companion goes on when the producer switches to song.RPP's tab: its results come in there
    project.state = other
    result = project.run("companion", ticks=3, on_tick={2: song_in_front})

    assert result.errors == [] and len(result.undo) == 40 and len(project.imported()) == 40
    assert [t["name"] for t in project.state["tracks"]] == ["Mix"]  # on song.RPP's item, as it sent them


@pytest.mark.parametrize(("decision", "choice", "first_sounds"), [("choose", 1, True), ("keep", 1, True),
                                                                   ("discard", None, False)])
def test_a_decision_on_the_first_of_two_jobs_on_the_same_range_is_heard(project, decision, choice, first_sounds):
    # the producer asked again for the same bars with another prompt, heard both, and prefers the first job's (or
    # drops it): its take lies under the second's on the very same piece, which is no neighbour's handle
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    ids = dict(item=item["guid"], track=mix["guid"])
    first = deliver(project.drop_folder, start=12.5, end=20.0, job=FIRST, **ids)
    project.run("import now")
    second = deliver(project.drop_folder, start=12.5, end=20.0, job=SECOND, **ids)
    project.run("import now")  # the second job's take is the active one over 11.5..21 s now
    decide(project.drop_folder, FIRST, 1, decision, choice, [first])

    result = project.run("import now")

    assert result.errors == []
    assert sounding(project, 11.5, 21.0) == [(11.5, 21.0, (first if first_sounds else second).with_suffix(".wav").name,
                                              0.0)]


def test_a_list_rewritten_on_a_full_disk_is_refused_and_left_whole(tmp_path):
    # A file written atomically (a request; the import list, when it lived in the drop folder) on a full disk: the
    # text sits in the write buffer and only the close finds no room; renamed into place cut short, an import list
    # made every result listed before import again.
    with small_tmpfs(tmp_path / "drop", "64k") as drop:
        (drop / ".reaper-imported").write_text("a.json\nb.json\n")
        (drop / "fill").write_bytes(bytes(64 * 1024 - 4096))  # every page but the list's
        script = ('package.path = "./?.lua;" .. package.path; reaper = {}\n'
                  'print(require("bridge_util").write_atomic(arg[1], string.rep("c.json\\n", 100)))')
        said = subprocess.run([lua5_4(), "-e", f"arg = {{'{drop / '.reaper-imported'}'}}", "-e", script],
                              capture_output=True, text=True, cwd=PACKAGE, timeout=30)
        assert said.stdout.startswith("nil\tcannot write ") and "No space left on device" in said.stdout, said
        assert (drop / ".reaper-imported").read_text() == "a.json\nb.json\n"
        assert sorted(p.name for p in drop.iterdir()) == [".reaper-imported", "fill"]  # no temporary file left


def two_items_of_one_mix(project):
    """Item A at 0..60 s and item B at 100..160 s both play mix.wav from 0; 12.5..20 s was sent from B."""
    mix = project.add_track()
    first = project.add_item(mix, position=0.0, length=60.0)
    later = project.add_item(mix, position=100.0, length=60.0)
    manifest = deliver(project.drop_folder, position=100.0, item=later["guid"], track=mix["guid"])
    return mix, first, later, manifest


def test_a_result_whose_item_was_split_goes_on_its_piece_never_on_a_copy_earlier_on_the_track(project):
    # the first item on the track playing the same source second took it: the variant sounded at 11.5 s
    mix, first, later, manifest = two_items_of_one_mix(project)
    later["length"] = 5.0  # the producer split B at 105 s while the job ran
    project.add_item(mix, position=105.0, length=55.0, offset=5.0)

    result = project.run("import now")

    assert result.errors == []
    assert sounding(project, 0.0, 60.0) == [(0.0, 60.0, "mix.wav", 0.0)]
    assert sounding(project, 100.0, 160.0) == [(100.0, 111.5, "mix.wav", 0.0),
                                               (111.5, 121.0, manifest.with_suffix(".wav").name, 0.0),
                                               (121.0, 160.0, "mix.wav", 21.0)]


def test_a_result_whose_item_was_deleted_goes_to_the_results_track_and_says_why(project):
    mix, first, later, manifest = two_items_of_one_mix(project)
    mix["items"].remove(later)

    result = project.run("import now")

    assert result.errors == []
    assert [len(i["takes"]) for i in project.items()] == [1]  # A is no piece of B
    results = project.state["tracks"][1]
    assert results["name"] == "DAW Bridge results"
    assert [bounds(i) for i in results["items"]] == [(111.5, 121.0)]
    assert "(results track at 111.50 s, its timeline position: its item is gone)" in result.console


def test_a_result_whose_item_no_longer_plays_the_range_says_so(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=10.0)  # trimmed to end before the range
    deliver(project.drop_folder, item=item["guid"], track=mix["guid"])

    result = project.run("import now")

    assert result.errors == []
    assert "(results track at 11.50 s, its timeline position: its item no longer plays the range)" in result.console


def sent_from_the_second_take(project, track, pieces: list[tuple[float, float]]) -> Path:
    """Items (position, length) on ``track`` each playing mix.wav twice: take 1 slipped by 5 s, take 2 (active) from
    0; the manifest of a request the first item's take 2 sent."""
    items = []
    for position, length in pieces:
        item = project.add_item(track, position=position, length=length, offset=position + 5.0)
        item["takes"].append(dict(item["takes"][0], guid=project.guid(), startoffs=position))
        item["active_take"] = 2
        items.append(item)
    manifest = deliver(project.drop_folder, item=items[0]["guid"], track=track["guid"])
    fields = json.loads(manifest.read_text())
    fields["ids"]["take"] = items[0]["takes"][1]["guid"]
    manifest.write_text(json.dumps(fields))
    return manifest


def test_the_take_that_sent_the_request_lines_up_the_result_where_the_item_plays_the_file_twice(project):
    # take 1 plays mix.wav slipped by 5 s, take 2 (active, the one that sent the request) from 0: the first take
    # playing the path was taken for the source, and the variant landed 5 s early
    mix = project.add_track()
    manifest = sent_from_the_second_take(project, mix, [(0.0, 60.0)])

    result = project.run("import now")

    assert result.errors == []
    assert sounding(project, 0.0, 60.0) == in_its_range(manifest)


def test_a_full_delivery_whose_item_is_gone_places_only_the_range_and_handles_on_the_results_track(project):
    # the whole song landed there: 0..240 s over the whole arrangement, doubling the song
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    deliver(project.drop_folder, delivery="full", item=item["guid"], track=mix["guid"])  # 12.5..20 s, handles 1 s
    mix["items"].remove(item)

    result = project.run("import now")

    assert result.errors == []
    [placed] = project.state["tracks"][1]["items"]
    assert bounds(placed) == (pytest.approx(11.5), pytest.approx(21.0))
    assert active(placed)["startoffs"] == pytest.approx(11.5)


def test_a_split_inside_the_range_of_an_item_playing_the_file_twice_carries_the_variant_over_both_pieces(project):
    # the right half's takes have GUIDs of their own: the take that lines up with the request's is the one to follow
    mix = project.add_track()
    manifest = sent_from_the_second_take(project, mix, [(0.0, 16.0), (16.0, 44.0)])  # a split at 16 s

    result = project.run("import now")

    assert result.errors == []
    assert sounding(project, 0.0, 60.0) == in_its_range(manifest)
