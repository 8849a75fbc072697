"""Offline decoding of a push-to-talk recording into a command, with pocketsphinx's bundled English model.

The recording is read, mixed to mono, resampled to 16 kHz (soxr), padded before and after, and given a -60 dBFS white
noise floor: the model was trained on real recordings, and stretches of digital zero (a file's padding, a gated
microphone) made it drop or insert words. It is then decoded twice: with the command grammar, and with a free phone
loop (the model's phone language model). The phone loop is about the best any speech could score on those frames;
music or words outside the grammar score much better there than on the grammar's forced path, while a real command
scores nearly the same. The gap between the two path scores, per frame of the grammar's words (in the decoder's own
log units), is the evidence: confidence = exp(gap / GAP_SCALE), a number in (0, 1] that only orders results (it is
not a calibrated probability). Below THRESHOLD the result is rejected: a rejection is better than a wrong action;
a take under loud music needs more (see spread()).
A result is also rejected when its words last longer than MAX_FRAMES_PER_PHONE 10 ms frames per phone on average:
espeak-ng voices from 140 to 210 words a minute spoke 6-11 frames per phone, while music alone forced into the
grammar ("bridge stop" was its favourite) stretched to 13-38, some of it with a high likelihood ratio.
A result that passes is decoded a third time, with a grammar of every other sentence (a rival): when a different
command scores almost as well, less than MIN_MARGIN per word frame below the best, the result is rejected too; from
confidence SURE up, beating the rival by SURE_MARGIN is enough. Most wrong commands under music were near misses of
that kind ("last" for "next", "three" for "eight", "inpaint" for "extend"), which the gap to the phone loop cannot
see: both sentences fit the frames about equally well. Such a result is then heard a second time, normalised by the
cepstral mean of the take alone instead of the whole padded take (see SECOND_HEARING): the command is acted on only
when both hearings give it, and by the smaller of their two margins. Every search starts with a fresh front end, so a
recording decodes the same whatever was decoded before it.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge.files import NotRegularFile, open_regular
from bridge.settings_schema import defaults
from bridge.voice.grammar import EXTRA_WORDS, jsgf, sentences, spoken, to_command

RATE = 16000
PAD_BEFORE = 0.5  # seconds of noise floor before and after the recording
PAD_AFTER = 1.0
NOISE_FLOOR_DBFS = -60.0
GAP_SCALE = 20.0  # decoder log units per word frame; only sets how the confidence spreads over 0..1
MAX_FRAMES_PER_PHONE = 16.0  # 160 ms a phone: slower than deliberate speech
# How readily the decoder puts a silence between words (pocketsphinx's silprob; its default is 0.005). Under music
# the gaps between spoken words hold music, which the default forced into the words around them. bench/voice.py,
# each setting at the threshold its tuning part chose, on the held-out part over clean / 20 / 10 / 5 dB: the default
# (0.34) 68.4 % exact with 0.9 % wrong, 0.1 (0.43) 67.5 % with 0.5 %, 0.4 (0.48) 69.5 % with 0.65 %; in the first
# exploration (tuning part only) wider beams, noise removal, filler and word insertion penalties changed little,
# silprob 0.7 and 1.0 gave more wrong commands.
SILENCE_PROB = 0.4
# Gaussians scored per frame in each codebook (pocketsphinx's topn; its default is 4): more of them made the search
# hold up better under music. bench/voice.py's tuning part, exact commands of 912 with < 1 % wrong (music windows
# counted), each setting at the rule its sweep chose: topn 4 671, 8 700, 16 732; no better: lattice bestpath off 614,
# language weight 3 (6.5) 651, filterbank from 200 Hz (130) 608. Held-out for 8 against 4: 987 against 986 exact with
# 6 against 9 wrong. A decode costs about a quarter more with 16 than with 8: 40 takes decoded by both side by side
# on a nearly quiet machine, median 303 against 239 ms (max 435 against 350).
TOP_GAUSSIANS = 16
# Confidence below which a result is rejected ([voice] threshold, declared there), and the margin, in decoder log units
# per word frame, by which the best sentence must then beat every other one, in both hearings (see SECOND_HEARING);
# from SURE up, SURE_MARGIN is enough. A noisy take's confidence counts for less: PER_DB for each dB its spread (how far
# its loud frames stand above its quiet ones, see spread()) falls short of NOISY_BELOW. On the tuning part a clean
# take's spread was 40 dB and more, one at 10 dB SNR under music 15-33 (middle half 17-23), at 5 dB 11-27 (13-20).
# bench/voice.py's tuning part chose all seven with MAX_FRAMES_PER_PHONE (a grid: among rules with at most 1 % wrong in
# each condition, clean, each SNR and the music windows, the most exact commands less two for each sentence outside
# the grammar acted on): 98.7 / 91.2 / 78.9 / 58.3 % exact over clean / 20 / 10 / 5 dB with 0 / 0 / 0 / 0.9 % wrong,
# no command in 5 min of music alone, 23 of 192 sentences outside the grammar acted on. Held-out, run once at that
# rule: 99.0 / 94.1 / 87.2 / 71.7 % with 0 / 0 / 0.3 / 0.7 % wrong, 1 command ("bridge stop") in 5 min of music alone,
# 33 of 256 outside the grammar. With the first hearing alone (threshold 0.22, margin 2.75, 0.08 a dB below 14 dB):
# held-out 98.4 / 91.8 / 82.6 / 64.8 % with 0 / 0.7 / 0.7 / 1.0 % and 44 of 256. The sentences outside the grammar
# acted on are near misses ("six" bars heard as "eight") and talk ("keep going" as "bridge keep").
# SECOND_HEARING: a take normalised by its own cepstral mean (the padding's noise floor left out of it, the live
# normalisation starting from it) gave the spoken sentence as its best far more often under music (tuning part: 100 /
# 99.1 / 94.3 / 85.5 % against 100 / 95.6 / 89.5 / 75.4 % over clean / 20 / 10 / 5 dB), but music alone fitted the
# grammar better too (median confidence 0.22 against 0.03), so on its own its rule had to stay high and gained nothing
# (704 exact of 912 against 706). Two hearings that must agree keep the best of both: the confidence of the first (its
# gap to the phone loop) and the agreement and smaller margin of both: 746 exact of 912 against 692 on the tuning
# part. It costs three searches more, only for a result the first hearing would act on (the pass that reads the mean
# is one of them: pocketsphinx ends every utterance with a search): 40 takes decoded both ways in one process, median
# 486 against 300 ms (max 647 against 386).
# Not better on the tuning part with topn 16 (at the rule chosen for each, the most exact commands alone): live
# cepstral mean normalisation from the default start (634 at an older criterion against 732). Not better with topn 4
# (exact commands of 912 at its own choice, against 671): the margin per frame (643) or per phone (649) of the words
# that differ from the rival, the front end carried over from the search before (665, and a take then depended on the
# one before it), the phone loop decoded first on a fresh front end (665), noise removal off (665).
THRESHOLD = defaults("voice")["threshold"]
MIN_MARGIN = 1.0
SURE = 0.44
SURE_MARGIN = 0.0
NOISY_BELOW = 14.0
PER_DB = 0.02
_FILLERS = ("<s>", "</s>", "<sil>")
_PADDING_BEFORE = int(PAD_BEFORE * RATE) * 2  # bytes of 16-bit PCM
_PADDING_AFTER = int(PAD_AFTER * RATE) * 2


@dataclass(frozen=True)
class Rule:
    """When a decoded sentence is acted on; the decoder's constants unless given (bench/voice.py sweeps them)."""

    threshold: float = THRESHOLD
    min_margin: float = MIN_MARGIN
    sure: float = SURE
    sure_margin: float = SURE_MARGIN
    max_frames_per_phone: float = MAX_FRAMES_PER_PHONE
    noisy_below: float = NOISY_BELOW
    per_db: float = PER_DB

    def counted(self, confidence, spread):
        """The confidence the rule weighs: less by per_db for each dB of spread short of noisy_below."""
        return confidence - self.per_db * np.maximum(0.0, self.noisy_below - spread)

    def worth_a_rival(self, confidence: float, frames_per_phone: float, spread: float) -> bool:
        """Whether a result could be accepted, so its rival's decode is worth the time."""
        return frames_per_phone <= self.max_frames_per_phone and self.counted(confidence, spread) >= self.threshold

    def accepts(self, confidence, frames_per_phone, margin, spread):
        """Numbers or numpy arrays of them (margin -inf: no rival decoded) -> whether each result is acted on."""
        confidence = self.counted(confidence, spread)
        needed = np.where(confidence >= self.sure, self.sure_margin, self.min_margin)
        return (frames_per_phone <= self.max_frames_per_phone) & (confidence >= self.threshold) & (margin >= needed)


