"""Render what you hear: the mix over the range plus context, with the project's render settings left as they were."""

import pytest

from .conftest import YES


def setup(project, context="10"):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=120.0, offset=7.0, playrate=1.25)
    project.select_time(30.0, 42.0)
    project.setting("render_context", context)


def test_inpaint_from_the_mix_renders_range_plus_context_and_sends_times_in_the_render(project):
    setup(project)
    before_numbers = dict(project.state["project_info"])
    before_strings = dict(project.state["project_info_strings"])

    result = project.run("inpaint", dialog=[{"Prompt": "brass", "Render": "y"}])

    assert result.errors == []
    [render] = result.renders
    assert render["numbers"]["RENDER_BOUNDSFLAG"] == 0  # custom bounds
    assert render["numbers"]["RENDER_STARTPOS"] == 20.0 and render["numbers"]["RENDER_ENDPOS"] == 52.0
    assert render["numbers"]["RENDER_SETTINGS"] == 0  # master mix
    assert render["numbers"]["RENDER_ADDTOPROJ"] == 0 and render["numbers"]["RENDER_TAILFLAG"] == 0
    assert render["numbers"]["RENDER_NORMALIZE"] == 0
    assert render["strings"]["RENDER_FORMAT"] == "evaw" and render["strings"]["RENDER_FORMAT2"] == ""
    assert render["strings"]["RENDER_FILE"] == str(project.drop_folder / "renders")

    [request] = project.requests()
    assert request["source"] == render["target"]
    # the rendered file starts at 20 s on the timeline; playrate no longer matters, the mix is as heard
    assert (request["start"], request["end"], request["position"]) == (10.0, 22.0, 20.0)
    assert "item_id" not in request and "track_id" not in request

    assert project.state["project_info"] == before_numbers
    assert project.state["project_info_strings"] == before_strings


def test_extend_from_the_mix_renders_only_the_context_before_the_point(project):
    setup(project, context="8")

    project.run("extend", dialog=[{"Render": "y", "Seconds of new material": "20"}])

    [request] = project.requests()
    assert (request["extend_after"], request["position"], request["duration"]) == (8.0, 34.0, 20)


def test_context_is_cut_at_the_project_start(project):
    setup(project, context="40")

    result = project.run("inpaint", dialog=[{"Render": "y"}])

    assert result.renders[0]["numbers"]["RENDER_STARTPOS"] == 0.0
    [request] = project.requests()
    assert (request["start"], request["position"]) == (30.0, 0.0)


def test_a_render_that_writes_no_file_is_reported_and_settings_are_still_restored(project):
    setup(project)
    before_numbers = dict(project.state["project_info"])
    before_strings = dict(project.state["project_info_strings"])

    result = project.run("inpaint", dialog=[{"Render": "y"}], render_writes_file=False)

    assert any(t.startswith("Could not render the mix: the render produced no file") for t in result.message_texts)
    assert not project.inbox.exists() or project.requests() == []
    assert project.state["project_info"] == before_numbers
    assert project.state["project_info_strings"] == before_strings


@pytest.mark.parametrize("unset", ["RENDER_FORMAT2", "RENDER_PATTERN"])
def test_settings_that_were_blank_are_blank_again(project, unset):
    setup(project)
    project.state["project_info_strings"][unset] = ""

    project.run("inpaint", dialog=[{"Render": "y"}])

    assert project.state["project_info_strings"][unset] == ""


def test_the_render_takes_the_sources_rate_and_channels_and_puts_the_projects_back(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=120.0,
                     source={"file": "/music/song/stem.wav", "type": "WAVE", "length": 240.0, "srate": 48000,
                             "channels": 1})
    project.select_time(30.0, 42.0)
    before = dict(project.state["project_info"])
    assert (before["RENDER_SRATE"], before["RENDER_CHANNELS"]) == (44100, 2)  # the project renders 44.1k stereo

    result = project.run("inpaint", dialog=[{"Render": "y"}])

    assert result.errors == []
    [render] = result.renders
    assert (render["numbers"]["RENDER_SRATE"], render["numbers"]["RENDER_CHANNELS"]) == (48000, 1)
    assert project.state["project_info"] == before


def test_a_section_take_renders_at_its_files_format(project):
    mix = project.add_track()
    parent = {"file": "/music/song/mix96.wav", "type": "WAVE", "length": 240.0, "srate": 96000, "channels": 6}
    project.add_item(mix, position=0.0, length=120.0,
                     source={"file": "", "type": "SECTION", "length": 100.0, "parent": parent,
                             "section": {"offset": 10.0, "length": 100.0, "reversed": False}})
    project.select_time(30.0, 42.0)

    result = project.run("inpaint", dialog=[{"Render": "y"}], answers=[YES])

    [render] = result.renders
    assert (render["numbers"]["RENDER_SRATE"], render["numbers"]["RENDER_CHANNELS"]) == (96000, 6)


def test_without_a_selected_item_the_projects_render_format_is_left_alone(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=120.0, selected=False)
    project.select_time(30.0, 42.0)
    before = dict(project.state["project_info"])

    result = project.run("inpaint", dialog=[{"Render": "y"}], answers=[YES])

    [render] = result.renders
    assert (render["numbers"]["RENDER_SRATE"], render["numbers"]["RENDER_CHANNELS"]) == (44100, 2)
    assert project.state["project_info"] == before
