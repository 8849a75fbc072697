"""The spoken commands: a fixed JSGF grammar and the mapping from a decoded sentence to a structured command.

Every command starts with the wake word "bridge". The wake word is inside the grammar (not a separate keyword
spotter): a keyword spotter on this model fired about 10 times a minute on music alone, and the one-word commands
("keep", "next") were the worst offenders. Asking for "bridge keep" makes every command at least two words with a
distinctive onset, so a short burst of music matches no path well, and the confidence check has more frames of real
evidence to weigh. No word is optional: optional words were the main source of wrong-but-close results in the
feasibility runs (an inserted "the" or "with").
"""

from __future__ import annotations

from collections.abc import Iterable

WAKE_WORD = "bridge"

# Words the CMU dictionary lacks, with their phones (the model's ARPAbet set).
EXTRA_WORDS: dict[str, str] = {
    "inpaint": "IH N P EY N T",
}

NUMBERS = {"two": 2, "three": 3, "four": 4, "eight": 8, "sixteen": 16}
VARIANTS = {"one": 1, "two": 2, "three": 3}
SIMPLE = ("next", "previous", "keep", "discard", "cancel", "retry", "stop")
# The go-ahead a paid command waits for: two words, because "bridge confirm" alone was heard in 3 s of music (at
# confidence 0.44), while "bridge yes confirm" was heard in none of 252 windows of the tuning music.
CONFIRM = "yes confirm"

PRESET_WORD = "with"  # "bridge inpaint the last four bars with guitar": a preset by its [presets.NAME]


def spoken(preset: str) -> str:
    """How a preset's name is said: "guitar_solo" and "Guitar-Solo" as "guitar solo"."""
    return " ".join(preset.lower().replace("_", " ").replace("-", " ").split())


def _said(presets: Iterable[str]) -> list[str]:
    """The preset names as said, each once, in order."""
    return sorted({spoken(name) for name in presets} - {""})


def jsgf(presets: Iterable[str] = ()) -> str:
    """The grammar, with "... with PRESET" after a range for each preset name given (say them with ``spoken``)."""
    said = _said(presets)
    job = "(inpaint | extend) <range>"
    if said:
        job += f" | (inpaint | extend) <range> {PRESET_WORD} <preset>"
    grammar = f"""#JSGF V1.0;
grammar bridge;
public <command> = {WAKE_WORD} <action>;
<action> = {job} | audition <variant> | {' | '.join(SIMPLE)} | {CONFIRM};
<range> = this bar | the (last | next) bar | the (last | next) <count> bars;
<count> = {' | '.join(NUMBERS)};
<variant> = {' | '.join(VARIANTS)} | original;
"""
    return grammar + (f"<preset> = {' | '.join(said)};\n" if said else "")


JSGF = jsgf()


def to_command(text: str, presets: Iterable[str] = ()) -> dict | None:
    """The structured command for a sentence of the grammar (with these preset names), or None for anything else.

    inpaint/extend: {"command": "inpaint", "bars": 4, "anchor": "last"} (anchor: "last" = the bars before the play
    cursor, "next" = the bars after it, "this" = the bar the cursor is in), and "preset": NAME when one was said.
    audition: {"command": "audition", "variant": 2} or {"command": "audition", "variant": "original"}. "bridge yes
    confirm": {"command": "confirm"}. Others: {"command": "keep"}.
    """
    words = text.split()
    if PRESET_WORD in words[2:] and words[1:2] in (["inpaint"], ["extend"]):
        at = words.index(PRESET_WORD, 2)
        named = {spoken(name): name for name in presets}.get(" ".join(words[at + 1:]))
        command = to_command(" ".join(words[:at])) if named is not None else None
        return {**command, "preset": named} if command is not None else None
    if len(words) < 2 or words[0] != WAKE_WORD:
        return None
    action, rest = words[1], words[2:]
    if words[1:] == CONFIRM.split():
        return {"command": "confirm"}
    if action in SIMPLE and not rest:
        return {"command": action}
    if action == "audition" and len(rest) == 1:
        if rest[0] == "original":
            return {"command": "audition", "variant": "original"}
        if rest[0] in VARIANTS:
            return {"command": "audition", "variant": VARIANTS[rest[0]]}
        return None
    if action in ("inpaint", "extend"):
        if rest == ["this", "bar"]:
            return {"command": action, "bars": 1, "anchor": "this"}
        if len(rest) == 3 and rest[0] == "the" and rest[1] in ("last", "next") and rest[2] == "bar":
            return {"command": action, "bars": 1, "anchor": rest[1]}
        if (len(rest) == 4 and rest[0] == "the" and rest[1] in ("last", "next") and rest[2] in NUMBERS
                and rest[3] == "bars"):
            return {"command": action, "bars": NUMBERS[rest[2]], "anchor": rest[1]}
    return None


def sentences(presets: Iterable[str] = ()) -> list[str]:
    """Every sentence the grammar (with these preset names) accepts, for tests and the bench."""
    ranges = ["this bar"] + [f"the {a} bar" for a in ("last", "next")]
    ranges += [f"the {a} {n} bars" for a in ("last", "next") for n in NUMBERS]
    ranges += [f"{r} {PRESET_WORD} {p}" for r in list(ranges) for p in _said(presets)]
    out = [f"{WAKE_WORD} {op} {r}" for op in ("inpaint", "extend") for r in ranges]
    out += [f"{WAKE_WORD} audition {v}" for v in (*VARIANTS, "original")]
    out += [f"{WAKE_WORD} {s}" for s in (*SIMPLE, CONFIRM)]
    return out
