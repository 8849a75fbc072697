"""A picture of every delivered variant: a PNG beside its manifest, drawn once the job is done, published whole
and named in the manifest re-written with it; never a reason for a job to fail or to wait."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge import delivery
from bridge.audio import picture
from bridge.audio.region import read_region
from bridge.audio.wavio import write_atomic
from bridge.core.admission import admit
from bridge.exceptions import Cancelled
from bridge.models import Rendered, State
from bridge.threads import LeavingExecutor
from tests.conftest import command_line, process_tree
from tests.core.test_service import PaidBackend, inpaint, run_service

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature and that the file ends with IEND."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82"), f"{path.name} is not a whole PNG"
    return struct.unpack(">II", data[16:24])


class TwoVariants(PaidBackend):
    """Two variants with the range changed (quieter, shifted) and joins carrying confidences."""

    async def wait(self, spec, prepared, receipt, workdir, progress):
        start = max(0.0, spec.edit_start - spec.handle)
        audio, sr = read_region(spec.source, start, spec.edit_end + spec.handle)
        first, last = int(round((spec.edit_start - start) * sr)), int(round((spec.edit_end - start) * sr))
        rendered = []
        for variant in (1, 2):
            changed = audio.copy()
            changed[first:last] = np.roll(changed[first:last], 4000 * variant, axis=0) * (0.5 / variant)
            path = write_atomic(workdir / f"v{variant}.wav", changed, sr, subtype="FLOAT")
            joins = [{"at": spec.edit_start, "crossfade": 0.0, "confidence": 0.9},
                     {"at": spec.edit_end, "crossfade": 0.0, "confidence": 0.55}]
            rendered.append(Rendered(variant, path, start, {"handle": spec.handle, "joins": joins}, {}))
        return rendered


def test_each_delivered_variant_has_a_png_named_in_its_manifest_and_the_audio_is_untouched(setup):
    config, song = setup
    source, sr = sf.read(str(song), dtype="float32", always_2d=True)

    async def story(service):
        patch = service.submit(inpaint(song, num_outputs=2), {"kind": "test"})
        full = service.submit(inpaint(song, num_outputs=2, delivery="full"), {"kind": "test"})
        await service.drain()
        return patch, full

    patch, full = asyncio.run(run_service(config, TwoVariants(), story))
    for record in (patch, full):
        assert record.state is State.DELIVERED and len(record.manifests) == 2
        for manifest_path in map(Path, record.manifests):
            manifest = json.loads(manifest_path.read_text())
            assert manifest["picture"] == manifest_path.with_suffix(".png").name
            assert png_size(manifest_path.with_name(manifest["picture"])) == (
                int(picture.WIDTH_IN * picture.DPI), int(picture.HEIGHT_IN * picture.DPI))
            assert manifest_path.with_name(manifest["picture"]).stat().st_size < 400_000
            # The picture changes nothing of the audio's promise: outside the range it is the source itself.
            audio, _ = sf.read(str(manifest_path.with_name(manifest["audio"])), dtype="float32", always_2d=True)
            offset = int(round(manifest["source"]["span_start"] * sr))
            edit = int(round(5.0 * sr)) - offset, int(round(8.0 * sr)) - offset
            np.testing.assert_array_equal(audio[:edit[0]], source[offset:offset + edit[0]])
            np.testing.assert_array_equal(audio[edit[1]:], source[offset + edit[1]:offset + len(audio)])
    assert sorted(p.suffix for p in config.drop_folder.iterdir()) == [".json"] * 4 + [".png"] * 4 + [".wav"] * 4


def test_a_picture_that_cannot_be_drawn_is_one_log_line_and_the_delivery_goes_on(setup, monkeypatch, caplog):
    config, song = setup

    def broken(painter, _):
        raise RuntimeError("no fonts today")

    monkeypatch.setattr(picture.Painter, "render", broken)  # the daemon draws through its Painter

    async def story(service):
        record = service.submit(inpaint(song), {"kind": "test"})
        await service.drain()
        return record

    with caplog.at_level(logging.WARNING, logger="bridge.delivery"):
        record = asyncio.run(run_service(config, PaidBackend(), story))
    assert record.state is State.DELIVERED
    manifest = json.loads(Path(record.manifests[0]).read_text())
    assert manifest["picture"] is None
    assert sorted(p.suffix for p in config.drop_folder.iterdir()) == [".json", ".wav"]  # no temporary left either
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.delivery"]
    assert len(lines) == 1 and "without a picture" in lines[0] and "no fonts today" in lines[0]


def test_the_job_is_done_before_its_pictures_and_each_appears_whole_then_named(setup, monkeypatch):
    config, song = setup
    at_done, while_drawn, renamed = [], [], []

    def on_done(record, event):
        if event == "done":
            at_done.append(manifests_and_pngs(record))

    real_render = picture.Painter.render

    def spying(painter, what):
        while_drawn.append(manifests_and_pngs(job[0]))
        return real_render(painter, what)

    real_publish = delivery.publish

    def recording(staged):
        renamed.append([(temporary.name, final.name) for temporary, final in staged])
        return real_publish(staged)

    monkeypatch.setattr(picture.Painter, "render", spying)
    monkeypatch.setattr(delivery, "publish", recording)
    job = []

    async def story(service):
        service.subscribe(on_done)
        job.append(service.submit(inpaint(song, num_outputs=2), {"kind": "test"}))
        await service.drain()
        return job[0]

    record = asyncio.run(run_service(config, TwoVariants(), story))
    assert record.state is State.DELIVERED
    # "done" told the producer while the manifests named no picture and none was in the folder.
    assert at_done == [([None, None], [])]
    assert while_drawn[0] == ([None, None], [])
    final = manifests_and_pngs(record)
    assert final == ([Path(m).with_suffix(".png").name for m in record.manifests], final[1]) and len(final[1]) == 2
    for name in final[1]:
        assert png_size(config.drop_folder / name) == (int(picture.WIDTH_IN * picture.DPI),
                                                        int(picture.HEIGHT_IN * picture.DPI))
    # The job's commit held no picture; then each picture went out under a hidden name, renamed into place before
    # the manifest that names it.
    commit, *pictures = renamed
    assert sorted(Path(final).suffix for _, final in commit) == [".json", ".json", ".wav", ".wav"]
    assert len(pictures) == 2
    for variant, manifest in zip(pictures, map(Path, record.manifests)):
        assert [final for _, final in variant] == [manifest.with_suffix(".png").name, manifest.name]
        assert all(temporary.startswith(".") and temporary.endswith(".part") for temporary, _ in variant)
    assert not [p for p in config.drop_folder.iterdir() if p.name.startswith(".")]
    # The rest of the manifest is what "done" published.
    manifest = json.loads(Path(record.manifests[0]).read_text())
    assert manifest["audio"] == Path(record.manifests[0]).with_suffix(".wav").name and manifest["variant"] == 1


def manifests_and_pngs(record) -> tuple[list, list[str]]:
    """What the manifests of a job name as its pictures, and the PNGs in its drop folder."""
    named = [json.loads(Path(m).read_text())["picture"] for m in record.manifests]
    folder = delivery.drop_folder_for(record.spec)
    return named, sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


def test_a_cancel_before_the_commit_publishes_nothing_and_no_picture_is_drawn(setup, tmp_path, monkeypatch):
    config, song = setup
    spec = admit(inpaint(song), config, {"paid"})
    audio, sr = read_region(song, 4.0, 9.0)
    rendered = [Rendered(1, write_atomic(tmp_path / "v1.wav", audio, sr, subtype="FLOAT"), 4.0, {"joins": []}, {})]
    gate = delivery.CommitGate()
    real_stage_text = delivery.stage_text

    def cancel_meanwhile(path, text):
        assert gate.close()  # the producer's cancel lands while the manifest is being written
        return real_stage_text(path, text)

    monkeypatch.setattr(delivery, "stage_text", cancel_meanwhile)
    with pytest.raises(Cancelled):
        delivery.deliver(spec, rendered, gate)
    assert list(delivery.drop_folder_for(spec).iterdir()) == []  # no audio, no manifest, no hidden temporary


def test_a_job_cancelled_while_delivering_publishes_nothing_and_draws_no_picture(setup, monkeypatch):
    config, song = setup
    drawn = []
    monkeypatch.setattr(picture.Painter, "render", lambda painter, what: drawn.append(what))

    async def story(service):
        def cancel_at_delivering(record, event):
            if event == "state" and record.state is State.DELIVERING:
                service.cancel(record.job_id)

        service.subscribe(cancel_at_delivering)
        record = service.submit(inpaint(song, num_outputs=2), {"kind": "test"})
        await service.drain()
        return record

    record = asyncio.run(run_service(config, TwoVariants(), story))
    assert record.state is State.CANCELLED and drawn == []
    assert not config.drop_folder.exists() or list(config.drop_folder.iterdir()) == []


def test_pictures_waiting_for_the_painter_hold_up_no_delivery_and_no_command(setup, monkeypatch):
    """A job's pictures wait for the painter's one process in a thread of the loop's pool. Jobs delivered in a row
    each held one there, so with the pool's threads all waiting, the next job's delivery and every command's
    admission waited too (bench/osc_latency.py: an accepted reply 20 s late at the 180th command, the pool leaving
    threads it counts as stuck behind after 5 s; here it never does). Pictures now take turns."""
    config, song = setup
    drawing, release = threading.Semaphore(0), threading.Event()

    def slow(painter, what):  # a painter that takes its time: the pictures queue behind it
        drawing.release()
        release.wait(60)
        raise RuntimeError("the painter was slow")

    monkeypatch.setattr(picture.Painter, "render", slow)

    async def story(service):
        asyncio.get_running_loop().set_default_executor(LeavingExecutor(max_workers=4, stuck_after=3600))
        jobs = [service.submit(inpaint(song, start=1.0 + job, end=2.0 + job), {"kind": "test"}) for job in range(6)]
        try:
            await asyncio.wait_for(_delivered(service, jobs), timeout=20)
            admitted = await asyncio.wait_for(service.take(inpaint(song), {"kind": "test"}), timeout=20)
            await asyncio.wait_for(_delivered(service, [admitted]), timeout=20)
            waiting = sum(drawing.acquire(blocking=False) for _ in jobs)
        finally:
            release.set()
        await service.drain()
        return waiting

    assert asyncio.run(run_service(config, PaidBackend(), story)) == 1  # one picture waited on the painter at a time


async def _delivered(service, records) -> None:
    while any(service.get(record.job_id).state is not State.DELIVERED for record in records):
        await asyncio.sleep(0.02)


def test_the_painters_process_ends_when_idle_and_comes_back_for_the_next_picture():
    sr = 22050
    audio = np.random.default_rng(2).uniform(-0.5, 0.5, (sr * 3, 2)).astype(np.float32)
    what = picture.PictureInput(audio, audio * 0.5, sr, 10.0, 11.0, 12.0, [{"at": 11.0, "confidence": 0.7}], "idle")
    painter = picture.Painter(idle=0.2)
    try:
        for _ in range(2):
            assert painter.render(what).startswith(PNG_SIGNATURE)
            assert len(painter_processes()) == 1
            deadline = time.monotonic() + 60  # a bound for a loaded machine, not a figure
            while painter_processes() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert painter_processes() == []  # ended after its idle time, while the painter is still in use
    finally:
        painter.close()
    with pytest.raises(RuntimeError, match="stopping"):
        painter.render(what)  # closed for good: nothing is started again
    assert painter_processes() == []


def painter_processes() -> list[str]:
    return [c for pid, _ in process_tree(os.getpid()) if "spawn_main" in (c := command_line(pid))]


def test_an_extension_past_the_songs_end_and_silence_are_drawn(tmp_path):
    sr = 22050
    original = np.zeros((sr * 2, 1), dtype=np.float32)  # silent, and shorter than the result
    result = np.random.default_rng(1).uniform(-0.5, 0.5, (sr * 5, 1)).astype(np.float32)
    png = picture.render_png(picture.PictureInput(original, result, sr, 10.0, 11.0, 15.0,
                                                  [{"at": 11.0, "confidence": None}], "extend"))
    path = tmp_path / "x.png"
    path.write_bytes(png)
    assert png_size(path) == (int(picture.WIDTH_IN * picture.DPI), int(picture.HEIGHT_IN * picture.DPI))
    assert picture.levels(original[sr:]) == (-120.0, -120.0)
    rms, peak = picture.levels(result)
    assert peak == pytest.approx(20 * np.log10(np.abs(result).max()), abs=1e-3) and rms < peak


def test_the_painter_is_handed_a_sketch_of_kilobytes_however_long_the_span_and_draws_the_same_picture():
    """A 10-minute extension's picture: what crosses to the painter's process is its sketch (envelopes, a thousand
    spectra, the levels), not 200 MB of audio held twice there, and the PNG is the one the audio itself gives."""
    import pickle

    sr = 44100
    result = np.random.default_rng(3).uniform(-0.5, 0.5, (sr * 600, 2)).astype(np.float32)
    original = result[:sr * 90]  # the song ended 90 s into the span
    what = picture.PictureInput(original, result, sr, 133.2, 133.2, 733.2, [{"at": 133.2, "confidence": 0.8}], "long")
    drawn = picture.sketch(what)
    assert len(pickle.dumps(drawn)) < 2_000_000 < result.nbytes // 100
    assert picture.render_png(drawn) == picture.render_png(what)
    rms, peak = picture.levels(result)  # summed a block at a time, as a float64 copy of it all would
    assert rms == pytest.approx(10 * np.log10(np.mean(np.square(result, dtype=np.float64))), abs=1e-6)
    assert peak == pytest.approx(20 * np.log10(np.abs(result).max()), abs=1e-6)
