"""What the companion imported and decided is recorded in the project (its extended state, saved in the .RPP): a
project closed without saving (or lost in a crash) forgets the takes and the record together, so the results and
decisions come back by themselves, once; an undo does not bring them back; a project from before this record, whose
imports are listed only in the drop folder, gets nothing twice."""

from .results import active, decide, deliver
from .test_decisions import JOB, names, two_variants

FIRST, SECOND = "j-20261121-190512-aaaa", "j-20261121-190600-bbbb"


def mix_item(project):
    """A saved project with one item at 0..60 s; the ids a result for it carries."""
    mix = project.add_track()
    item = project.add_item(mix, position=0.0, length=60.0)
    project.save()
    return dict(item=item["guid"], track=mix["guid"])


def takes(project) -> list[int]:
    return [len(i["takes"]) for i in project.items()]


def test_a_result_imported_then_closed_without_saving_is_imported_again_once(project):
    ids = mix_item(project)
    manifest = deliver(project.drop_folder, **ids)
    project.run("companion", ticks=2)
    assert takes(project) == [1, 2, 1]

    project.close_without_saving()
    assert takes(project) == [1] and project.imported() == []
    result = project.run("companion", "import now", ticks=3)

    assert result.errors == [] and result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"]
    assert takes(project) == [1, 2, 1]
    assert project.imported() == [manifest.name]


def test_a_saved_import_stays_imported_and_one_after_the_save_comes_back(project):
    ids = mix_item(project)
    first = deliver(project.drop_folder, start=12.5, end=20.0, job=FIRST, **ids)
    project.run("import now")
    project.save()
    second = deliver(project.drop_folder, start=40.0, end=45.0, job=SECOND, prompt="second", **ids)
    project.run("import now")
    assert takes(project) == [1, 2, 1, 2, 1]

    project.close_without_saving()
    assert takes(project) == [1, 2, 1] and project.imported() == [first.name]
    result = project.run("companion", ticks=3)

    assert result.errors == [] and result.undo == ["DAW Bridge: import inpaint v1: second"]
    assert takes(project) == [1, 2, 1, 2, 1]
    assert project.imported() == sorted([first.name, second.name])


def test_an_undone_import_is_not_imported_again_until_the_project_is_closed_without_saving(project):
    ids = mix_item(project)
    manifest = deliver(project.drop_folder, **ids)
    project.run("import now")
    project.undo()  # Edit > Undo: the producer does not want it
    assert takes(project) == [1]

    result = project.run("companion", ticks=3)

    assert result.errors == [] and result.undo == [] and takes(project) == [1]

    project.close_without_saving()  # saved before the import: the project never had it
    result = project.run("import now")

    assert result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"] and takes(project) == [1, 2, 1]
    assert project.imported() == [manifest.name]


def test_a_project_from_before_the_record_imports_nothing_twice(project):
    ids = mix_item(project)
    old = deliver(project.drop_folder, start=12.5, end=20.0, job=FIRST, **ids)
    project.run("import now")
    # the earlier version listed its imports in the drop folder only, and the project was saved with the takes
    project.state["projext"] = {}
    (project.drop_folder / ".reaper-imported").write_text(old.name + "\n")
    project.save()
    new = deliver(project.drop_folder, start=40.0, end=45.0, job=SECOND, prompt="second", **ids)

    result = project.run("companion", ticks=3)

    assert result.errors == [] and result.undo == ["DAW Bridge: import inpaint v1: second"]
    assert takes(project) == [1, 2, 1, 2, 1]
    assert (project.drop_folder / ".reaper-imported").read_text() == old.name + "\n"  # read, no longer written

    project.close_without_saving()
    result = project.run("import now")

    assert result.undo == ["DAW Bridge: import inpaint v1: second"] and takes(project) == [1, 2, 1, 2, 1]
    assert project.imported() == [new.name]


