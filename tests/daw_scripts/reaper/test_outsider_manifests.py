"""An outsider's manifests: whatever lands in the drop folder, the companion names each bad one once and goes on."""

import json

import pytest

from .results import MIX, active, deliver


def good_and_bad(project, bad_text=None):
    """A good delivery of variant 1 and a broken variant 2 of the same job; returns both manifests."""
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    good = deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], variant=1)
    bad = deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], variant=2)
    if bad_text is not None:
        bad.write_text(bad_text)
    return good, bad


@pytest.mark.parametrize("text", ["false", "true", "null", "0", '"a"', "[]", "{", ""])
def test_a_manifest_that_is_json_but_no_object_is_named_once_and_the_others_import(project, text):
    good, bad = good_and_bad(project, text)

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert result.console.count(f"{bad.name} not imported") == 1
    assert project.imported() == [good.name]


@pytest.mark.parametrize("audio", [".", "..", "../../etc/x.wav", "/etc/passwd", "", 5, None])
def test_audio_that_is_no_file_name_in_the_drop_folder_is_named_and_not_imported(project, audio):
    good, bad = good_and_bad(project)
    manifest = json.loads(bad.read_text())
    manifest["audio"] = audio
    bad.write_text(json.dumps(manifest))

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert result.console.count(f"{bad.name} not imported: audio must be a file name") == 1
    files = {t["source"]["file"] for i in project.items() for t in i["takes"]}
    assert files == {MIX, str(good.with_suffix(".wav"))}


@pytest.mark.parametrize("content", [b"", b"RIFF", b"not audio at all, just text"])
def test_audio_that_is_empty_or_no_wav_is_named_once_left_alone_and_the_others_import(project, content):
    good, bad = good_and_bad(project)
    audio = bad.with_suffix(".wav")
    audio.write_bytes(content)

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert result.console.count(f"{bad.name} not imported: its audio {audio.name} is empty or not a WAV file") == 1
    assert {t["source"]["file"] for i in project.items() for t in i["takes"]} == {MIX, str(good.with_suffix(".wav"))}
    assert audio.read_bytes() == content  # the file stays as it is


@pytest.mark.parametrize("raw", ["1e999", "-1e999", '"30"', "null"])
def test_a_position_that_is_no_finite_number_is_named_once_and_makes_no_item(project, raw):
    good, bad = good_and_bad(project)
    manifest = json.loads(bad.read_text())
    manifest["timeline"]["position"] = "@position@"
    bad.write_text(json.dumps(manifest).replace('"@position@"', raw))  # 1e999 reads as infinity

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert result.console.count(f"{bad.name} not imported: timeline.position must be a finite number") == 1
    assert {t["source"]["file"] for i in project.items() for t in i["takes"]} == {MIX, str(good.with_suffix(".wav"))}


@pytest.mark.parametrize(("prompt", "shown"), [
    (5, "inpaint v1"), ({"a": 1}, "inpaint v1"), ([1], "inpaint v1"),
    ('a "b"\n\t]] \\ %s end', 'inpaint v1: a "b" ]] \\ %s end'),
    ("é" * 70, "inpaint v1: " + "é" * 57 + "..."),
])
def test_a_prompt_of_any_type_or_text_names_the_take_on_one_whole_line(project, prompt, shown):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], prompt=prompt)

    result = project.run("companion", ticks=2)

    assert result.errors == []
    assert active(project.items()[1])["name"] == shown
    assert result.undo == [f"DAW Bridge: import {shown}"]
