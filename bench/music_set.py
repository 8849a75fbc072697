"""The real music the engine benchmarks run on: Debian's game-music packages, split once into development and held-out.

Each source is one Debian package and a glob of its music files. Nexuiz and UFO:AI ship theirs inside ``.pk3``
(zip) archives (``ARCHIVE!MEMBER-GLOB``); those members are extracted once into a cache folder. Frozen-Bubble's
music is a tracker module (XM); it is rendered once to WAV with ``ffmpeg`` (libopenmpt). Drascula installs the same
files five more times under language folders; only ``audio/`` is used.

The split is FIXED: a song belongs to the held-out part when the first 8 hex digits of
``sha256("package/file-name")`` modulo 100 are below 30 (about 30 %), otherwise to the development part. It depends
on nothing but the name, so adding packages or songs never moves an existing song between parts. Tune on ``dev``
only; run ``heldout`` for the final check and report both, never pick settings by their held-out figures.

A third part, ``outside``, is whole packages of styles the first six lack or hold few of (``OUTSIDE_SOURCES``:
Wesnoth's orchestral score, Warzone 2100's soundtracks, Hedgewars' theme tracks). No decision has seen it: it is
never mixed into ``dev`` or ``heldout`` (``songs(None)`` is still those two), so it estimates what an evaluation on
music nobody has seen finds. Run it once on an engine as it stands; never tune on it or choose between settings by it.

Songs shorter than ``MIN_SECONDS`` (stingers, jingles) are left out of every part.

    python bench/music_set.py            # list the songs of each part, with their lengths
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_SECONDS = 60.0
HELD_OUT_PERCENT = 30
CACHE = Path(os.environ.get("DAW_BRIDGE_BENCH_MUSIC", Path.home() / ".cache" / "daw-bridge-bench-music"))


@dataclass(frozen=True)
class Source:
    package: str
    style: str
    pattern: str  # a glob of files, or ARCHIVE!MEMBER-GLOB for a zip archive


SOURCES = (
    Source("planetblupi-music-ogg", "long game loops (10-29 min), light synth/orchestral",
           "/usr/share/planetblupi/music/*.ogg"),
    Source("nexuiz-music", "electronic / techno game tracks, 2-6 min",
           "/usr/share/games/nexuiz/data/music.pk3!sound/cdtracks/*.ogg"),
    Source("ufoai-music", "orchestral and ambient soundtrack cues, mostly through-composed, 1-6 min",
           "/usr/share/games/ufoai/base/0music.pk3!music/*.ogg"),
    Source("drascula-music", "adventure-game score cues, 1-3 min",
           "/usr/share/scummvm/drascula/audio/*.ogg"),
    Source("asc-music", "strategy-game soundtrack, mp3 at 22.05 kHz, 5-7 min",
           "/usr/share/games/asc/music/*.mp3"),
    Source("fb-music-high", "tracker module (XM) pop, rendered with ffmpeg",
           "/usr/share/games/frozen-bubble/snd/*.xm"),
)

# The "outside" part: packages of their own, whole, never split into dev / held-out.
OUTSIDE_SOURCES = (
    Source("wesnoth-1.16-music", "orchestral fantasy score, through-composed, 1-9 min",
           "/usr/share/games/wesnoth/1.16/data/core/music/*.ogg"),
    Source("warzone2100-music", "strategy-game soundtracks (techno, rock, orchestral), Opus at 48 kHz, 3-14 min",
           "/usr/share/games/warzone2100/music/albums/*/*.opus"),
    Source("hedgewars-data", "theme tracks of a party game, band and pop instrumentals, 1-6 min",
           "/usr/share/games/hedgewars/Data/Music/*.ogg"),
)
PARTS = ("dev", "heldout", "outside")


@dataclass(frozen=True)
class Song:
    package: str
    name: str  # file name without folders
    path: Path  # a file soundfile reads
    seconds: float

    @property
    def key(self) -> str:
        return f"{self.package}/{self.name}"

    @property
    def part(self) -> str:
        return part_of(self.package, self.name)

    @property
    def label(self) -> str:
        return f"{self.package.split('-')[0]}/{Path(self.name).stem}"


def part_of(package: str, name: str) -> str:
    """'outside', 'heldout' or 'dev', from the name alone (see the module's docstring)."""
    if any(source.package == package for source in OUTSIDE_SOURCES):
        return "outside"
    digest = hashlib.sha256(f"{package}/{name}".encode()).hexdigest()
    return "heldout" if int(digest[:8], 16) % 100 < HELD_OUT_PERCENT else "dev"


def _files(source: Source) -> list[Path]:
    """The source's playable files, extracting or rendering them into the cache where needed."""
    if "!" in source.pattern:
        archive, member_glob = source.pattern.split("!", 1)
        if not Path(archive).exists():
            return []
        folder = CACHE / source.package
        paths = []
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or not fnmatch.fnmatch(info.filename, member_glob):
                    continue
                target = folder / Path(info.filename).name
                if not target.exists() or target.stat().st_size != info.file_size:
                    folder.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(f"{target}.part", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    os.replace(f"{target}.part", target)
                paths.append(target)
        return sorted(paths)
    found = sorted(Path(p) for p in glob.glob(source.pattern))
    if source.pattern.endswith(".xm"):
        return [_rendered(source, p) for p in found]
    return found


def _rendered(source: Source, module: Path) -> Path:
    target = CACHE / source.package / (module.stem + ".wav")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(module), "-c:a", "pcm_s16le",
                        f"{target}.part.wav"], check=True)
        os.replace(f"{target}.part.wav", target)
    return target


