"""A producer selects a range in REAPER and asks for it to be inpainted or extended: the request the daemon gets."""

import re

import pytest

MIX = "/music/song/mix.wav"


def test_inpaint_on_trimmed_item_at_playrate_1_5_sends_start_and_end_in_source_time(project):
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=20.0, file=MIX, offset=3.0, playrate=1.5)
    project.select_time(12.0, 16.0)

    result = project.run("inpaint", dialog=[{"Prompt": "soft guitar solo", "Variants": "1"}])

    assert result.errors == []
    [request] = project.requests()
    assert request["command"] == "inpaint"
    assert request["source"] == MIX
    # 2 s into the item at rate 1.5 is 3 s of source after the 3 s trim, 6 s into the item is 9 s after it
    assert request["start"] == pytest.approx(6.0)
    assert request["end"] == pytest.approx(12.0)
    # source time 0 would sit 3 s / 1.5 = 2 s before the item's start
    assert request["position"] == pytest.approx(8.0)
    assert request["item_id"] == item["guid"]
    assert request["track_id"] == mix["guid"]
    assert request["drop_folder"] == str(project.drop_folder)
    assert request["prompt"] == "soft guitar solo"
    assert request["num_outputs"] == 1
    assert re.fullmatch(r"reaper-\d+-1", request["request_id"])
    assert "gender" not in request and "lyrics" not in request  # blank fields leave the daemon's defaults


def test_times_are_written_as_floats_and_the_inbox_keeps_no_temporary_files(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(20.0, 30.0)

    project.run("inpaint", dialog=[{"Prompt": "x"}])

    [path] = project.inbox.iterdir()
    assert path.suffix == ".json" and not path.name.startswith(".")
    text = path.read_text()
    assert '"start":20.0' in text and '"end":30.0' in text


def test_lyrics_gender_and_variants_go_into_the_request(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)

    project.run("inpaint", dialog=[{"Prompt": "choir, big", "Lyrics of the whole song": "la la, la",
                                    "Lyrics of this section": "oh, oh", "Voice": "Female", "Variants": "2"}])

    [request] = project.requests()
    assert request["prompt"] == "choir, big"  # commas survive the dialog
    assert request["lyrics"] == "la la, la"
    assert request["lyrics_section_to_replace"] == "oh, oh"
    assert request["gender"] == "female"
    assert request["num_outputs"] == 2


def test_the_dialog_remembers_the_last_values_also_after_a_restart(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)
    project.run("inpaint", dialog=[{"Prompt": "warm pads", "Voice": "neutral", "Variants": "1"}])
    project.restart()

    result = project.run("inpaint", dialog=["cancel"])

    defaults = dict(zip(result.dialogs[0]["captions"], result.dialogs[0]["defaults"]))
    assert defaults["Prompt (how it should sound)"] == "warm pads"
    assert defaults["Voice (male/female/neutral or blank)"] == "neutral"
    assert defaults["Variants"] == "1"


def test_cancelling_the_dialog_sends_nothing(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)

    result = project.run("inpaint", dialog=["cancel"])

    assert result.errors == []
    assert not project.inbox.exists() or project.requests() == []


def test_values_outside_the_daemons_limits_are_named_and_the_dialog_asks_again(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)

    result = project.run("inpaint", dialog=[{"Prompt": "p" * 1001, "Variants": "3", "Voice": "robot"},
                                            {"Prompt": "short", "Variants": "2", "Voice": ""}])

    [complaint] = result.message_texts
    assert "prompt: 1001 characters is over the limit of 1000" in complaint
    assert "num_outputs: 3 must be at most 2" in complaint
    assert 'gender: "robot" is not one of male, female, neutral' in complaint
    assert len(result.dialogs) == 2
    assert result.dialogs[1]["defaults"][0] == "p" * 1001  # what was typed comes back for correcting
    [request] = project.requests()
    assert request["prompt"] == "short"


def test_request_ids_count_up_across_runs(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)

    project.run("inpaint", dialog=[{"Prompt": "a"}])
    project.restart()
    project.run("inpaint", dialog=[{"Prompt": "b"}])

    ids = sorted(r["request_id"] for r in project.requests())
    assert [i.rsplit("-", 1)[1] for i in ids] == ["1", "2"]


def test_extend_after_the_time_selection_end_maps_through_offset_and_playrate(project):
    mix = project.add_track()
    project.add_item(mix, position=4.0, length=40.0, offset=10.0, playrate=0.5)
    project.select_time(20.0, 24.0)

    result = project.run("extend", dialog=[{"Prompt": "keep going", "Seconds of new material": "45"}])

    assert result.errors == []
    [request] = project.requests()
    assert request["command"] == "extend"
    assert request["extend_after"] == pytest.approx(10.0 + (24.0 - 4.0) * 0.5)
    assert request["duration"] == 45
    assert request["position"] == pytest.approx(4.0 - 10.0 / 0.5)
    assert "start" not in request and "end" not in request


def test_extend_refuses_no_new_material_and_sends_the_lyrics_of_the_new_section(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(20.0, 30.0)

    result = project.run("extend", dialog=[{"Seconds of new material": "0"},
                                           {"Seconds of new material": "601"},
                                           {"Seconds of new material": "20", "Lyrics of the new section": "and on"}])

    assert [m.splitlines()[1] for m in result.message_texts] == \
        ["duration: 0 must be over 0", "duration: 601 must be at most 600"]
    [request] = project.requests()
    assert (request["duration"], request["lyrics_section_to_extend"]) == (20, "and on")


def test_extend_without_time_selection_starts_at_the_edit_cursor(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=90.0, offset=2.0)
    project.state["cursor"] = 61.0

    project.run("extend", dialog=[{"Prompt": "outro"}])

    [request] = project.requests()
    assert request["extend_after"] == pytest.approx(63.0)
    assert request["duration"] == 30  # the daemon's default length of new material


def test_backend_and_delivery_chosen_in_settings_go_with_every_request(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)
    project.setting("backend", "musicgpt")
    project.setting("delivery", "full")

    project.run("inpaint", dialog=[{"Prompt": "x"}])

    [request] = project.requests()
    assert request["backend"] == "musicgpt" and request["delivery"] == "full"


def test_with_several_items_selected_the_one_holding_the_range_is_used(project):
    drums, mix = project.add_track("Drums"), project.add_track("Mix")
    project.add_item(drums, position=0.0, length=8.0, file="/music/song/drums.wav")
    wanted = project.add_item(mix, position=20.0, length=30.0, file=MIX, offset=1.0)
    project.select_time(25.0, 30.0)

    project.run("inpaint", dialog=[{"Prompt": "x"}])

    [request] = project.requests()
    assert request["item_id"] == wanted["guid"]
    assert request["start"] == pytest.approx(6.0)


def test_the_producer_is_told_where_the_request_went(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)

    result = project.run("inpaint", dialog=[{"Prompt": "x"}])

    [request] = project.requests()
    assert f"{request['request_id']}: inpaint 5.00 s to 15.00 s of mix.wav sent" in result.console
    assert "run 'DAW Bridge - Companion'" in result.console
