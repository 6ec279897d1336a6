"""Checkpoint file-name patterns of single-file checkpoints (Keras 3's ``ModelCheckpoint`` filepath).

A pattern is a file name with one ``{epoch}`` or ``{step}`` field, formatted as Python does
(``ckpt-{epoch:03d}.weights.h5``); the number in a matching name is the checkpoint's step. Parsed when a
config loads (bad patterns are config errors) and by discovery (``components.discovery.single_files``).
"""

from __future__ import annotations

import dataclasses
import re
import string

SUFFIXES = (".weights.h5", ".h5", ".keras")
STEP_FIELDS = ("epoch", "step")


class PatternError(ValueError):
    """A checkpoint file pattern that cannot name one step per file; the message shows a correct one."""


@dataclasses.dataclass(frozen=True)
class FilePattern:
    """A checkpoint file-name pattern and the regular expression that reads the step back."""

    text: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str) -> FilePattern:
        example = "e.g. ckpt-{epoch:03d}.weights.h5 (ModelCheckpoint's filepath without its folder)"
        if "/" in text:
            raise PatternError(f"{text!r} must be a file name inside model_dir, not a path; {example}")
        if not text.endswith(SUFFIXES):
            raise PatternError(f"{text!r} must end with one of {list(SUFFIXES)}; {example}")
        parts, fields = [], []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise PatternError(f"{text!r} is not a format string ({exc}); {example}") from exc
        for literal, field, spec, _ in parsed:
            parts.append(re.escape(literal))
            if field is None:
                continue
            if field not in STEP_FIELDS or (spec and not re.fullmatch(r"0?\d*d", spec)):
                raise PatternError(
                    f"{text!r}: field {{{field}{':' + spec if spec else ''}}} is not one of "
                    f"{{epoch}} or {{step}} (optionally zero-padded, {{epoch:03d}}); {example}"
                )
            fields.append(field)
            parts.append(r"(?P<step>\d+)")
        if len(fields) != 1:
            raise PatternError(f"{text!r} must name the step exactly once with {{epoch}} or {{step}}; {example}")
        return cls(text, re.compile("".join(parts)))

    def step_of(self, name: str) -> int | None:
        match = self.regex.fullmatch(name)
        return int(match["step"]) if match else None

    @property
    def kind(self) -> str:
        """``weights`` (a builder makes the model, the file holds its weights) or ``model`` (.keras)."""
        return "model" if self.text.endswith(".keras") else "weights"