def songs(part: str | None = None) -> list[Song]:
    """Every installed song of ``part`` ('dev', 'heldout', 'outside' or None for dev and heldout), long enough, in a
    fixed order."""
    import soundfile as sf

    found = []
    for source in OUTSIDE_SOURCES if part == "outside" else SOURCES:
        for path in _files(source):
            name = path.name if not source.pattern.endswith(".xm") else path.stem + ".xm"
            try:
                seconds = sf.info(str(path)).duration
            except (RuntimeError, sf.LibsndfileError):
                continue
            song = Song(source.package, name, path, seconds)
            if seconds >= MIN_SECONDS and (part is None or song.part == part):
                found.append(song)
    return found


def pick(candidates: list[Song], count: int, skip: int = 0) -> list[Song]:
    """``count`` songs taken round-robin over the packages (so a few songs still span several styles); 0 = all.
    ``skip``: first leave out the songs ``pick(candidates, skip)`` takes (those earlier runs measured already)."""
    if skip > 0:
        seen = {song.key for song in pick(candidates, skip)}
        candidates = [song for song in candidates if song.key not in seen]
    if count <= 0 or count >= len(candidates):
        return list(candidates)
    by_package: dict[str, list[Song]] = {}
    for song in candidates:
        by_package.setdefault(song.package, []).append(song)
    chosen: list[Song] = []
    queues = [list(v) for v in by_package.values()]
    while len(chosen) < count:
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def load(song: Song, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of the song as float32 frames (n, channels): memory stays bounded on 29-min tracks."""
    import soundfile as sf

    with sf.SoundFile(str(song.path)) as f:
        audio = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True)
        return audio, f.samplerate


def main() -> None:
    for part in PARTS:
        chosen = songs(part)
        print(f"== {part}: {len(chosen)} songs, {sum(s.seconds for s in chosen) / 60:.0f} min")
        for source in SOURCES + OUTSIDE_SOURCES:
            mine = [s for s in chosen if s.package == source.package]
            if mine:
                print(f"  {source.package} ({len(mine)}): " + ", ".join(f"{Path(s.name).stem} {s.seconds:.0f}s"
                                                                        for s in mine))


if __name__ == "__main__":
    main()