class VoiceError(Exception):
    """A recording that cannot be decoded (missing, unreadable, empty)."""


@dataclass
class Result:
    text: str  # the grammar's best sentence ("" when no path reached the end)
    command: dict | None  # None when rejected
    confidence: float  # 0..1
    seconds: float = 0.0  # decode time
    detail: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"text": self.text, "command": self.command, "confidence": round(self.confidence, 4)}


def load(path: Path) -> tuple[np.ndarray, int]:
    """A file's samples as float32 mono, and its rate."""
    import soundfile as sf

    from bridge.audio.blocks import sndfile_reason

    path = Path(path)
    try:
        with open_regular(path) as file:
            audio, rate = sf.read(file.fileno(), dtype="float32", always_2d=True, closefd=False)
    except FileNotFoundError:
        raise VoiceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VoiceError(f"{path}: is a folder, not a recording") from None
    except NotRegularFile as exc:  # a FIFO (a recorder's live output) was read until a writer came: for good
        raise VoiceError(f"{exc}, not a recording") from None
    except OSError as exc:
        raise VoiceError(f"{path}: cannot be read ({exc.strerror})") from None
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise VoiceError(f"{path}: not a readable audio file ({sndfile_reason(exc, path)})") from None
    if len(audio) == 0:
        raise VoiceError(f"{path}: the recording is empty")
    return audio.mean(axis=1), rate


