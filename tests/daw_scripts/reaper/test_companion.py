"""The companion imports delivered variants as takes where they belong, once, and shows how jobs are doing."""

import json

import pytest

from .results import MIX, active, bounds, deliver


def test_patch_at_playrate_1_splits_the_item_and_adds_the_variant_as_a_take_at_its_timeline_position(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    manifest = deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"])

    result = project.run("companion", ticks=2)

    assert result.errors == []
    left, middle, right = project.items()
    assert bounds(left) == (30.0, 41.5) and left["guid"] == item["guid"]
    assert bounds(middle) == (41.5, pytest.approx(51.0))
    assert middle["position"] == json.loads(manifest.read_text())["timeline"]["position"]
    assert bounds(right)[0] == pytest.approx(51.0) and bounds(right)[1] == pytest.approx(90.0)
    original, variant = middle["takes"]
    assert original["source"]["file"] == MIX and original["startoffs"] == pytest.approx(11.5)
    assert variant["source"]["file"] == str(project.drop_folder / manifest.with_suffix(".wav").name)
    assert (variant["startoffs"], variant["playrate"]) == (0.0, 1.0)
    assert variant["name"] == "inpaint v1: soft guitar solo"
    assert active(middle) is variant
    assert [t["source"]["file"] for t in left["takes"] + right["takes"]] == [MIX, MIX]  # the rest is untouched
    assert result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"]


def test_patch_on_a_trimmed_item_at_playrate_1_5_lines_up_through_offset_and_playrate(project):
    # the request from test_requests: selection 12..16 s on an item at 10 s, trimmed by 3 s, at rate 1.5
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=20.0, offset=3.0, playrate=1.5)
    deliver(project.drop_folder, start=6.0, end=12.0, position=8.0, item=item["guid"], track=mix["guid"])

    project.run("companion", ticks=1)

    left, middle, right = project.items()
    # source 5..13 s (range plus 1 s handles) sounds at 10 + (5 - 3) / 1.5 .. 10 + (13 - 3) / 1.5
    assert middle["position"] == pytest.approx(10 + 2 / 1.5)
    assert middle["length"] == pytest.approx(8 / 1.5)
    variant = active(middle)
    assert variant["playrate"] == 1.5 and variant["startoffs"] == 0.0
    assert variant["ppitch"] == 1  # pitch handling follows the original take
    assert bounds(right)[1] == pytest.approx(30.0)


def test_the_second_variant_becomes_another_take_on_the_same_piece(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, variant=1, item=item["guid"], track=mix["guid"])
    deliver(project.drop_folder, position=30.0, variant=2, item=item["guid"], track=mix["guid"], prompt="")

    result = project.run("companion", ticks=1)

    assert len(result.splits) == 2
    assert len(project.items()) == 3
    middle = project.items()[1]
    assert [t["name"] for t in middle["takes"]] == ["mix.wav", "inpaint v1: soft guitar solo", "inpaint v2"]


def test_the_item_is_found_when_the_daemon_reports_the_source_path_with_symlinks_resolved(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0, file="/home/me/Music/song/mix.wav")
    deliver(project.drop_folder, position=30.0, source="/mnt/disk2/music/song/mix.wav", item=item["guid"],
            track=mix["guid"])

    project.run("import now")

    assert len(project.items()) == 3 and len(project.state["tracks"]) == 1


def test_a_moved_item_gets_its_patch_where_the_item_is_now(project):
    mix = project.add_track()
    item = project.add_item(mix, position=35.0, length=60.0)  # requested at 30 s, moved 5 s later since
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"])

    project.run("companion", ticks=1)

    assert project.items()[1]["position"] == pytest.approx(46.5)


def test_handles_reaching_before_the_item_start_stay_outside_the_item(project):
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=30.0, offset=5.0)
    deliver(project.drop_folder, start=5.4, end=8.0, position=5.0, item=item["guid"], track=mix["guid"])

    project.run("companion", ticks=1)

    first, rest = project.items()
    assert bounds(first) == (10.0, pytest.approx(14.0))
    assert active(first)["startoffs"] == pytest.approx(0.6)  # the handle's first 0.6 s would sound before 10 s


def test_full_delivery_is_a_take_on_the_whole_item_lined_up_by_its_own_offset(project):
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=20.0, offset=3.0, playrate=1.5)
    deliver(project.drop_folder, delivery="full", start=6.0, end=12.0, position=8.0, item=item["guid"],
            track=mix["guid"])

    result = project.run("companion", ticks=1)

    assert result.splits == []
    [whole] = project.items()
    assert bounds(whole) == (10.0, 30.0)
    variant = active(whole)
    assert (variant["startoffs"], variant["playrate"]) == (3.0, 1.5)


def test_an_extension_past_the_items_end_lengthens_the_last_piece(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    deliver(project.drop_folder, operation="extend", start=60.0, end=90.0, item=item["guid"], track=mix["guid"])

    project.run("companion", ticks=1)

    original, extension = project.items()
    assert bounds(original) == (0.0, 59.0)
    assert bounds(extension) == (59.0, 90.0)
    assert active(extension)["name"] == "extend v1: soft guitar solo"


def test_an_extension_without_handle_at_the_items_end_gets_an_item_next_to_it(project):
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    deliver(project.drop_folder, operation="extend", start=60.0, end=75.0, handle=0.0, item=item["guid"],
            track=mix["guid"])

    project.run("import now")

    original, extension = project.items()
    assert bounds(original) == (0.0, 60.0) and len(original["takes"]) == 1
    assert bounds(extension) == (60.0, 75.0)
    assert [t["name"] for t in extension["takes"]] == ["extend v1: soft guitar solo"]


def test_results_whose_item_is_gone_go_to_a_results_track_at_the_manifest_position(project):
    mix = project.add_track()
    project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, variant=1, item="{GONE}", track="{GONE TOO}")
    deliver(project.drop_folder, position=30.0, variant=2, item="{GONE}", track="{GONE TOO}")

    project.run("companion", ticks=1)

    assert len(project.items(0)) == 1  # the other item is not touched
    results = project.state["tracks"][1]
    assert results["name"] == "DAW Bridge results"
    [placed] = results["items"]
    assert bounds(placed) == (41.5, 51.0)
    assert [t["name"] for t in placed["takes"]] == ["inpaint v1: soft guitar solo", "inpaint v2: soft guitar solo"]


