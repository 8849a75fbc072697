"""A delivered job made by hand: a source, one variant's audio and its manifest, as the delivery writes them."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from bridge.models import JobRecord, JobSpec, SourceInfo, State

RATE = 48000


def delivered_job(tmp_path, *, tempo: float | None, loudness: float = 0.5, channels: int = 2,
                  rate: int = RATE) -> JobRecord:
    """A source of steady noise, and an inpaint of 10-12 s whose variant is the same noise ``loudness`` times as
    loud over the range (with a 1 s handle of untouched source on each side), delivered as a patch."""
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (30 * rate, channels)).astype(np.float32)
    source = tmp_path / "song.wav"
    sf.write(source, noise, rate, subtype="FLOAT")
    span = noise[9 * rate:13 * rate].copy()
    span[rate:3 * rate] *= loudness
    sf.write(tmp_path / "song_v1.wav", span, rate, subtype="FLOAT")
    manifest = {"audio": "song_v1.wav", "sample_rate": rate, "source": {"span_start": 9.0},
                "splice": {"tempo": tempo} if tempo else {}}
    (tmp_path / "song_v1.json").write_text(json.dumps(manifest))
    spec = JobSpec(job_id="j-1", operation="inpaint", source=source, backend="local", start=10.0, end=12.0,
                   source_info=SourceInfo(rate, channels, len(noise), "WAV/FLOAT"))
    return JobRecord("j-1", "", {}, spec, State.DELIVERED, manifests=[str(tmp_path / "song_v1.json")])
