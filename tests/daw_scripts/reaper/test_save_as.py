"""Save As before the result arrives: the producer sends a range, saves the project as song_v2 in another folder,
and the result the daemon delivers into the old project's drop folder (the request named it) still lands in song_v2,
while that folder's other results stay out."""

import pytest

from .results import active, decide, deliver
from .test_outsider_import import sounding

JOB = "j-20261121-190512-3f2a"


def save_as(project):
    """File > Save project as... into a new folder, song_v2: REAPER writes the project (its extended state with it)
    there."""
    project.project_path = project.tmp / "song_v2"
    project.project_path.mkdir()
    project.state["project_path"] = str(project.project_path)
    project.state["project_file"] = str(project.project_path / "song_v2.RPP")


def sent_then_saved_as(project, *, render: bool = False):
    """song.RPP sends 12.5..20 s of its item (or the mix heard there); the producer saves it as song_v2/song_v2.RPP;
    then the result is delivered where the request said. Returns the old drop folder and the result's manifest."""
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    project.select_time(12.5, 20.0)
    project.run("inpaint", dialog=[{"Prompt": "soft guitar solo", "Variants": "1", "Render": "y" if render else "n"}])
    [request] = project.requests()
    earlier = project.drop_folder
    assert request["drop_folder"] == str(earlier)
    save_as(project)
    if render:
        manifest = deliver(earlier, source=request["source"], start=request["start"], end=request["end"],
                           position=request["position"], variants=1, job=JOB)
    else:
        manifest = deliver(earlier, item=item["guid"], track=mix["guid"], variants=1, job=JOB)
    manifest.write_text(manifest.read_text().replace("reaper-1700000000-1", request["request_id"]))
    return earlier, manifest


def test_a_result_sent_before_save_as_lands_in_the_copy_saved_in_another_folder(project):
    earlier, manifest = sent_then_saved_as(project)

    result = project.run("import now")

    assert result.errors == [] and len(result.undo) == 1
    assert [len(i["takes"]) for i in project.items()] == [1, 2, 1]
    take = active(project.items()[1])
    assert take["source"]["file"] == str(manifest.with_suffix(".wav"))  # the audio stays where it was delivered
    assert f"from {earlier}, where it was sent before the project was saved here" in result.console
    assert project.imported() == [manifest.name]
    assert not project.drop_folder.exists() or not list(project.drop_folder.glob("*.json"))

    again = project.run("companion", ticks=2)  # imported once, also by the companion afterwards

    assert again.undo == [] and [len(i["takes"]) for i in project.items()] == [1, 2, 1]


def test_the_earlier_folders_other_results_stay_out_of_the_copy(project):
    earlier, manifest = sent_then_saved_as(project)
    # a result of another request in the old folder: song.RPP's, sent after the copy was made (its item is gone
    # from the copy, so it would land on the results track)
    other = deliver(earlier, start=30.0, end=35.0, item="{00000000-1111-4111-8111-999999999999}", job="j-other-bbbb")
    other.write_text(other.read_text().replace("reaper-1700000000-1", "reaper-1700000999-7"))
    decide(earlier, "j-other-bbbb", 1, "keep", 1, [other])  # song.RPP's decision on it: none of the copy's business

    result = project.run("companion", ticks=3)

    assert result.errors == []
    assert [t["name"] for t in project.state["tracks"]] == ["Mix"]  # no results track
    assert project.imported() == [manifest.name]
    assert other.name not in result.console and "j-other-bbbb" not in result.console
    assert not (earlier / ".reaper-decided").exists()


def test_a_rendered_mix_sent_before_save_as_lands_on_the_copys_results_track(project):
    earlier, manifest = sent_then_saved_as(project, render=True)

    result = project.run("import now")

    assert result.errors == [] and " left for " not in result.console
    assert [t["name"] for t in project.state["tracks"]] == ["Mix", "DAW Bridge results"]
    [placed] = project.items(1)
    assert placed["takes"][0]["source"]["file"] == str(manifest.with_suffix(".wav"))


