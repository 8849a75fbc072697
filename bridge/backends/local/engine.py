"""The embedded engine's work for one job, as plain functions that run in a worker process.

``analyse_source`` fills the analysis cache; ``render_job`` plans the variants, renders them into the work folder
and returns ``Rendered`` dicts. Both are module-level so a spawned process pool can pickle them. A worker
remembers the content key of the last song it hashed, so the two calls of one job hash the file once. No call
holds the decoded song: the analysis reads the file a block at a time, and rendering reads only the blocks the
variants play (a lossy file, whose seeking is not sample-exact, is decoded from its start once per job, keeping
only the stretches the laid-out plans read).
Nor does any call hold a variant whole: candidates are compared by spectra taken as their audio is made, and the
chosen are made and written a block at a time.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bridge.backends.local import agreement
from bridge.backends.local.analysis import InvalidSamples, SongAnalysis, analyse, analyse_file, without_range
from bridge.backends.local.cache import AnalysisCache, content_key
from bridge.backends.local.extend import plan_extend, plays_on
from bridge.backends.local.inpaint import plan_inpaint
from bridge.backends.local.joins import ArraySource, FileSource, SpanSource
from bridge.backends.local.limit import limited
from bridge.backends.local.plans import Plan
from bridge.backends.local.render import Rendering, lay_out, spans_read
from bridge.backends.local.similarity import confidence
from bridge.backends.local.steering import CONTEXT_SECONDS, Ruler, context_around, rank, understand
from bridge.backends.local.texture import SOUND_SECONDS, TEXTURE_BELOW, Texture, lay_out_texture, plan_texture
from bridge.exceptions import NoMaterialError, SourceError

ENGINE_NOTE = ("embedded: re-uses the song's own material (beat-aligned, similarity-driven); it does not follow "
               "prompt, lyrics or gender")
STEERED_NOTE = ("embedded: re-uses the song's own material (beat-aligned, similarity-driven); the prompt's words about "
                "energy, density and brightness chose among the passages that fit (see steering), nothing else in "
                "it is followed, nor lyrics or gender")
MIN_SONG_SECONDS = 4.0
# An inpaint range up to this long is held to [local] min_confidence itself, a longer one to a share (floor_for).
FULL_FLOOR_SECONDS = 10.0

_loaded: dict[str, object] = {}  # this worker's last song: its file identity and content key (never its samples)
# Seeking there gives exactly the same samples as decoding from the start. Not in lossy formats: libsndfile 1.2's
# Vorbis seeks land a few samples off now and then, and an MP3 without a Xing header has an estimated length.
_SEEKABLE = {"WAV", "WAVEX", "AIFF", "FLAC", "W64", "RF64", "CAF"}
# seconds of the song either side of the range read besides the passages (steering's context, a texture's sound)
_AROUND = max(CONTEXT_SECONDS, SOUND_SECONDS)


def _identity(source: Path) -> tuple:
    try:
        stat = Path(source).stat()
    except FileNotFoundError:
        raise SourceError(f"source audio not found: {source}", code="source_missing") from None
    except OSError as exc:
        raise SourceError(f"source audio cannot be read ({exc.strerror}): {source}",
                          code="source_unreadable") from None
    return str(source), stat.st_size, stat.st_mtime_ns, stat.st_ino


def song_key(source: Path) -> str:
    """The song's content key; hashed once per file version in this worker.

    The worker trusts its memory while the file's size, modification time and inode are unchanged (the two calls
    of one job, or jobs in a row on one song); anything else is hashed again.
    """
    identity = _identity(source)
    if _loaded.get("identity") != identity:
        try:
            key = content_key(source)
        except OSError as exc:
            raise SourceError(f"source audio cannot be read ({exc}): {source}", code="source_unreadable") from None
        _loaded.clear()
        _loaded.update(identity=identity, key=key)
    return _loaded["key"]


@contextmanager
def _reading(source: Path):
    """A decoder's or the file system's error while reading the song, as a one-line SourceError."""
    import soundfile as sf

    try:
        yield
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise SourceError(f"source audio cannot be read ({exc}): {source}", code="source_unreadable") from None


def load_song(source: Path) -> tuple[np.ndarray, int, str]:
    """(float32 frames (n, channels), sample rate, source subtype): the whole song decoded, for a format that
    cannot be read block by block exactly. Not kept: a job's memory ends with the job."""
    import soundfile as sf

    with _reading(source), sf.SoundFile(str(source)) as song:
        audio = song.read(dtype="float32", always_2d=True)
        sample_rate, subtype = song.samplerate, song.subtype
    if len(audio) == 0:
        raise SourceError(f"source audio has no frames: {source}", code="source_unreadable")
    return audio, sample_rate, subtype


