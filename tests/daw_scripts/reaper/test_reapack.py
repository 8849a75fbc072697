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