def test_a_decision_applied_then_closed_without_saving_is_applied_again_once_and_an_undo_stays(project):
    manifests = two_variants(project)
    project.save()  # variant 2 is the active take
    decide(project.drop_folder, JOB, 1, "choose", 1, manifests)
    project.run("companion", ticks=2)
    assert active(project.items()[1])["name"] == "inpaint v1: soft guitar solo"

    project.close_without_saving()
    assert active(project.items()[1])["name"] == "inpaint v2"
    result = project.run("companion", "import now", ticks=3)

    assert result.errors == [] and result.undo == [f"DAW Bridge: choose variant 1 of job {JOB}"]
    assert active(project.items()[1])["name"] == "inpaint v1: soft guitar solo"
    assert names(project.items()[1]) == ["mix.wav", "inpaint v1: soft guitar solo", "inpaint v2"]
    assert project.project_record("daw_bridge_decided") == {JOB: "1"}
    # the daemon numbers the next decision past what was applied
    assert (project.drop_folder / ".reaper-decided").read_text() == f"{JOB}\t1\n{JOB}\t1\n"

    project.undo()  # Edit > Undo of the decision: it stays undone
    result = project.run("companion", ticks=3)

    assert result.undo == [] and active(project.items()[1])["name"] == "inpaint v2"


def test_decisions_an_earlier_version_applied_are_not_applied_again(project):
    manifests = two_variants(project)
    project.state["projext"] = {k: v for k, v in project.state["projext"].items()
                                if not k.startswith("daw_bridge_decided/")}
    (project.drop_folder / ".reaper-decided").write_text(f"{JOB} 1\n")  # the earlier version's line
    project.save()
    decide(project.drop_folder, JOB, 1, "discard", None, manifests)

    result = project.run("companion", ticks=3)

    assert result.undo == [] and names(project.items()[1])[-1] == "inpaint v2"

    decide(project.drop_folder, JOB, 2, "choose", 1, manifests)
    project.run("import now")
    project.close_without_saving()
    result = project.run("import now")

    assert result.undo == [f"DAW Bridge: choose variant 1 of job {JOB}"]
    assert active(project.items()[1])["name"] == "inpaint v1: soft guitar solo"


def test_a_year_of_results_stays_recorded_none_comes_twice_and_a_late_one_comes_once(project):
    # A year of use: 1000 results imported, each still in the drop folder (the takes play them, or did before a
    # discard), and a result of an early request that comes only now. The record keeps every name, as the folder
    # keeps every result: any name taken off it (the 32 or 256 newest kept, as for the requests sent) would be
    # imported again at the next scan.
    ids = mix_item(project)
    template = deliver(project.drop_folder, variants=1, job="j-20261121-190512-0000", **ids)
    text, audio = template.read_text(), template.with_suffix(".wav")
    year = []
    for n in range(1, 1001):
        year.append(project.drop_folder / f"mix_inpaint_12.50-20.00_v1_{n:06x}.json")
        year[-1].write_text(text.replace(audio.stem, year[-1].stem).replace("reaper-1700000000-1",
                                                                             f"reaper-{1700000000 + n}-{n}"))
        year[-1].with_suffix(".wav").hardlink_to(audio)
        project.state.setdefault("projext", {})[f"daw_bridge_imported/{year[-1].name}"] = "1"
    project.save()

    result = project.run("companion", ticks=1)

    assert result.errors == [] and result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo"]
    assert project.imported() == sorted([template.name] + [m.name for m in year])

    result = project.run("import now")

    assert result.errors == [] and result.undo == []


def test_the_import_record_is_gone_through_once_a_scan_and_a_decision_waiting_comes_with_its_result(project):
    # The record holds a name for every result ever imported, and each scan went through it twice (for the imports,
    # then again for the decisions). Once is enough: the decisions take the imports' view, with this scan's imports,
    # so a decision that came before its result is applied in the scan that imports it, once.
    ids = mix_item(project)
    for n in range(1, 201):
        project.state.setdefault("projext", {})[f"daw_bridge_imported/mix_inpaint_12.50-20.00_v1_{n:06x}.json"] = "1"
    manifest = deliver(project.drop_folder, variants=1, job=FIRST, **ids)
    decide(project.drop_folder, FIRST, 1, "discard", None, [manifest])

    result = project.run("companion", ticks=2)  # three scans

    assert result.errors == [] and result.enumerated["daw_bridge_imported"] == 3
    assert "waits for its results" not in result.console  # applied in the scan that imported its result
    assert result.undo == ["DAW Bridge: import inpaint v1: soft guitar solo",
                           f"DAW Bridge: discard the variants of job {FIRST}"]
    assert takes(project) == [1] and project.project_record("daw_bridge_decided") == {FIRST: "1"}

    result = project.run("import now")

    assert result.errors == [] and result.undo == [] and result.enumerated["daw_bridge_imported"] == 1