def open_song(source: Path, reads=None):
    """A readable source for rendering, its sample rate and subtype: the file read block by block where seeking
    is exact; else, given ``reads(sample_rate)`` (the frame ranges the job reads), the song decoded from its start
    keeping only those; else the whole song decoded."""
    import soundfile as sf

    with _reading(source):
        info = sf.info(str(source))
    if info.format in _SEEKABLE and info.frames > 0:
        return FileSource(source), info.samplerate, info.subtype
    if reads is None:
        audio, sample_rate, subtype = load_song(source)
        return ArraySource(audio), sample_rate, subtype
    with _reading(source):
        song = SpanSource(source, reads(info.samplerate))
    if song.frames == 0:
        raise SourceError(f"source audio has no frames: {source}", code="source_unreadable")
    return song, info.samplerate, info.subtype


def song_analysis(source: Path, cache_dir: Path) -> tuple[SongAnalysis, bool]:
    """The song's analysis, from the cache when it holds this content; the bool says it was cached. A new song
    is analysed as it is read, a block at a time."""
    cache = AnalysisCache(cache_dir)
    key = song_key(source)
    analysis = cache.load(key)
    if analysis is not None:
        return analysis, True
    with _reading(source):
        try:
            analysis = analyse_file(source)
        except InvalidSamples as exc:
            raise SourceError(f"source audio holds {exc}: {source}", code="source_unreadable") from None
    if analysis.duration == 0:
        raise SourceError(f"source audio has no frames: {source}", code="source_unreadable")
    cache.store(key, analysis)
    return analysis, False


def analyse_source(source: str, cache_dir: str) -> dict:
    """Make sure the song's analysis is cached; returns a short summary for logs."""
    analysis, cached = song_analysis(Path(source), Path(cache_dir))
    return {"cached": cached, "tempo": round(analysis.tempo, 2), "beats": len(analysis.beats)}


def floor_for(min_confidence: float, seconds: float) -> float:
    """The confidence a variant of a ``seconds``-long inpaint range must reach: ``min_confidence`` up to
    ``FULL_FLOOR_SECONDS``, then falling in proportion (a 100 s range: a tenth of it).

    A variant's confidence is its weakest join's, judged on the 1.5 s either side whatever the length; a long range
    must be filled by passages long enough, which few places in a song can supply, so its joins score lower while
    the fill may still sound as good. At 100 s (bench/engine_coverage.py --long, like the evaluation's refused
    100-110 s inpaints) 8 of the 19 variants between 0.01 and 0.1 beat both baselines, with joins as clean as the
    rest: floor 0.1 -> 0.01, delivered / better than both of all dev 26 -> 30 / 17 -> 17 of 30, held-out
    9 -> 11 / 8 -> 9 of 11, outside 30 -> 43 / 24 -> 31 of 47; joins with a spike over 2: 7, 3 and 8 % of them.
    At 2-10 s the joins below 0.1 do go bad, so the floor holds there.
    """
    return min_confidence * min(1.0, FULL_FLOOR_SECONDS / seconds) if seconds > 0 else min_confidence


