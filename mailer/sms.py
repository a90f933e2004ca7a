"""How long a text is as SMS: its encoding and how many parts the gateway bills for it.

One pure function, `measure`, used by the mailing form (live, while the text is typed), the model
(stored with the mailing and each of its texts, checked against MAILER_MAX_PARTS), the API and the
engine (which refuses to send a text over the cap).

The rules (3GPP TS 23.038 and 23.040):
- GSM-7 when every character is in the GSM 03.38 default alphabet or its extension table; the
  extension characters (`^ { } \\ [ ~ ] | €` and form feed) take two septets (an escape first).
- UCS-2 as soon as one character is outside it: any Cyrillic letter does. A character outside the
  Basic Multilingual Plane (most emoji) takes two 16-bit units.
- One part holds 160 septets or 70 units. A longer text is split into parts of 153 septets or 67
  units (the rest carries the header that joins them), and a character's units are never split
  between two parts (an escape and its character, a surrogate pair), so a part may hold one less.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7 = "GSM-7"
UCS2 = "UCS-2"

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

# Units in a text sent as one part, and in each part of a longer one.
SINGLE = {GSM7: 160, UCS2: 70}
MULTI = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # GSM7 or UCS2
    characters: int  # as the user counts them
    units: int  # septets (GSM-7) or 16-bit units (UCS-2)
    parts: int
    free: int  # units still free in the last part before another part is needed

    def as_dict(self) -> dict[str, int | str]:
        return {"encoding": self.encoding, "characters": self.characters, "parts": self.parts}


def encoding_of(text: str) -> str:
    return GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else UCS2


def _units(char: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def measure(text: str) -> SmsLength:
    """The encoding, length and parts of `text` sent as SMS (an empty text is no part)."""
    encoding = encoding_of(text)
    costs = [_units(c, encoding) for c in text]
    units = sum(costs)
    if not text:
        return SmsLength(encoding, 0, 0, 0, SINGLE[encoding])
    if units <= SINGLE[encoding]:
        return SmsLength(encoding, len(text), units, 1, SINGLE[encoding] - units)
    size, parts, used = MULTI[encoding], 1, 0
    for cost in costs:
        if used + cost > size:
            parts, used = parts + 1, 0
        used += cost
    return SmsLength(encoding, len(text), units, parts, size - used)
