"""How requests travel (request files by default, OSC when LuaSocket is there) and the Settings script."""

from pythonosc.osc_message import OscMessage

from osc_schema import parse_osc


def osc_chosen(project):
    project.setting("transport", "osc")
    project.setting("osc_port", "9123")
    mix = project.add_track()
    item = project.add_item(mix, position=10.0, length=20.0, offset=3.0, playrate=1.5)
    project.select_time(12.0, 16.0)
    return item


def test_osc_chosen_without_luasocket_falls_back_to_a_request_file(project):
    osc_chosen(project)

    result = project.run("inpaint", dialog=[{"Prompt": "x"}])

    assert "OSC not used (no LuaSocket module); writing a request file instead" in result.console
    assert len(project.requests()) == 1


def test_with_luasocket_the_request_goes_as_one_osc_message_the_daemon_accepts(project):
    item = osc_chosen(project)

    result = project.run("inpaint", dialog=[{"Prompt": "soft guitar", "Variants": "1", "Voice": "male"}],
                         fake_socket=True)

    assert result.errors == []
    [datagram] = result.datagrams
    assert (datagram["host"], datagram["port"]) == ("127.0.0.1", 9123)
    message = OscMessage(bytes.fromhex(datagram["hex"]))  # decoded by python-osc, not by our own code
    command = parse_osc(message.address, list(message.params))  # and checked by the daemon's validator
    assert command.name == "inpaint"
    args = command.args
    assert (args["source"], args["prompt"], args["num_outputs"], args["gender"]) == \
        ("/music/song/mix.wav", "soft guitar", 1, "male")
    assert (args["start"], args["end"], args["position"]) == (6.0, 12.0, 8.0)  # float64: times arrive exactly
    assert args["item_id"] == item["guid"] and args["take_id"] == item["takes"][0]["guid"]
    assert args["request_id"].startswith("reaper-")
    assert not project.inbox.exists()
    assert "sent (OSC port 9123)" in result.console
    assert project.state["extstate"].get("daw_bridge/pending", "") == ""  # no status file will come for OSC


def test_an_extension_goes_as_osc_with_its_own_positional_arguments(project):
    osc_chosen(project)

    result = project.run("extend", dialog=[{"Seconds of new material": "12.5", "Lyrics of the new section": "na"}],
                         fake_socket=True)

    message = OscMessage(bytes.fromhex(result.datagrams[0]["hex"]))
    command = parse_osc(message.address, list(message.params))
    assert command.name == "extend"
    assert (command.args["extend_after"], command.args["duration"]) == (12.0, 12.5)
    assert command.args["lyrics_section_to_extend"] == "na"


def test_settings_are_checked_and_stored_persistently(project):
    result = project.run("settings", dialog=[
        {"Daemon inbox folder": "~/elsewhere/inbox", "Transport": "carrier pigeon", "Daemon OSC port": "70000",
         "Backend": "cloud"},
        {"Transport": "file", "Daemon OSC port": "9000", "Backend": "musicgpt", "Delivery": "full"},
    ])

    [complaint] = result.message_texts
    assert 'transport: "carrier pigeon" must be file or osc' in complaint
    assert 'osc_port: "70000" must be a whole number in 1..65535' in complaint
    assert 'backend: "cloud" must be blank or one of local, musicgpt' in complaint
    assert result.dialogs[0]["defaults"][2] == "9010"  # the daemon's default OSC port, from the constants
    ext = project.state["extstate"]
    assert ext["daw_bridge/inbox"] == "~/elsewhere/inbox"
    assert (ext["daw_bridge/backend"], ext["daw_bridge/delivery"], ext["daw_bridge/osc_port"]) == \
        ("musicgpt", "full", "9000")
    assert "extstate_volatile" not in project.state  # every setting survives a restart


def test_a_home_relative_inbox_is_expanded(project):
    project.setting("inbox", "~/elsewhere/inbox")
    mix = project.add_track()
    project.add_item(mix, position=0.0, length=30.0)
    project.select_time(1.0, 2.0)

    project.run("inpaint", dialog=[{"Prompt": "x"}])

    assert len(list((project.tmp / "elsewhere" / "inbox").glob("reaper-*.json"))) == 1