def render_job(job: dict, workdir: str, cache_dir: str, min_confidence: float) -> list[dict]:
    """Plan and render the job's variants into ``workdir``; returns ``Rendered.to_json()`` dicts, best first.

    Raises NoMaterialError when the song is silent, too short, or nothing in it fits well enough.
    """
    from bridge.audio.region import check_unchanged
    from bridge.audio.wavio import lossless_subtype
    from bridge.models import JobSpec, Rendered

    spec = JobSpec.from_json(job)
    check_unchanged(spec.source, spec.source_info)
    analysis, _ = song_analysis(spec.source, Path(cache_dir))
    _check_song(analysis)
    steering = understand(spec.prompt)  # None: the prompt has no word the engine follows
    count = steering.plan_count(spec.num_outputs) if steering else spec.num_outputs
    if spec.operation == "inpaint":
        start, end = float(spec.start), float(spec.end)
        analysis = without_range(analysis, start, end)
        plans = plan_inpaint(analysis, start, end, count)
        span_start = max(0.0, start - spec.handle)
        span_end = min(analysis.duration, end + spec.handle)
        where = f"{start:.2f}-{end:.2f} s"
    elif spec.operation == "extend":
        start = min(float(spec.extend_after), analysis.duration)
        end = start + float(spec.duration)
        plans = plan_extend(analysis, start, float(spec.duration), count, more_starts=True)
        span_start, span_end = max(0.0, start - spec.handle), end
        where = f"the music before {start:.2f} s"
    else:
        raise ValueError(f"operation must be inpaint or extend, got {spec.operation!r}")
    floor = floor_for(min_confidence, end - start) if spec.operation == "inpaint" else min_confidence

    def reads(rate: int, planned: list[Plan]) -> list[tuple[int, int]]:
        return spans_read(planned, (int(round(span_start * rate)), int(round(span_end * rate))), rate, _AROUND)

    song, sample_rate, subtype = open_song(spec.source, lambda rate: reads(rate, plans))
    first, stop = int(round(span_start * sample_rate)), int(round(span_end * sample_rate))
    write_subtype = lossless_subtype(subtype)
    candidates, steered, apart, results = [], {}, [], []
    # A candidate is kept as its layout (joins, gains), and what it is compared by when it is compared before the
    # choice, never as its audio: the chosen are made a block at a time as they are written (a 600 s extension with
    # six candidates held 1.6 GB when each was kept whole, 657 MB when rendered again and written whole).
    new = (int(round(start * sample_rate)) - first, stop - first)  # an extension's new material

    def lay_out_plan(plan: Plan) -> Rendering:
        if isinstance(song, SpanSource):  # a texture is planned after the song was read for the passages
            with _reading(spec.source):
                song.hold(reads(sample_rate, [plan]))
        draw = lay_out_texture if isinstance(plan, Texture) else lay_out
        return draw(song, sample_rate, plan, start, end, (first, stop), analysis.beat_period)

    try:
        if steering:
            ruler = Ruler(context_around(song, sample_rate, start, end, spec.operation), sample_rate)
            # an extension's last bar is left out, as when steering was measured: every candidate ends the same way
            # there (the song's ending, or a fade over its last beat)
            tail = min(4 * analysis.beat_period, (end - start) / 2) if spec.operation == "extend" else 0.0
            judged = (int(round(start * sample_rate)) - first, int(round((end - tail) * sample_rate)) - first)

        def consider(plan: Plan) -> float:
            rendering = lay_out_plan(plan)
            joins = rendering.joins
            sure = min([j["confidence"] for j in joins] + [confidence(plan.worst_join) if not joins else 1.0])
            if sure >= floor:
                kept = None
                if steering:
                    kept = ruler.change(rendering.audio(*judged))
                elif spec.operation == "extend":
                    kept = _spectra(rendering, new, sample_rate)
                candidates.append((sure, kept, rendering, plan))
            return sure

        sure_of = [(consider(plan), plan) for plan in plans]
        # the song's own music after the point joins itself perfectly, and would come first; but the producer has
        # it, so it is delivered only when nothing else fits (the texture included)
        best = max([sure for sure, plan in sure_of if not _plays_on(plan)], default=0.0)
        if spec.operation == "extend" and best < TEXTURE_BELOW:  # no passage fits: the music's sound goes on
            texture = plan_texture(analysis, start, float(spec.duration))
            if texture is not None:
                plans.append(texture)
                best = max(best, consider(texture))
        if not all(_plays_on(plan) for *_, plan in candidates):
            candidates = [item for item in candidates if not _plays_on(item[3])]
        best = max([best, *(sure for sure, _ in sure_of)])
        candidates.sort(key=lambda item: -item[0])  # surest first: an inpaint's order, and the order of equals
        if spec.operation == "extend" and not steering:  # the guess the others agree with, among the surest
            ranked = agreement.order_spectra([c[1] for c in candidates], [c[0] for c in candidates], reuse=True)
            candidates = [candidates[i] for i, _ in ranked]
            apart = [distance for _, distance in ranked]
        if steering and candidates:
            order = rank(steering, ruler, [c[1] for c in candidates], [c[0] for c in candidates])[:spec.num_outputs]
            candidates = [candidates[i] for i, _ in order]
            steered = {variant: note for variant, (_, note) in enumerate(order, start=1)}
        del candidates[spec.num_outputs:]  # an extension plans more candidates than variants asked for
        for variant, (sure, _, rendering, plan) in enumerate(candidates, start=1):
            path = _write(Path(workdir) / f"local_{spec.operation}_v{variant}.wav", rendering, sample_rate,
                          write_subtype, analysis.peak)
            splice = {"handle": spec.handle, "joins": rendering.joins, "confidence": round(sure, 3),
                      "passages": rendering.passages, "tempo": round(analysis.tempo, 2)}
            if spec.operation == "extend":
                splice["ending"] = plan.ending
                if _plays_on(plan):
                    splice["plays_on"] = True
                if apart and apart[variant - 1] is not None:
                    splice["apart_db"] = round(apart[variant - 1], 2)
            if isinstance(plan, Texture):
                splice["texture"] = plan.describe(rendering.passages)
            results.append(Rendered(variant, path, first / sample_rate, splice, {}))
    finally:
        if isinstance(song, FileSource):
            song.close()
    if not results:
        raise NoMaterialError(_no_material_reason(analysis, plans, best, where, floor, end - start))
    notes = _notes(spec, len(results), steering)
    for rendered in results:
        rendered.notes = dict(notes)
        if rendered.variant in steered:
            rendered.notes["steering"] = steered[rendered.variant]
    return [rendered.to_json() for rendered in results]