def test_a_rendered_mix_sent_before_save_as_in_the_same_folder_is_the_copys(project):
    # saved under another name beside the first: the drop folder is shared, and the SENT ledger there names song.RPP
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    project.select_time(12.5, 20.0)
    project.run("inpaint", dialog=[{"Prompt": "brass", "Variants": "1", "Render": "y"}])
    [request] = project.requests()
    project.state["project_file"] = str(project.project_path / "song v2.RPP")
    manifest = deliver(project.drop_folder, source=request["source"], start=request["start"], end=request["end"],
                       position=request["position"], variants=1, job=JOB)
    manifest.write_text(manifest.read_text().replace("reaper-1700000000-1", request["request_id"]))

    result = project.run("import now")

    assert result.errors == [] and " left for " not in result.console
    assert project.imported() == [manifest.name]
    assert [t["name"] for t in project.state["tracks"]] == ["Mix", "DAW Bridge results"]


def test_a_decision_on_a_result_imported_from_the_earlier_folder_is_applied(project):
    earlier, manifest = sent_then_saved_as(project)
    project.run("import now")
    decide(earlier, JOB, 1, "discard", None, [manifest])  # the daemon publishes it beside the job's results

    result = project.run("import now")

    assert result.errors == [] and result.undo == [f"DAW Bridge: discard the variants of job {JOB}"]
    assert [len(i["takes"]) for i in project.items()] == [1]  # the item is whole again
    assert (earlier / ".reaper-decided").read_text() == f"{JOB}\t1\n"  # where the daemon reads it for that job


def test_a_result_whose_item_is_gone_sounds_at_its_items_playrate_after_save_as(project):
    # the playrate is noted beside the results the request named: the old drop folder, not the copy's
    mix = project.add_track()
    project.add_item(mix, position=10.0, length=20.0, offset=3.0, playrate=1.5)
    project.select_time(12.0, 16.0)  # source 6..12 s
    project.run("inpaint", dialog=[{"Prompt": "soft guitar solo", "Variants": "1"}])
    [request] = project.requests()
    earlier = project.drop_folder
    save_as(project)
    project.state["tracks"][0]["items"] = []  # the producer deleted the item in the copy
    manifest = deliver(earlier, start=6.0, end=12.0, position=8.0, variants=1, job=JOB)  # span 5..13 s
    manifest.write_text(manifest.read_text().replace("reaper-1700000000-1", request["request_id"]))

    result = project.run("import now")

    assert result.errors == []
    [placed] = project.items(1)
    assert placed["position"] == pytest.approx(8.0 + 5.0 / 1.5) and placed["length"] == pytest.approx(8.0 / 1.5)
    assert placed["takes"][0]["playrate"] == 1.5


def test_a_job_next_to_one_imported_from_the_earlier_folder_stops_its_handle_halfway(project):
    # the first job was sent before the Save As and imported from the old folder; the second, sent from song_v2 on
    # the range right after it, must not lay its handle over the first one's replaced range
    earlier, first = sent_then_saved_as(project)  # 12.5..20 s
    project.run("import now")
    mix, [_, middle, _] = project.state["tracks"][0], project.items()
    second = deliver(project.drop_folder, start=20.5, end=30.0, job="j-20261121-190600-bbbb",
                     item=middle["guid"], track=mix["guid"])

    result = project.run("import now")

    assert result.errors == []
    # the first range ends at 20 s and the second starts at 20.5 s: each variant sounds up to 20.25 s
    assert sounding(project, 0.0, 31.0) == [(0.0, 11.5, "mix.wav", 0.0),
                                            (11.5, 20.25, first.with_suffix(".wav").name, 0.0),
                                            (20.25, 31.0, second.with_suffix(".wav").name, 0.75)]


