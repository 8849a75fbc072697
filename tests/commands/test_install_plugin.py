"""`daw-bridge install/uninstall plugin`: the built bundles land in the per-user plugin folders a DAW scans, a second
run changes nothing, --dry-run changes nothing, and uninstall gives the folders back as they were. HOME is a tmp
folder, never the real one."""

from __future__ import annotations

import pytest

from bridge.commands import install
from tests.plugin.conftest import build

from .test_install import changes, cli, snapshot

BUNDLE_FILES = {  # what a DAW (and lv2ls, the VST3/CLAP scanners) looks for in each folder
    ".lv2": ["DawBridge.lv2/DawBridge_dsp.so", "DawBridge.lv2/DawBridge_dsp.ttl", "DawBridge.lv2/manifest.ttl"],
    ".vst3": ["DawBridge.vst3/Contents/x86_64-linux/DawBridge.so"],
    ".clap": ["DawBridge.clap"],
}


@pytest.fixture(scope="module")
def built():
    return build()


@pytest.fixture
def home(tmp_path, monkeypatch, built):
    home = tmp_path / "home"
    (home / ".vst3" / "Other.vst3").mkdir(parents=True)  # someone else's plugin: never touched
    (home / ".vst3" / "Other.vst3" / "other.so").write_bytes(b"\x7fELF other")
    monkeypatch.setenv("HOME", str(home))
    return home


def test_install_copies_every_bundle_file_and_a_second_run_changes_nothing(home, built, capsys):
    before = snapshot(home)
    status, out = cli(capsys, "install", "plugin")
    assert status == 0, out
    for folder, files in BUNDLE_FILES.items():
        for name in files:
            assert (home / folder / name).read_bytes() == (built / name).read_bytes(), name
    assert len(changes(out)) == sum(len(files) for files in BUNDLE_FILES.values())
    assert out.rstrip().splitlines()[-1].startswith("install plugin: 5 file(s) written, 0 unchanged")

    status, out = cli(capsys, "install", "plugin")
    assert status == 0 and changes(out) == []
    assert "install plugin: 0 file(s) written, 5 unchanged" in out

    status, out = cli(capsys, "uninstall", "plugin")
    assert status == 0, out
    assert snapshot(home) == before  # ~/.lv2 and ~/.clap (made by install) gone, ~/.vst3 as it was
    status, out = cli(capsys, "uninstall", "plugin")
    assert status == 0 and changes(out) == []


def test_a_rebuilt_bundle_replaces_only_what_changed(home, built, capsys):
    cli(capsys, "install", "plugin")
    (home / ".clap" / "DawBridge.clap").write_bytes(b"an older build")
    status, out = cli(capsys, "install", "plugin")
    assert status == 0
    assert changes(out) == [f"write {home / '.clap' / 'DawBridge.clap'}"]


def test_dry_run_and_path_overrides(home, tmp_path, built, capsys):
    status, out = cli(capsys, "install", "plugin", "--dry-run")
    assert status == 0 and all(line.startswith("would write ") for line in changes(out))
    assert not (home / ".lv2").exists()

    lv2 = tmp_path / "studio" / "lv2"
    status, out = cli(capsys, "install", "plugin", "--lv2-path", str(lv2))
    assert status == 0
    assert (lv2 / "DawBridge.lv2" / "manifest.ttl").exists() and not (home / ".lv2").exists()
    status, out = cli(capsys, "uninstall", "plugin", "--lv2-path", str(lv2))
    assert status == 0
    assert lv2.is_dir() and not any(lv2.iterdir())  # a folder the producer named is left in place


def test_without_a_build_install_says_how_to_make_one(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(install, "PLUGIN_BUILD", tmp_path / "nowhere")
    status, out = cli(capsys, "install", "plugin")
    assert status == 1
    assert out.strip() == (f"daw-bridge: the plugin is not built ({tmp_path / 'nowhere' / 'DawBridge.lv2'} is "
                           f"missing): run make -C {tmp_path} first")
