"""Render what you hear: the mix over the range plus context, with the project's render settings left as they were."""

import pytest


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
