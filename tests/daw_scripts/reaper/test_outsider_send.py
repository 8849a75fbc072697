"""An outsider's sends and placements: what a producer's project really looks like when Inpaint or Extend runs, and
where the results land afterwards (REAPER mocked by the harness, which follows REAPER's published API)."""

import json

import pytest

from .conftest import NO
from .results import active, deliver


def unsaved_project(project):
    """A project never saved: REAPER's 'project path' is then its default media folder, shared by every such project."""
    media = project.tmp / "REAPER Media"
    media.mkdir()
    project.project_path = media
    project.state["project_path"] = str(media)
    project.state["project_file"] = ""
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=30.0)
    project.select_time(15.0, 20.0)
    return mix, item


def test_an_unsaved_project_is_asked_to_be_saved_before_anything_is_sent(project):
    unsaved_project(project)

    for operation in ("inpaint", "extend"):
        result = project.run(operation, dialog=[{"Prompt": "soft guitar solo"}], answers=[])

        assert result.errors == []
        assert result.dialogs == []
        assert [m["text"] for m in result.messages] == [
            "Save the project first: daw-bridge delivers its results into a folder beside the project file, "
            "and this project has none yet."]
        assert not project.inbox.exists() or project.requests() == []
        assert not (project.project_path / "daw-bridge").exists()


def test_results_in_the_shared_folder_of_unsaved_projects_are_not_taken_into_another_unsaved_project(project):
    mix, item = unsaved_project(project)
    # another unsaved project's results (item and track this project does not have), in the shared folder
    deliver(project.project_path / "daw-bridge", item="{OTHER-ITEM}", track="{OTHER-TRACK}")

    result = project.run("companion", ticks=2)
    result_now = project.run("import now")

    assert result.errors == [] and result_now.errors == []
    assert [t["name"] for t in project.state["tracks"]] == ["Mix"]  # no results track made
    assert [len(i["takes"]) for i in project.items()] == [1]
    assert project.imported() == []
    assert result.console.count("nothing imported until the project is saved") == 1  # once, not every second


PLAYED = {"pitch": 2.0, "pitchmode": 589824, "vol": 0.5, "pan": -0.25, "chanmode": 3, "ppitch": 1}


@pytest.mark.parametrize("delivery", ["patch", "full"])
def test_a_variant_take_plays_its_file_as_the_original_take_plays_the_song(project, delivery):
    # the producer's take is pitched up 2 semitones, 6 dB down, panned, and plays the file's left channel only
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0, **PLAYED)
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], delivery=delivery)

    result = project.run("import now")

    assert result.errors == []
    [piece] = [i for i in project.items() if len(i["takes"]) == 2]
    new = active(piece)
    assert new["name"].startswith("inpaint v1")
    assert {key: new.get(key) for key in PLAYED} == PLAYED


def test_two_selected_items_both_holding_the_range_are_named_and_nothing_is_sent(project):
    # a marquee over the range selected the vocal and the mix: which one to replace is the producer's to say
    # (the third track was never named: REAPER shows it by its number only)
    vocal, mix, unnamed = project.add_track("Vocal"), project.add_track("Mix"), project.add_track("")
    project.add_item(vocal, position=10.0, length=40.0, file="/music/song/vocal.wav")
    project.add_item(mix, position=0.0, length=60.0, file="/music/song/mix.wav")
    project.add_item(unnamed, position=12.0, length=20.0, file="/music/song/bass.wav")
    project.select_time(15.0, 20.0)

    result = project.run("inpaint", answers=[NO])

    assert result.errors == []
    assert result.dialogs == []
    assert [m["text"].split("\n")[0] for m in result.messages] == [
        "3 selected items hold the range 15.00 s to 20.00 s (vocal.wav on 'Vocal', mix.wav on 'Mix', bass.wav on an "
        "unnamed track). Select only the one to send, or select its track as well (grouped items are selected "
        "together)."]
    assert not project.inbox.exists() or project.requests() == []


