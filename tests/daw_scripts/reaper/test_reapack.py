"""The ReaPack repository a producer imports: index.xml must install every script, at the version its header says."""

import fnmatch
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from .conftest import PACKAGE, REAPACK_ROOT, SCRIPTS

GENERATED = "bridge_constants.lua"  # written here by the constants generator, shipped like the other files


def header(path) -> dict[str, list[str]]:
    """The ReaPack metadata tags at the top of a script: tag -> value lines."""
    tags: dict[str, list[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        m = re.match(r"--\s*@(\w+)\s*(.*)$", line)
        if m:
            current = m.group(1).lower()
            tags[current] = [m.group(2)] if m.group(2) else []
        elif current and re.match(r"--\s{2,}\S", line):
            tags[current].append(line[2:].strip())
        else:
            current = None
    return tags


def package_files() -> set[str]:
    return {p.name for p in PACKAGE.glob("*.lua")} | {GENERATED}


def index_package():
    root = ET.parse(REAPACK_ROOT / "index.xml").getroot()
    assert root.tag == "index" and root.get("version") == "1"
    [category] = root.findall("category")
    assert category.get("name") == PACKAGE.name  # the folder is the category, as reapack-index makes it
    [package] = category.findall("reapack")
    [version] = package.findall("version")
    return package, version


def sources(package, version) -> dict[str, ET.Element]:
    return {src.get("file") or package.get("name"): src for src in version.findall("source")}


def test_index_lists_every_file_of_the_package_and_nothing_else():
    package, version = index_package()
    assert set(sources(package, version)) == package_files()


def test_every_action_script_is_registered_in_the_main_section_and_libraries_are_not():
    package, version = index_package()
    listed = sources(package, version)
    for name in SCRIPTS.values():
        assert listed[name].get("main") == "main", name
    for name in package_files() - set(SCRIPTS.values()):
        assert listed[name].get("main") is None, name


def test_each_scripts_header_version_matches_the_index():
    package, version = index_package()
    for name in SCRIPTS.values():
        assert header(PACKAGE / name)["version"] == [version.get("name")], name


def test_only_the_package_script_is_indexed_and_it_provides_all_the_others():
    package, _ = index_package()
    owner = PACKAGE / package.get("name")
    tags = header(owner)
    assert "noindex" not in tags
    assert tags["description"] == [package.get("desc")]
    provided = set()
    for line in tags["provides"]:
        options, pattern = re.match(r"(?:\[(.*?)\]\s*)?(.+)", line).groups()
        matches = fnmatch.filter(sorted(package_files()), pattern)
        assert matches, f"@provides {line} matches no file"
        provided |= set(matches)
        assert (options == "main") == all(m in SCRIPTS.values() for m in matches), line
    assert provided | {owner.name} == package_files()
    for path in PACKAGE.glob("*.lua"):
        if path != owner:
            # reapack-index would otherwise make each its own package, owning files the main package provides
            assert "noindex" in header(path), path.name


def test_download_links_point_at_the_files_in_this_repository():
    package, version = index_package()
    for name, src in sources(package, version).items():
        assert unquote(src.text).endswith(f"/daw_scripts/reaper/{PACKAGE.name}/{name}"), src.text


# ---- the index is generated from the headers (bridge/reapack_index.py, `daw-bridge generate`) -------------------

def _copy_package(tmp_path):
    import shutil

    from bridge import reapack_index

    root = tmp_path / "repo"
    shutil.copytree(REAPACK_ROOT, root / reapack_index.REAPACK_ROOT)
    return root


def test_the_committed_index_is_what_the_headers_generate():
    from bridge import reapack_index

    assert not reapack_index.is_stale(), "index.xml is stale: run `daw-bridge generate`"


def test_a_header_change_makes_the_index_stale_and_generate_fixes_it(tmp_path, capsys):
    from bridge import reapack_index

    root = _copy_package(tmp_path)
    script = root / reapack_index.PACKAGE_DIR / SCRIPTS["inpaint"]
    script.write_text(script.read_text(encoding="utf-8").replace("@version 0.1.0", "@version 0.2.0"),
                      encoding="utf-8")
    assert reapack_index.main(check=True, root=root) == 1
    assert "stale: daw_scripts/reaper/index.xml" in capsys.readouterr().err

    assert reapack_index.main(root=root) == 0
    assert reapack_index.main(check=True, root=root) == 0
    assert '<version name="0.2.0" author="daw-bridge">' in (root / reapack_index.INDEX).read_text(encoding="utf-8")


def test_a_new_library_file_not_provided_by_the_header_is_listed_once_it_matches_a_provides_glob(tmp_path):
    from bridge import reapack_index

    root = _copy_package(tmp_path)
    (root / reapack_index.PACKAGE_DIR / "bridge_new.lua").write_text("-- @noindex\nreturn {}\n", encoding="utf-8")
    text = reapack_index.render(root)
    assert 'file="bridge_new.lua">' in text and reapack_index.is_stale(root)


def test_base_url_is_a_setting(tmp_path):
    from bridge import reapack_index

    root = _copy_package(tmp_path)
    text = reapack_index.render(root, base_url="https://example.org/raw/me/fork/release/")
    urls = [src.text for src in ET.fromstring(text).iter("source")]
    assert urls and all(u.startswith("https://example.org/raw/me/fork/release/daw_scripts/reaper/DAW%20Bridge/")
                        for u in urls)
    assert reapack_index.main(root=root, base_url="https://example.org/raw/me/fork/release") == 0
    assert reapack_index.main(check=True, root=root) == 1  # the default URL no longer matches what was written


def test_a_provides_line_matching_nothing_is_an_error(tmp_path, capsys):
    from bridge import reapack_index

    root = _copy_package(tmp_path)
    script = root / reapack_index.PACKAGE_DIR / SCRIPTS["inpaint"]
    script.write_text(script.read_text(encoding="utf-8").replace("[main] DAW Bridge - Settings.lua",
                                                                 "[main] DAW Bridge - Setings.lua"), encoding="utf-8")
    assert reapack_index.main(check=True, root=root) == 2
    assert "matches no file" in capsys.readouterr().err


def test_generate_check_covers_the_index():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bridge", "generate", "--check"], capture_output=True, text=True,
                          cwd=REAPACK_ROOT.parent.parent, timeout=120)
    assert "index.xml" not in done.stderr