def _plays_on(plan: Plan) -> bool:
    """An extension that starts with the song's own music after the point (see ``extend.plays_on``)."""
    return plan.ending != "source" and not isinstance(plan, Texture) and plays_on(plan)


def _spectra(rendering: Rendering, new: tuple[int, int], sample_rate: int) -> np.ndarray:
    """``agreement.spectra`` of the rendering's frames ``new``, made a block at a time."""
    try:
        return agreement.spectra_of_blocks(rendering.blocks(*new), sample_rate, new[1] - new[0])
    except agreement.SpreadMismatch:  # the resampler rounded another way than reckoned: measure it whole
        return agreement.spectra(rendering.audio(*new), sample_rate)


def _write(path: Path, rendering: Rendering, sample_rate: int, subtype: str, ceiling: float) -> Path:
    """The rendering written a block at a time, its overs of the song's own peak limited (see ``limit``): re-used
    material summed in a crossfade, or resampled, goes past the peak of the material it came from, and a master
    held under -1 dBFS came back with peaks at full scale (past it, clipped: an outside probe). PCM is held at full
    scale too, a float file may keep its source's overs."""
    from bridge.audio.wavio import write_blocks_atomic

    blocks = limited(rendering.blocks(), sample_rate, ceiling if subtype == "FLOAT" else min(ceiling, 1.0),
                     rendering.made)
    if subtype != "FLOAT":  # the gain's float rounding: PCM wraps past full scale
        blocks = (np.clip(block, -1.0, 1.0, out=block) for block in blocks)
    return write_blocks_atomic(path, blocks, sample_rate, rendering.channels, subtype)


def _check_song(analysis: SongAnalysis) -> None:
    if analysis.silent:
        raise NoMaterialError(f"the song is silent ({analysis.level_db:.0f} dBFS): there is no material to re-use")
    if analysis.duration < MIN_SONG_SECONDS:
        raise NoMaterialError(f"the song is too short ({analysis.duration:.1f} s): the embedded engine needs at "
                              f"least {MIN_SONG_SECONDS:.0f} s of music to re-use")


def _no_material_reason(analysis: SongAnalysis, plans: list[Plan], best: float, where: str, threshold: float,
                        length: float) -> str:
    if not plans and len(analysis.beats) < 8:  # a beat longer than the song leaves no room, however long it is
        return (f"nothing in the song can be planned for {where}: no steady beat was found in it (the embedded "
                f"engine re-uses material a beat at a time)")
    if not plans:
        return (f"the song is too short ({analysis.duration:.1f} s) to supply {length:.1f} s of other material "
                f"with its surroundings: try a shorter range or a longer source")
    beats = "" if len(analysis.beats) >= 8 else "; no steady beat was found"
    return (f"nothing in the song is similar enough to {where} to re-use (best match confidence {best:.2f}, "
            f"threshold {threshold:.2f}, from [local] min_confidence{_scaled(length)}){beats}")


def _scaled(length: float) -> str:
    return f" for a {length:g} s range" if length > FULL_FLOOR_SECONDS else ""


def _notes(spec, delivered: int, steering=None) -> dict:
    prompt = steering.rest if steering else spec.prompt  # a steering prompt's words are accounted for per variant
    ignored = {name: value for name, value in (("prompt", prompt), ("lyrics", spec.lyrics),
                                               ("gender", spec.gender)) if value and value.strip()}
    notes: dict = {"engine": STEERED_NOTE if steering else ENGINE_NOTE}
    if ignored:
        notes["ignored"] = ignored
    if delivered < spec.num_outputs:
        notes["variants"] = (f"{delivered} of {spec.num_outputs} variants: the song offers no further passage "
                             f"similar enough")
    return notes


def release_memory() -> None:
    """Return freed memory to the system. glibc keeps a process's freed heap for reuse, and after large arrays are
    freed it serves even big ones from that heap: without a trim a worker stays near its largest job's peak."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


def warm_up() -> None:
    """Run the analysis once on 3 s of noise, so a new worker's first job does not pay for imports and filter banks.

    Tens of milliseconds: the analysis is plain numpy, so nothing is JIT-compiled and no compiler cache is written
    (tests/backends/local/test_beats.py checks that no numba is even imported).
    """
    rng = np.random.default_rng(0)
    analyse((rng.standard_normal((3 * 22050, 1)) * 0.1).astype(np.float32), 22050)