def test_of_grouped_items_selected_together_the_one_on_the_selected_track_is_sent(project):
    # a multitrack take recorded with item grouping on: clicking the vocal selects the whole group, and the vocal's
    # track is the one the producer selected
    vocal, mix = project.add_track("Vocal", selected=True), project.add_track("Mix")
    project.add_item(vocal, position=0.0, length=60.0, file="/music/song/vocal.wav")
    project.add_item(mix, position=0.0, length=60.0, file="/music/song/mix.wav")
    project.select_time(15.0, 20.0)

    result = project.run("inpaint", dialog=[{"Prompt": "airy"}])

    assert result.errors == []
    [request] = project.requests()
    assert (request["source"], request["start"], request["end"]) == ("/music/song/vocal.wav", 15.0, 20.0)


def test_a_project_and_song_with_unicode_and_quotes_in_their_paths_are_named_exactly(project):
    folder = project.tmp / 'Chanson "d\'été" 🎸'
    folder.mkdir()
    project.project_path = folder
    project.state["project_path"] = str(folder)
    project.state["project_file"] = str(folder / "chanson.RPP")
    song = str(folder / 'Mélodie "ça" \\ 1.wav')
    mix = project.add_track('Voix "lead"')
    item = project.add_item(mix, position=4.0, length=30.0, file=song, offset=2.0)
    project.select_time(6.0, 9.0)

    result = project.run("inpaint", dialog=[{"Prompt": "très doux"}])

    assert result.errors == []
    [request] = project.requests()
    assert (request["source"], request["start"], request["end"]) == (song, 4.0, 7.0)
    assert request["drop_folder"] == str(folder / "daw-bridge")
    assert request["prompt"] == "très doux"
    assert request["item_id"] == item["guid"]


def test_a_result_of_an_item_at_double_speed_lands_in_time_when_the_item_is_gone(project):
    # the item plays its file at twice the speed from source second 4; the producer glues it (a new item, a new file)
    # while the job runs, so the result goes to the results track, where it must still sound where the range was
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=30.0, offset=4.0, playrate=2.0)
    project.select_time(15.0, 20.0)  # source 14 s .. 24 s
    project.run("inpaint", dialog=[{"Prompt": "x"}])
    [request] = project.requests()
    assert (request["start"], request["end"], request["position"]) == (14.0, 24.0, 8.0)
    mix = project.state["tracks"][0]  # the project as the run left it
    mix["items"] = []
    project.add_item(mix, position=10.0, length=30.0, file="/music/song/mix-glued.wav")

    # the daemon's manifest: timeline.position is the request's position plus the span's start, at rate 1
    deliver(project.drop_folder, start=14.0, end=24.0, handle=1.0, position=8.0, item=item["guid"],
            track=mix["guid"]).parent
    for manifest in project.drop_folder.glob("*.json"):
        data = json.loads(manifest.read_text())
        data["request_id"] = request["request_id"]
        manifest.write_text(json.dumps(data))

    result = project.run("import now")

    assert result.errors == [], result.console
    assert [t["name"] for t in project.state["tracks"]] == ["Mix", "DAW Bridge results"], result.console
    [placed] = project.items(1)
    assert placed["position"] == pytest.approx(14.5)  # source 13 s (the span's start) plays at 10 + (13 - 4) / 2
    assert placed["length"] == pytest.approx(6.0)  # 12 s of source at twice the speed
    assert active(placed)["playrate"] == pytest.approx(2.0)
    assert active(placed)["ppitch"] == 1  # the item kept its pitch at that speed: so does the result, not an octave up


def test_extend_at_the_boundary_of_two_selected_pieces_continues_the_one_that_ends_there(project):
    # the song split at 40 s (by the producer or an earlier variant), both pieces still selected, cursor at the split
    mix = project.add_track()
    before = project.add_item(mix, position=10.0, length=30.0, offset=0.0)
    project.add_item(mix, position=40.0, length=20.0, offset=30.0)
    project.state["cursor"] = 40.0

    result = project.run("extend", dialog=[{"Prompt": "keep going"}])

    assert result.errors == []
    [request] = project.requests()
    assert request["item_id"] == before["guid"]
    assert request["extend_after"] == pytest.approx(30.0)