def at_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """The recording as float32 mono at the decoder's RATE; a NaN or infinite sample (a float WAV a tool wrote badly)
    is silence or full scale, not a cast warning and a take the resampler smears it over."""
    import soxr

    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio if rate == RATE else soxr.resample(audio, rate, RATE).astype(np.float32)


def spread(audio: np.ndarray) -> float:
    """How far the take's loud 20 ms frames stand above its quiet ones, in dB (the 90th level percentile over the
    10th): a push-to-talk take holds a little of what is heard before and after the words, so this tells about how
    much the voice stands out of the music around it. Digital silence counts as -100 dBFS."""
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    if not len(frames):
        return 0.0
    levels = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-10)
    return float(np.percentile(levels, 90) - np.percentile(levels, 10))


def prepare(audio: np.ndarray, seed: int = 0) -> bytes:
    """16-bit PCM of a take at RATE (see at_rate), padded, with the noise floor added."""
    padded = np.concatenate([np.zeros(int(PAD_BEFORE * RATE), np.float32), audio,
                             np.zeros(int(PAD_AFTER * RATE), np.float32)])
    # Seeded: the same recording decodes the same way every time.
    noise = np.random.default_rng(seed).standard_normal(len(padded)).astype(np.float32)
    padded += noise * np.float32(10 ** (NOISE_FLOOR_DBFS / 20))
    return (np.clip(padded, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class VoiceDecoder:
    """One pocketsphinx decoder with the command grammar and a phone loop; build once (about 0.2 s), reuse.

    ``presets``: names a job command may end with ("... with NAME"); a name with a word the model's dictionary lacks
    is left out, and named in ``unspeakable`` (the daemon logs it). Not thread-safe on its own: decode() holds a
    lock, so one decoder may be shared by threads.
    """

    def __init__(self, threshold: float = THRESHOLD, presets: tuple[str, ...] = ()):
        from pocketsphinx import Decoder, get_model_path

        self.rule = Rule(threshold=threshold)
        self._decoder = Decoder(lm=None, samprate=RATE, loglevel="FATAL", silprob=SILENCE_PROB,
                                topn=TOP_GAUSSIANS)
        for word, phones in EXTRA_WORDS.items():
            if self._decoder.lookup_word(word) is None:
                self._decoder.add_word(word, phones, True)
        missing = {name: [word for word in spoken(name).split() if self._decoder.lookup_word(word) is None]
                   for name in presets}
        self.unspeakable = {name: words for name, words in missing.items() if words}
        self.presets = tuple(name for name in presets if name not in self.unspeakable and spoken(name))
        self._decoder.add_jsgf_string("commands", jsgf(self.presets))
        self._decoder.add_allphone_file("phones", str(Path(get_model_path()) / "en-us-phone.lm.bin"))
        self._logmath = self._decoder.get_logmath()
        self._sentences = sentences(self.presets)
        self._rivals: dict[str, str] = {}  # sentence -> the search of every other sentence, built when first needed
        self._cmn = (self._decoder.config["cmninit"], self._decoder.config["cmn"])
        self._lock = threading.Lock()

    def unspeakable_notes(self) -> list[str]:
        """One line per preset left out of the grammar, naming the words the recogniser does not know."""
        return [f"preset {name!r} cannot be said: the recogniser does not know {', '.join(map(repr, words))}"
                for name, words in self.unspeakable.items()]

    def _run(self, search: str, pcm: bytes):
        d = self._decoder
        # A fresh front end: its noise estimate (remove_noise) would otherwise carry over from the search before, so
        # a take's grammar decode depended on the take before it (and the first take on none).
        d.reinit_feat()
        d.activate_search(search)
        self._utterance(pcm, search=True)
        hyp = d.hyp()
        if hyp is None or not hyp.hypstr:
            return "", None, [], 0.0
        # The binding hands back exp(score); its log in the decoder's own base is the integer path score.
        score = self._logmath.log(hyp.best_score) if hyp.best_score > 0 else None
        return hyp.hypstr, score, list(d.seg()), hyp.prob

    def _utterance(self, pcm: bytes, search: bool) -> None:
        """The frames of ``pcm`` through the front end (and the active search), as one whole utterance. The utterance
        is always ended: one left open made every later search fail, so the daemon's voice stayed dead."""
        self._decoder.start_utt()
        try:
            if pcm:  # pocketsphinx refuses an empty buffer
                self._decoder.process_raw(pcm, not search, True)
        finally:
            self._decoder.end_utt()

    def _sentence(self, pcm: bytes) -> tuple[str, int | None, int, int, float]:
        """The grammar's best sentence, its path score, the 10 ms frames and the phones of its words, its posterior."""
        text, score, segments, posterior = self._run("commands", pcm)
        words = [s for s in segments if s.word not in _FILLERS and not s.word.startswith(("+", "["))]
        frames = sum(s.end_frame - s.start_frame + 1 for s in words)
        phones = sum(len((self._decoder.lookup_word(s.word) or "").split()) for s in words)
        return text, score, frames, phones, posterior

    def _rival(self, text: str, score: int, frames: int, pcm: bytes) -> tuple[str, float]:
        """The best other sentence of the grammar for these frames, and the margin per word frame by which ``text``
        (its path ``score`` over ``frames`` word frames) beats it; inf when no other sentence reaches the end.

        A sentence the best one starts with is no rival: "bridge extend this bar" with silence over "with strings"
        scored better than "bridge extend this bar with strings" itself (pocketsphinx's silence fits speech well), so
        every preset would lose to its own command without it."""
        if text not in self._rivals:
            name = f"rival{len(self._rivals)}"
            others = _alternatives([s for s in self._sentences if s != text and not text.startswith(s + " ")])
            self._decoder.add_jsgf_string(name, f"#JSGF V1.0;\ngrammar {name};\npublic <command> = {others};\n")
            self._rivals[text] = name
        rival, rival_score = self._run(self._rivals[text], pcm)[:2]
        return rival, math.inf if rival_score is None else (score - rival_score) / frames

    def _second_hearing(self, pcm: bytes, command: dict) -> tuple[str, float]:
        """The sentence heard with the take's own cepstral mean (see SECOND_HEARING), and its margin over its rival;
        -inf when it is not ``command``."""
        d = self._decoder
        d.reinit_feat()
        self._utterance(pcm[_PADDING_BEFORE:len(pcm) - _PADDING_AFTER], search=False)  # the take's mean
        d.config["cmninit"], d.config["cmn"] = d.get_cmn(False), "live"
        try:
            text, score, frames, _, _ = self._sentence(pcm)
            if score is None or not frames or to_command(text, self.presets) != command:
                return text, -math.inf
            return text, self._rival(text, score, frames, pcm)[1]
        finally:
            d.config["cmninit"], d.config["cmn"] = self._cmn
            d.reinit_feat()

    def decode_pcm(self, pcm: bytes, spread: float) -> Result:
        """A take prepared at RATE, and its spread."""
        started = time.perf_counter()
        with self._lock:
            text, grammar_score, word_frames, phones, posterior = self._sentence(pcm)
            phone_score = self._run("phones", pcm)[1] if text else None
            confidence = 0.0
            if text and grammar_score is not None and phone_score is not None and word_frames:
                gap = (grammar_score - phone_score) / word_frames
                confidence = math.exp(min(0.0, gap) / GAP_SCALE)
            rate = word_frames / phones if phones else math.inf
            # Only a result that could be accepted is worth the rival's decode (the bench, at threshold 0, asks all).
            rival, rival_margin, heard_again, margin = "", None, None, None
            if self.rule.worth_a_rival(confidence, rate, spread) and text in self._sentences:
                rival, rival_margin = self._rival(text, grammar_score, word_frames, pcm)
                margin = rival_margin
                if self.rule.accepts(confidence, rate, rival_margin, spread):  # else rejected whatever it would hear
                    heard_again = self._second_hearing(pcm, to_command(text, self.presets))
                    margin = min(rival_margin, heard_again[1])
        accepted = margin is not None and bool(self.rule.accepts(confidence, rate, margin, spread))
        command = to_command(text, self.presets) if accepted else None
        return Result(text, command, confidence, time.perf_counter() - started,
                      {"word_frames": word_frames, "grammar_score": grammar_score, "phone_score": phone_score,
                       "posterior": posterior, "frames_per_phone": rate,
                       "rival": rival, "rival_margin": rival_margin, "heard_again": heard_again, "margin": margin,
                       "spread": spread})

    def decode(self, audio: np.ndarray, rate: int) -> Result:
        audio = at_rate(audio, rate)
        return self.decode_pcm(prepare(audio), spread(audio))

    def decode_file(self, path: Path) -> Result:
        return self.decode(*load(path))


def _alternatives(said: list[str]) -> str:
    """A JSGF rule body for exactly these sentences, with shared beginnings spoken once ("bridge (keep | stop)"), so
    the decoder searches about as many states as with the command grammar itself."""
    tree: dict = {}
    for sentence in said:
        node = tree
        for word in sentence.split():
            node = node.setdefault(word, {})
        node[""] = {}  # a sentence ends here

    def body(node: dict) -> str:
        alternatives = []
        for word, after in node.items():
            if word:
                rest = {w: n for w, n in after.items() if w}
                alternatives.append(word if not rest else f"{word} [ {body(rest)} ]" if "" in after
                                    else f"{word} {body(rest)}")
        return alternatives[0] if len(alternatives) == 1 else "( " + " | ".join(alternatives) + " )"

    return body(tree)
