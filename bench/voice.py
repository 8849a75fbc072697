"""Voice commands: espeak-ng voices over real music, decoded offline with the command grammar.

For each utterance (every sentence of the grammar, several voices and speeds, plus sentences outside the grammar
that should be rejected) at clean / 20 / 10 / 5 dB SNR over planetblupi music, it records the decoded text, the
structured command, its confidence and its margin over the best other sentence once, then counts for any threshold
and minimum margin:
  exact  - the structured command equals the spoken one
  wrong  - a command was produced, but not the spoken one (for out-of-grammar sentences: any command)
  reject - no command
Music alone, cut in push-to-talk windows (3 s), counts the commands produced per minute of music.
Latency: from the whole recording handed over (pad released) to the result, per utterance.

Two parts that share nothing but the grammar: *tuning* (voices en-us, en+f3; music tracks 000-004 from 0:30) picks
the threshold and the minimum margin; *held-out* (voices en, en+m7, en-us+m3, en+f2; tracks 005-009 from 5:00) only reports figures at that
threshold. The two parts run side by side, one process each. Needs espeak-ng and planetblupi-music-ogg (apt-get), and pocketsphinx (pip install -e '.[voice]').

    python bench/voice.py            # both parts side by side, about 20 minutes on the shared 2 cores
    python bench/voice.py --quick    # a sample, about 1 minute
    python bench/voice.py --tuning   # the tuning part alone, on one core, about 10 minutes
    python bench/voice.py --daemon   # end of utterance -> command accepted, through a running daemon (~1 minute)

--daemon runs the voice tests' studio (tests/voice/studio.py: a private jackd, pads, a microphone client, the daemon
as its own process): the talk pad is held, "bridge stop" is played into the daemon's voice input, the pad is let go,
and the time from the release to the talk pad's first flash (the command accepted and done) is measured; then music
with a spoken command in it plays for a while with the pad released, and the commands the daemon heard are counted.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.voice import VoiceDecoder, sentences, to_command  # noqa: E402
from bridge.voice.decode import RATE, Rule  # noqa: E402

MUSIC = Path("/usr/share/planetblupi/music")
CONDITIONS = (None, 20.0, 10.0, 5.0)  # SNR in dB; None = clean
# Spoken near the grammar's sentences but not in it (a number it lacks, a word it lacks, talk): must be rejected.
OUTSIDE = ("bridge extend the last five bars", "bridge inpaint the next six bars", "bridge play it again",
           "bridge undo that", "the bridge needs more guitar", "okay one more time from the top",
           "keep going", "next song please")
# What a sentence outside the grammar acted on costs in the choice of the rule, in exact commands: a wrong action
# ("keep going" heard as "bridge keep" crops the takes) is worse than a rejection, which the producer simply repeats.
WRONG_COST = 2
PARTS = {
    "tuning": dict(voices=("en-us", "en+f3"), speeds=(140, 175, 210), tracks=range(5), music_start=30.0),
    "held-out": dict(voices=("en", "en+m7", "en-us+m3", "en+f2"), speeds=(150, 190), tracks=range(5, 10),
                     music_start=300.0),
}
WINDOW = 3.0  # seconds of a push-to-talk press on music alone


@dataclass
class Trial:
    spoken: str  # "" for a window of music alone
    condition: float | None
    text: str
    confidence: float
    frames_per_phone: float
    margin: float  # over the best other sentence; -inf: no rival decoded (not a sentence)
    spread: float  # dB, the take's loud frames over its quiet ones
    seconds: float

    @property
    def expected(self) -> dict | None:
        return to_command(self.spoken)

    def outcome(self, rule: Rule) -> str:
        acted = rule.accepts(self.confidence, self.frames_per_phone, self.margin, self.spread)
        got = to_command(self.text) if acted else None
        if got is None:
            return "reject"
        return "exact" if got == self.expected else "wrong"


def speak(text: str, voice: str, speed: int, folder: Path) -> np.ndarray:
    path = folder / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    audio, rate = sf.read(str(path), dtype="float32")
    return soxr.resample(audio, rate, RATE).astype(np.float32)


def music(track: int, start: float, seconds: float) -> np.ndarray:
    with sf.SoundFile(str(MUSIC / f"music{track:03d}.ogg")) as f:
        f.seek(int(start * f.samplerate))
        audio = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
        return soxr.resample(audio, f.samplerate, RATE).astype(np.float32)


def speech_rms(speech: np.ndarray) -> float:
    """RMS of the speech frames: 20 ms frames within 40 dB of the loudest."""
    frames = speech[: len(speech) // 320 * 320].reshape(-1, 320)
    rms = np.sqrt((frames ** 2).mean(axis=1) + 1e-20)
    return float(np.sqrt((rms[rms > rms.max() * 0.01] ** 2).mean()))


def mix(speech: np.ndarray, bed: np.ndarray, snr: float | None) -> np.ndarray:
    """Speech over music at snr dB, with 0.4 s of the bed before and 0.4 s after (the press starts early)."""
    lead = int(0.4 * RATE)
    if snr is None:
        return speech
    bed = bed[: len(speech) + 2 * lead]
    gain = speech_rms(speech) / (float(np.sqrt((bed ** 2).mean())) + 1e-12) / 10 ** (snr / 20)
    out = bed * gain
    out[lead: lead + len(speech)] += speech
    return out / max(1.0, float(np.abs(out).max()))


def run_part(name: str, quick: bool, music_minutes: float) -> tuple:
    decoder = VoiceDecoder()
    # Every rival and every second hearing decoded; the rules are applied here.
    decoder.rule = Rule(threshold=0.0, min_margin=-math.inf, sure_margin=-math.inf, max_frames_per_phone=math.inf,
                        per_db=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        return decode_part(name, decoder, quick, music_minutes, Path(tmp))


def decode_part(name: str, decoder: VoiceDecoder, quick: bool, music_minutes: float, folder: Path) -> tuple:
    part = PARTS[name]
    rng = random.Random(name)
    voices = part["voices"][:2] if quick else part["voices"]
    speeds = part["speeds"][:1] if quick else part["speeds"]
    spoken = sentences() + list(OUTSIDE)
    if quick:
        spoken = rng.sample(sentences(), 8) + list(OUTSIDE[:3])
    tracks = list(part["tracks"])
    trials: list[Trial] = []
    for voice in voices:
        for speed in speeds:
            for text in spoken:
                speech = speak(text, voice, speed, folder)
                for snr in CONDITIONS:
                    track = rng.choice(tracks)
                    bed = music(track, part["music_start"] + rng.uniform(0, 60), len(speech) / RATE + 1.0)
                    trials.append(trial(decoder, text, snr, mix(speech, bed, snr)))
    # Music alone, in press-length windows.
    alone: list[Trial] = []
    per_track = music_minutes * 60 / len(tracks)
    for track in tracks:
        bed = music(track, part["music_start"] + 60, per_track)
        for at in range(int(per_track / WINDOW)):
            alone.append(trial(decoder, "", None, bed[int(at * WINDOW * RATE): int((at + 1) * WINDOW * RATE)]))
    return trials, alone


def trial(decoder: VoiceDecoder, spoken: str, snr: float | None, audio: np.ndarray) -> Trial:
    r = decoder.decode(audio, RATE)
    margin = r.detail["margin"]
    return Trial(spoken, snr, r.text, r.confidence, r.detail["frames_per_phone"], -math.inf if margin is None else margin,
                 r.detail["spread"], r.seconds)


def table(trials: list[Trial], alone: list[Trial], rule: Rule, minutes: float) -> list[str]:
    lines = [f"  {'condition':<10} {'n':>4} {'exact':>7} {'wrong':>7} {'reject':>7}   (in-grammar sentences)"]
    for snr in CONDITIONS:
        group = [t for t in trials if t.condition == snr and t.expected is not None]
        counts = Counter(t.outcome(rule) for t in group)
        label = "clean" if snr is None else f"{snr:g} dB"
        lines.append(f"  {label:<10} {len(group):>4} " + " ".join(
            f"{100 * counts[k] / max(1, len(group)):6.1f}%" for k in ("exact", "wrong", "reject")))
    outside = [t for t in trials if t.expected is None]
    fired = [a.text for a in alone if a.outcome(rule) == "wrong"]
    lines.append(f"  out-of-grammar sentences: {sum(t.outcome(rule) == 'wrong' for t in outside)}/{len(outside)} "
                 "produced a command")
    lines.append(f"  music alone: {len(fired)} commands from {len(alone)} windows of {WINDOW:g} s "
                 f"({len(fired) / max(minutes, 1e-9):.2f}/min)" + (f": {sorted(set(fired))}" if fired else ""))
    return lines


def rules(two_levels: bool) -> list[Rule]:
    """The rules the tuning part chooses from: a threshold, the margin needed above it, the speaking-rate limit, how
    much less a noisy take's confidence counts, and with two levels a confidence from which a smaller margin is
    enough."""
    sures = [i / 50 for i in range(20, 36)] if two_levels else [math.inf]
    noise = [(0.0, 0.0)] + [(below, per_db) for below in (12.0, 14.0, 16.0, 18.0, 20.0)
                                 for per_db in (0.02, 0.04, 0.06, 0.08)]
    return [Rule(th, margin, sure, sure_margin, limit, below, per_db) for limit in (14.0, 15.0, 16.0)
            for below, per_db in noise
            for th in (i / 100 for i in range(5, 50)) for margin in (i / 4 for i in range(-4, 17))
            for sure in sures if sure > th
            for sure_margin in ((0.0, 0.5, 1.0, 1.5) if two_levels else (margin,)) if sure_margin <= margin]


def choose(trials: list[Trial], alone: list[Trial], candidates: list[Rule]) -> Rule:
    """Among the rules with at most 1 % wrong in each condition (clean, each SNR, the music windows), the one with the
    most exact commands less WRONG_COST for each sentence outside the grammar it acts on (a wrong action costs more
    than a rejection). Whole arrays at a time: there are 10^6 candidates."""
    judged = [t for t in trials if t.expected is not None] + alone
    confidence, rate, margin, spread = (np.array([getattr(t, key) for t in judged])
                                        for key in ("confidence", "frames_per_phone", "margin", "spread"))
    groups = (*CONDITIONS, "music")
    group = np.array([groups.index(t.condition if t.spoken else "music") for t in judged])
    allowed = 0.01 * np.bincount(group, minlength=len(groups))
    got = [to_command(t.text) for t in judged]
    command = np.array([g is not None for g in got])
    right = np.array([g is not None and g == t.expected for g, t in zip(got, judged)])
    outside = [t for t in trials if t.expected is None]
    outside_heard = np.array([to_command(t.text) is not None for t in outside])
    outside_values = [np.array([getattr(t, key) for t in outside]) for key in ("confidence", "frames_per_phone",
                                                                                "margin", "spread")]
    best, best_score = candidates[-1], -math.inf
    for rule in candidates:
        acted = rule.accepts(confidence, rate, margin, spread) & command
        score = int((acted & right).sum()) - WRONG_COST * int((rule.accepts(*outside_values) & outside_heard).sum())
        if score > best_score and (np.bincount(group[acted & ~right], minlength=len(groups)) <= allowed).all():
            best, best_score = rule, score
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a sample of sentences, voices and music")
    parser.add_argument("--music-minutes", type=float, help="minutes of music alone per part (default 5, quick 1)")
    parser.add_argument("--tuning", action="store_true", help="only the tuning part, in this process (one core)")
    parser.add_argument("--daemon", action="store_true", help="only the daemon path: release -> command accepted")
    parser.add_argument("--presses", type=int, default=10, help="talk-pad presses for --daemon (default 10)")
    args = parser.parse_args()
    for tool in ("espeak-ng",):
        if shutil.which(tool) is None:
            sys.exit(f"bench/voice.py: {tool} is not installed (apt-get install espeak-ng)")
    if not MUSIC.is_dir():
        sys.exit(f"bench/voice.py: {MUSIC} is missing (apt-get install planetblupi-music-ogg)")
    minutes = args.music_minutes or (1.0 if args.quick else 5.0)
    if args.daemon:
        return daemon_path(args.presses, 60 * (args.music_minutes or 1.0))
    if args.tuning:
        results = {"tuning": run_part("tuning", args.quick, minutes)}
    else:
        with ProcessPoolExecutor(len(PARTS)) as pool:
            futures = {name: pool.submit(run_part, name, args.quick, minutes) for name in PARTS}
            results = {name: future.result() for name, future in futures.items()}
    tuning_trials, tuning_alone = results["tuning"]
    shipped = Rule()
    for label, two_levels in (("two levels (a smaller margin from a confidence up)", True),
                              ("one level (a threshold and a margin)", False)):
        rule = choose(tuning_trials, tuning_alone, rules(two_levels))
        print(f"\nrejection with {label}, chosen on the tuning part: {describe(rule)}")
        for name, (trials, alone) in results.items():
            print(f" {name} ({len(trials)} decodes, {minutes:g} min of music alone):")
            print("\n".join(table(trials, alone, rule, minutes)))
    for name, (trials, alone) in results.items():
        print(f"\n {name} as shipped ({describe(shipped)}):")
        print("\n".join(table(trials, alone, shipped, minutes)))
        spoken = [t for t in trials if t.expected is not None]
        wrong = Counter(f"{t.spoken!r} -> {t.text!r}" for t in spoken if t.outcome(shipped) == "wrong")
        print("  wrong commands as shipped: " + "; ".join(f"{k} x{n}" for k, n in wrong.most_common(8)))
    seconds = [t.seconds for trials, _ in results.values() for t in trials]
    print(f"\nlatency, recording handed over -> result (every search): median {statistics.median(seconds) * 1000:.0f} ms,"
          f" p95 {sorted(seconds)[int(0.95 * (len(seconds) - 1))] * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms,"
          f" n={len(seconds)}")
    return 0


def describe(rule: Rule) -> str:
    return (f"threshold {rule.threshold:.2f} with margin {rule.min_margin:g}, from confidence {rule.sure:.2f} margin "
            f"{rule.sure_margin:g}, at most {rule.max_frames_per_phone:g} frames per phone, confidence less "
            f"{rule.per_db:g} a dB of spread below {rule.noisy_below:g} dB")


def daemon_path(presses: int, released_seconds: float) -> int:
    """Release -> the talk pad's first flash, through a running daemon; and what music does with the pad released."""
    from tests.voice.studio import RATE as JACK_RATE
    from tests.voice.studio import TALK, speech, studio
    from tests.voice.studio import music as studio_music

    with tempfile.TemporaryDirectory() as tmp, studio(Path(tmp)) as room:
        said = speech("bridge stop", room.folder)
        latencies, outcomes = [], Counter()
        for _ in range(presses):
            before = room.hold()
            room.mouth.say(said)
            released = room.let_go()
            outcomes[room.answer(TALK, before)] += 1
            latencies.append(room.first_light(TALK, released) - released)
        log = room.project.root / "daemon.log"
        heard_before = log.read_text(encoding="utf-8").count("voice: heard")
        command = speech("bridge audition one", room.folder)
        bed = studio_music(released_seconds)
        for at in range(JACK_RATE, len(bed) - len(command), 10 * JACK_RATE):  # a spoken command every 10 s
            bed[at:at + len(command)] += command
        room.mouth.say(bed)
        room.talk(np.zeros(JACK_RATE // 2, np.float32))  # takes are decoded in order: this one answers last
        heard = log.read_text(encoding="utf-8").count("voice: heard") - heard_before - 1
    ms = sorted(1000 * x for x in latencies)
    print(f"daemon path, 'bridge stop' x{presses}: release -> talk pad flashes median {statistics.median(ms):.0f} ms, "
          f"min {ms[0]:.0f}, max {ms[-1]:.0f}; outcomes {dict(outcomes)}")
    print(f"pad released, {released_seconds:g} s of music with a spoken command every 10 s on the input: "
          f"{heard} take(s) decoded, so {heard} command(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
