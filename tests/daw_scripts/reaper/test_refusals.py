"""What cannot be mapped to a source file is refused with the reason, and the producer may render the mix instead."""

import pytest

from .conftest import NO, YES


def setup_item(project, **overrides):
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=30.0, **overrides)
    project.select_time(15.0, 20.0)
    return item


def refused(project, result, reason: str):
    """The reason was shown, no dialog opened, nothing reached the inbox."""
    assert result.errors == []
    assert any(reason in text for text in result.message_texts), result.message_texts
    assert result.dialogs == []
    assert not project.inbox.exists() or project.requests() == []


def test_inpaint_without_time_selection_says_to_make_one(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=30.0)

    result = project.run("inpaint")

    refused(project, result, "There is no time selection")
    assert result.messages[0]["type"] == 0  # nothing to render without a range: no offer


def test_no_selected_item_is_refused_and_render_is_offered(project):
    setup_item(project, selected=False)

    result = project.run("inpaint", answers=[NO])

    refused(project, result, "No item is selected")
    assert result.messages[0]["type"] == 4  # yes/no: render what you hear instead?
    assert "Render what you hear" in result.messages[0]["text"]


@pytest.mark.parametrize("take, reason", [
    ({"source": {"file": "", "type": "MIDI", "midi": True, "length": 16.0}}, "The selected item is MIDI"),
    ({"stretch_markers": 2}, "The take has stretch markers"),
    ({"source": {"file": "", "type": "SECTION", "length": 30.0,
                 "parent": {"file": "/music/song/mix.wav", "type": "WAVE", "length": 240.0},
                 "section": {"offset": 0.0, "length": 30.0, "reversed": True}}},
     "The take plays its source reversed"),
    ({"source": {"file": "", "type": "SECTION", "length": 10.0,
                 "parent": {"file": "/music/song/mix.wav", "type": "WAVE", "length": 240.0},
                 "section": {"offset": 20.0, "length": 10.0, "reversed": False}}},
     "The take plays a section of its source"),
], ids=["midi", "stretch markers", "reversed", "section"])
def test_takes_whose_times_do_not_map_to_the_file_are_refused(project, take, reason):
    item = setup_item(project)
    item["takes"][0].update(take)

    result = project.run("inpaint", answers=[NO])

    refused(project, result, reason)


def test_a_time_selection_reaching_outside_the_item_is_refused_with_both_ranges(project):
    setup_item(project)
    project.select_time(35.0, 45.0)

    result = project.run("inpaint", answers=[NO])

    refused(project, result, "The range 35.00 s to 45.00 s is not inside the selected item (10.00 s to 40.00 s)")


def test_a_looped_item_reaching_past_the_end_of_its_file_is_refused(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0, source_length=20.0)
    project.select_time(15.0, 25.0)

    result = project.run("inpaint", answers=[NO])

    refused(project, result, "The range reaches 25.00 s into the source file, which is only 20.00 s long")


def test_extend_with_the_cursor_outside_the_selected_item_is_refused(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=30.0)
    project.state["cursor"] = 50.0

    result = project.run("extend", answers=[NO])

    refused(project, result, "The range 50.00 s to 50.00 s is not inside the selected item")


def test_accepting_the_offer_renders_the_mix_instead(project):
    item = setup_item(project)
    item["takes"][0]["stretch_markers"] = 1
    project.setting("render_context", "4")

    result = project.run("inpaint", answers=[YES], dialog=[{"Prompt": "x"}])

    assert result.errors == []
    assert result.dialogs[0]["defaults"][-1] == "y"  # the dialog comes up with render chosen
    [request] = project.requests()
    assert request["source"].endswith(f"mix_{request['request_id']}.wav")
    assert (request["start"], request["end"], request["position"]) == (4.0, 9.0, 11.0)
    assert "item_id" not in request  # a render of the mix is not the item's file


def test_turning_render_off_after_a_refusal_sends_nothing(project):
    setup_item(project, selected=False)

    result = project.run("inpaint", answers=[YES], dialog=[{"Render": "n"}])

    assert result.message_texts[-1].startswith("No item is selected")
    assert not project.inbox.exists()
    assert result.renders == []