def test_a_project_in_another_tab_still_takes_its_own_result_from_a_folder_the_first_one_looked_in(project):
    # Two tabs, each a copy saved elsewhere from projects of one folder: song_v2 (whose request went there) and
    # song_alt (whose request went there too). The companion, scanning song_v2 first, set song_alt's result aside
    # as "not ours" for good, so once song_alt was the project in front it never took its own result.
    earlier, manifest = sent_then_saved_as(project)
    theirs = deliver(earlier, start=30.0, end=35.0, item="{00000000-1111-4111-8111-999999999999}", job="j-alt-bbbb")
    theirs.write_text(theirs.read_text().replace("reaper-1700000000-1", "reaper-1700000999-7"))
    alt = project.tmp / "song_alt"
    alt.mkdir()
    switch = (f'function(state) state.project_path = "{alt}" state.project_file = "{alt / "song_alt.RPP"}" '
              f'state.projext = {{["daw_bridge_sent/reaper-1700000999-7"] = "{earlier}"}} end')

    result = project.run("companion", ticks=4, on_tick={2: switch})

    assert result.errors == []
    assert project.imported() == [theirs.name]  # song_alt's record: its own result, from the folder it was sent to
    assert f"from {earlier}, where it was sent before the project was saved here" in result.console.split(
        manifest.name)[-1]


def send_many(project, count: int) -> list[dict]:
    """`count` requests sent from the project's item, each for 12.5..20 s; the requests, in the order sent."""
    project.select_time(12.5, 20.0)
    project.run(*["inpaint"] * count, dialog=[{"Prompt": "soft guitar solo", "Variants": "1", "Render": "n"}] * count)
    return sorted(project.requests(), key=lambda r: tuple(int(n) for n in r["request_id"].split("-")[1:]))


def deliver_for(folder, request: dict, n: int):
    """The result of `request` (whose item is gone: it goes on the results track), the `n`th job's."""
    manifest = deliver(folder, start=12.5, end=20.0, variants=1, job=f"j-20261121-190512-{n:04d}")
    manifest.write_text(manifest.read_text().replace("reaper-1700000000-1", request["request_id"]))
    return manifest


def test_the_record_of_requests_sent_stays_bounded_and_a_copy_still_finds_every_result_not_imported(project):
    # 80 requests: the results of 60 come and are imported, those of 20 (sent between them) have not come when the
    # producer saves the project elsewhere. The record grew by one line per request for good (a .RPP of thousands).
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    requests = send_many(project, 80)
    assert len(requests) == 80
    late = [r for n, r in enumerate(requests) if n % 4 == 1]
    for n, request in enumerate(requests):
        if request not in late:
            deliver_for(project.drop_folder, request, n)
    assert project.run("import now").errors == []
    assert len(project.imported()) == 60

    record = project.project_record("daw_bridge_sent")
    earlier = project.drop_folder
    imported_kept = [r["request_id"] for r in requests if r not in late][-32:]  # the newest, for decisions on them
    assert record == {**{r["request_id"]: str(earlier) for r in late},
                      **{request_id: f"imported {earlier}" for request_id in imported_kept}}

    save_as(project)
    manifests = [deliver_for(earlier, request, 100 + n) for n, request in enumerate(late)]
    result = project.run("import now")

    assert result.errors == []
    assert set(project.imported()) >= {m.name for m in manifests}
    assert result.console.count("where it was sent before the project was saved here") == 20
    record = project.project_record("daw_bridge_sent")
    assert len(record) == 32 and all(value == f"imported {earlier}" for value in record.values())


def test_a_record_of_results_that_never_came_keeps_the_newest_requests(project):
    # jobs that failed never deliver: their requests stay waiting on the record, but no more than 256 of them
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=60.0)
    requests = send_many(project, 270)

    record = project.project_record("daw_bridge_sent")

    assert sorted(record) == sorted(r["request_id"] for r in requests[-256:])
