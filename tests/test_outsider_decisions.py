"""An outsider's probes of decisions: what a producer does first when the decision folder is damaged, moved away or
cleaned, and what the DAW scripts then see. Real daemon, real UDP; the DAW scripts' ledgers are written as they
write them (``<drop folder>/.reaper-decided``: "<job_id> <seq>", ``.ardour-decided``: "<job_id>\\t<seq>")."""

from __future__ import annotations

import shutil

from tests.frontends.test_decide import decide, decision_file


def test_a_decision_made_after_the_decision_file_was_moved_away_is_still_new_to_the_daw(project, daemon, client):
    outcome, _ = client.run_job("inpaint", source=str(project.song), start=12.0, end=16.0, prompt="", num_outputs=2,
                                timeout=300)
    assert outcome.name == "done", outcome
    job = outcome.args[0]
    assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 1]
    assert decide(client, job, "choose", "choice", 2).args == [job, "choose", 2, 2]
    # both DAW scripts applied decision 2 (each records the seq it applied beside the results)
    (project.drop / ".reaper-decided").write_text(f"{job} 1\n{job} 2\n", encoding="utf-8")
    (project.drop / ".ardour-decided").write_text(f"{job}\t2\n", encoding="utf-8")

    # the decision file is damaged: the daemon says to move it away and decide again
    path = project.drop / ".daw-bridge-decisions" / f"{job}.json"
    path.write_text("{not json", encoding="utf-8")
    refused = decide(client, job, "choose", "choice", 1)
    assert refused.name == "error" and "\n" not in refused.args[-1] and "move it away" in refused.args[-1], refused
    path.rename(project.drop / f"{job}.json.damaged")
    # the next decision must be numbered past what the DAW applied, else the scripts skip it as already applied
    assert decide(client, job, "choose", "choice", 1).args == [job, "choose", 1, 3]
    assert decision_file(project, job)["seq"] == 3

    # REAPER applied decision 3; then the producer cleans the hidden folder away, the ledgers staying beside the results
    with (project.drop / ".reaper-decided").open("a", encoding="utf-8") as ledger:
        ledger.write(f"{job} 3\n")
    shutil.rmtree(project.drop / ".daw-bridge-decisions")
    assert decide(client, job, "keep", "choice", 2).args == [job, "keep", 2, 4]
    assert client.ping(timeout=5)