def test_results_of_a_rendered_mix_go_to_the_results_track(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=120.0)
    render = str(project.drop_folder / "renders" / "mix_reaper-1-1.wav")
    deliver(project.drop_folder, source=render, start=10.0, end=22.0, position=20.0)

    project.run("import now")

    results = project.state["tracks"][1]
    assert [bounds(i) for i in results["items"]] == [(29.0, 43.0)]


def test_nothing_is_imported_twice_also_after_reaper_restarts(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"])

    project.run("companion", ticks=3)
    project.restart()
    result = project.run("companion", "import now", ticks=3)

    assert result.splits == []
    assert sum(len(i["takes"]) for i in project.items()) == 4  # three pieces of the original, one variant
    assert project.imported() == ["mix_inpaint_12.50-20.00_v1_3f2a.json"]


def test_a_manifest_arriving_while_the_companion_runs_is_imported_on_the_next_scan(project, tmp_path):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    staged = deliver(tmp_path / "staging", position=30.0, item=item["guid"], track=mix["guid"])
    wav = staged.with_suffix(".wav")
    move = (f'function() os.rename("{wav}", "{project.drop_folder / wav.name}") '
            f'os.rename("{staged}", "{project.drop_folder / staged.name}") end')
    project.drop_folder.mkdir()

    result = project.run("companion", ticks=4, on_tick={2: move})

    assert len(project.items()) == 3
    assert result.still_deferred == 1  # still running, as a background script does


def test_a_manifest_of_another_format_is_named_once_and_left_alone(project):
    mix = project.add_track()
    project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, manifest_format="daw-bridge.manifest/2")

    result = project.run("companion", ticks=4)

    assert result.console.count("not imported: format is \"daw-bridge.manifest/2\"") == 1
    assert len(project.items()) == 1
    assert project.imported() == []


def test_prompts_with_accents_and_emoji_name_the_take(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], prompt="café 🎸 solo")

    project.run("import now")

    assert active(project.items()[1])["name"] == "inpaint v1: café 🎸 solo"


def test_each_take_shows_the_engines_confidence_in_its_variant(project):
    mix = project.add_track()
    item = project.add_item(mix, position=30.0, length=60.0)
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], variant=1, confidence=0.8249)
    # a MusicGPT result carries its joins' confidences only (one may be unknown): the weakest is the variant's
    joins = [{"at": 12.5, "confidence": 0.61}, {"at": 20.0, "confidence": 0.4}, {"at": 21.0, "confidence": None}]
    deliver(project.drop_folder, position=30.0, item=item["guid"], track=mix["guid"], variant=2, joins=joins)

    project.run("import now")

    assert [t["name"] for t in project.items()[1]["takes"]] == [
        "mix.wav", "inpaint v1 (conf 0.82): soft guitar solo", "inpaint v2 (conf 0.40): soft guitar solo"]


def write_status(project, request_id, **fields):
    folder = project.inbox / "status"
    folder.mkdir(parents=True, exist_ok=True)
    status = {"request_id": request_id, "job_id": "j-1", "state": "accepted", "progress": 0.0, "message": "",
              "manifests": [], "error": None, "updated": "2026-11-21T19:05:14Z", **fields}
    (folder / f"{request_id}.json").write_text(json.dumps(status))
    return folder / f"{request_id}.json"


def test_job_states_are_shown_as_they_change_and_finished_jobs_are_forgotten(project, tmp_path):
    project.setting("pending", "reaper-1-1 reaper-1-2")
    write_status(project, "reaper-1-1", state="generating", progress=0.4)
    failed = write_status(project, "reaper-1-2", state="failed",
                          error={"code": "auth_failed", "message": "The API key was refused"})
    delivered = tmp_path / "delivered.json"
    delivered.write_text(json.dumps({"request_id": "reaper-1-1", "state": "delivered", "progress": 1.0,
                                     "manifests": ["a.json", "b.json"], "error": None}))
    swap = f'function() os.rename("{delivered}", "{failed.parent / "reaper-1-1.json"}") end'

    result = project.run("companion", ticks=4, on_tick={3: swap})

    lines = [line for line in result.console.splitlines() if "reaper-1-" in line]
    assert lines == [
        "DAW Bridge: reaper-1-1: generating 40%",
        "DAW Bridge: reaper-1-2: failed: The API key was refused (auth_failed)",
        "DAW Bridge: reaper-1-1: delivered: 2 variant(s), importing",
    ]
    assert project.state["extstate"].get("daw_bridge/pending", "") == ""


def test_a_request_sent_is_followed_by_the_companion(project):
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(5.0, 15.0)
    project.run("inpaint", dialog=[{"Prompt": "x"}])
    [request] = project.requests()
    write_status(project, request["request_id"], state="submission_unknown")

    result = project.run("import now")

    assert f"{request['request_id']}: submission_unknown: a paid submission may or may not have reached" \
        in result.console
