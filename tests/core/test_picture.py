"""A picture of every delivered variant: a PNG beside its manifest, named in it, published with the rest or not
at all."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
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


def test_a_cancel_while_the_picture_is_drawn_publishes_nothing_and_leaves_no_png(setup, tmp_path, monkeypatch):
    config, song = setup
    spec = admit(inpaint(song), config, {"paid"})
    audio, sr = read_region(song, 4.0, 9.0)
    rendered = [Rendered(1, write_atomic(tmp_path / "v1.wav", audio, sr, subtype="FLOAT"), 4.0, {"joins": []}, {})]
    gate = delivery.CommitGate()
    drawn = []
    real = picture.render_png

    def cancel_meanwhile(what):
        drawn.append(real(what))
        assert gate.close()  # the producer's cancel lands while the picture is being drawn
        return drawn[-1]

    monkeypatch.setattr(picture, "render_png", cancel_meanwhile)
    with pytest.raises(Cancelled):
        delivery.deliver(spec, rendered, gate)
    assert drawn and drawn[0].startswith(PNG_SIGNATURE)
    assert list(delivery.drop_folder_for(spec).iterdir()) == []  # no PNG, no hidden temporary


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
