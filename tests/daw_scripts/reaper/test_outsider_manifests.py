"""An outsider's manifests: whatever lands in the drop folder, the companion names each bad one once and goes on."""

import json
from pathlib import Path

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


def another_projects_request(project):
    """The folder's ledger says another project sent the request these results answer."""
    project.drop_folder.mkdir(parents=True, exist_ok=True)
    (project.drop_folder / ".reaper-sent").write_text("reaper-1700000000-1 /music/other/other.RPP\n")


@pytest.mark.parametrize(("field", "raw", "said"), [
    ("path", None, "source.path must be the source file's path"),
    ("path", 5, "source.path must be the source file's path"),
    ("ids", 5, "ids must be an object or null"),
])
def test_another_projects_result_with_no_source_path_or_ids_is_named_once_and_the_good_one_beside_it_imports(
        project, field, raw, said):
    # looking up whose result it was indexed the missing path outside any protection: the companion's loop ended
    # and nothing was imported again, at every start
    good, bad = good_and_bad(project)
    manifest = json.loads(bad.read_text())
    if field == "path":
        manifest["source"].pop("path") if raw is None else manifest["source"].update(path=raw)
    else:
        manifest["ids"] = raw
    bad.write_text(json.dumps(manifest))
    another_projects_request(project)

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert result.console.count(f"{bad.name} not imported: {said}") == 1
    assert project.imported() == [good.name]


def staged_beside(project) -> tuple[Path, Path]:
    """A result for an item at 30 s, its manifest and audio written outside the (made, empty) drop folder, for a
    test to bring in when it chooses."""
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    manifest = deliver(project.tmp / "staged", position=30.0, item=item["guid"], track=mix["guid"])
    project.drop_folder.mkdir(parents=True)
    return manifest, manifest.with_suffix(".wav")


def test_an_error_in_one_scan_is_said_once_and_the_companion_imports_what_comes_later(project):
    manifest, audio = staged_beside(project)
    fail_once = ("function() local real = reaper.EnumProjects "
                 "reaper.EnumProjects = function(...) reaper.EnumProjects = real error('disk hiccup') end end")
    arrive = (f'function() os.rename("{audio}", "{project.drop_folder / audio.name}") '
              f'os.rename("{manifest}", "{project.drop_folder / manifest.name}") end')

    result = project.run("companion", ticks=3, on_tick={1: fail_once, 2: arrive})

    assert result.errors == [] and result.still_deferred == 1
    assert result.console.count("disk hiccup") == 1
    assert project.imported() == [manifest.name]


def test_a_result_whose_placement_failed_is_not_placed_again_until_its_manifest_changes(project):
    # each attempt opened an undo block: an empty "import" point in Edit > Undo every second
    manifest, audio = staged_beside(project)
    audio.rename(project.drop_folder / audio.name)
    placed = project.drop_folder / manifest.name
    broken = ("function() reaper.real_set_source = reaper.SetMediaItemTake_Source "
              "reaper.SetMediaItemTake_Source = function() error('source unreadable') end "
              f'os.rename("{manifest}", "{placed}") end')
    fixed = ("function() reaper.SetMediaItemTake_Source = reaper.real_set_source "
             f'local f = io.open("{placed}", "rb") local text = f:read("a") f:close() '
             'f = io.open("' + str(placed) + '", "wb") f:write((text:gsub("soft guitar solo", "loud guitar solo"))) '
             "f:close() end")

    result = project.run("companion", ticks=5, on_tick={1: broken, 4: fixed})

    assert result.errors == []
    assert result.console.count(f"{manifest.name} not imported: ") == 1
    assert result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo",  # the failed attempt, once
                           "DAW Bridge: import inpaint v1: loud guitar solo"]
    assert project.imported() == [manifest.name]


@pytest.mark.parametrize(("splice", "shown"), [
    ({"handle": 0.0, "joins": [], "confidence": 0.3, "plays_on": True},
     "extend v1 (conf 0.30, the song as it goes on): soft guitar solo"),
    ({"handle": 0.0, "joins": [], "plays_on": True}, "extend v1 (the song as it goes on): soft guitar solo"),
    ({"handle": 0.0, "joins": [], "confidence": 0.3, "plays_on": False}, "extend v1 (conf 0.30): soft guitar solo"),
    ({"handle": 0.0, "joins": 5}, "extend v1: soft guitar solo"),
    (5, "extend v1: soft guitar solo"),
])
def test_an_extension_that_plays_the_song_as_it_goes_on_says_so_in_its_take_name(project, splice, shown):
    # the producer already has that music: without a word the variant reads as new material
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    manifest = deliver(project.drop_folder, operation="extend", start=40.0, end=50.0, handle=0.0, position=30.0,
                       item=item["guid"], track=mix["guid"])
    fields = json.loads(manifest.read_text())
    fields["splice"] = splice
    manifest.write_text(json.dumps(fields))

    result = project.run("import now")

    assert result.errors == []
    assert result.undo == [f"DAW Bridge: import {shown}"]
    assert shown in [active(i)["name"] for i in project.items()]


@pytest.mark.parametrize(("variant", "prompt", "shown"), [
    (None, "soft guitar solo", "inpaint: soft guitar solo"),
    (1, "soft\x00guitar\x07\x1b solo\x7f", "inpaint v1: soft guitar solo "),
])
def test_a_variant_of_null_or_a_prompt_with_control_characters_names_the_take_readably(project, variant, prompt, shown):
    # a null variant showed as "vnull"; a NUL in the prompt went into the take name as it was
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    manifest = deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], prompt=prompt)
    fields = json.loads(manifest.read_text())
    fields["variant"] = variant
    manifest.write_text(json.dumps(fields))

    result = project.run("import now")

    assert result.errors == []
    assert active(project.items()[1])["name"] == shown


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_a_figure_python_wrote_as_nan_refuses_only_a_field_that_needs_a_number(project, raw):
    # a daemon before manifests were strict JSON (or a backend's figure) wrote a bare NaN: the whole manifest was
    # refused ("unexpected 'N'"), the result with it
    good, bad = good_and_bad(project)
    fields = json.loads(bad.read_text())
    fields["splice"]["confidence"] = "@confidence@"
    bad.write_text(json.dumps(fields).replace('"@confidence@"', raw))
    broken = good.with_name("z" + good.name)
    fields = json.loads(good.read_text())
    fields["timeline"]["position"] = "@position@"
    broken.write_text(json.dumps(fields).replace('"@position@"', raw))

    result = project.run("import now")

    assert result.errors == []
    assert sorted(project.imported()) == [good.name, bad.name]
    assert f"{broken.name} not imported: timeline.position must be a finite number" in result.console
