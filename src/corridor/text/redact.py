"""PII redaction: replace personal data in free text with typed placeholders, offline and fast.

``redact(text)`` returns a :class:`Redaction`: the text with every finding replaced by
``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]`` or ``[NAME]``, and the findings as
``(kind, start, end)`` offsets (Python ``str`` indices, i.e. code points) into the *original*
text. The matched values themselves are never kept. ``redact_many(texts)`` redacts a batch and
passes ``None`` through; it is the path for bulk work (no finding objects are built).

Redaction is idempotent: the placeholders contain no digits, ``@`` or capitalised words, and a
``]`` right before a candidate blocks it as a letter would, so redacting a redacted text changes
nothing (tested on random mixtures; pathological text with findings glued to other tokens by
hyphens, like ``Smith-0612345678-a@b.de``, can still change on a second pass).

Where two findings overlap, the longer one wins and, at equal length, the more specific kind
(email, IBAN, card, phone, name, in that order), so an IBAN's digits are never also reported as
a phone or card; phones are searched with the earlier findings blanked out.

What is detected
----------------
- **Emails**: ``local@domain.tld`` with a dotted domain and an alphabetic top-level domain of
  two letters or more; Unicode letters are allowed in both parts.
- **IBANs** (ISO 13616): two letters, two check digits, then the account part, compact or in
  groups of four separated by single spaces, any case. The length must match the country's
  registered IBAN length and the mod-97 checksum must hold; a candidate from a country that is
  not in the registry table is accepted only when the whole candidate passes mod-97.
- **Card numbers**: 13–19 digits, either contiguous or grouped 4-4-4-4(-3) / 4-6-5 / 4-6-4 with
  one consistent separator (space or dash); the first digit must be 2–6 (Visa, Mastercard,
  Amex, Discover, Diners, JCB, UnionPay, Maestro) and the Luhn checksum must hold. Random long
  numbers therefore pass only by chance (about 1 in 10 of those starting with 2–6).
- **Phone numbers** (7–15 digits, separators space, dot, dash and parentheses):
  international ``+CC …`` or ``00CC …`` (the latter only with separators), national numbers
  with a trunk ``0`` (``020 7946 0958``, ``0176 12345678``, ``06 12 34 56 78``; contiguous
  ones need at least 10 digits), and North-American ``(555) 123-4567`` / ``555-123-4567`` /
  ``555.123.4567``.
- **Person names** (heuristic, no model): one to three capitalised words after a salutation
  (``Mr``, ``Mrs``, ``Ms``, ``Miss``, ``Mx``, ``Dr``, ``Prof``, ``Herr``, ``Frau``, ``Mme``,
  ``Mlle``; the salutation itself is kept) or after "my name is", and a name standing alone
  on the line after a sign-off ("Regards,", "Kind regards,", "Best,", "Thanks,", "Cheers,",
  "Sincerely,", "Yours …,").

What is NOT covered (say so wherever redacted text is presented as anonymous)
-----------------------------------------------------------------------------
- **Names in running text** ("Anna helped me", "ask for john") — that needs a named-entity
  model; none is bundled because the default must work offline without downloads. The
  heuristic also over-redacts capitalised words after a salutation or sign-off ("Thanks,
  The Team"), which is the safe direction.
- **Phones without a trunk prefix or country code** other than the North-American layouts
  (local numbers like ``7946 0958``, contiguous ``5551234567``), numbers glued to other
  numbers (``2019 0176 1234567``), vanity numbers (``1-800-FLOWERS``) and extensions. The
  trade-off is deliberate: order numbers, amounts and IDs look exactly like such phones.
  Conversely a contiguous 10+ digit number starting with ``0`` (an order number like
  ``0123456789``) *is* redacted as a phone, as is ``+`` followed by 7+ digits.
- Not redacted as phones by design: dates (``2025-03-01``, ``01.03.2025``), times
  (``14:30``), prices (``€1,299.00``), percentages, IP and version numbers, and numbers after
  ``#``.
- **Cards** with unusual grouping, separators other than one space or dash, or numbers starting
  with 0, 1, 7, 8 or 9 (UATP, fuel, health cards). Card numbers that fail Luhn (mistyped) are
  not redacted as cards (they may still be caught as phones).
- **IBANs** with irregular spacing (other than groups of four) or a wrong checksum (mistyped);
  national account numbers, sort codes and BICs.
- **Other identifiers**: postal addresses, dates of birth, national ID / passport / tax numbers,
  IP addresses, URLs, user names, licence plates, free-text descriptions that identify a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from corridor.errors import ContractError

__all__ = ["KINDS", "Finding", "Kind", "Redaction", "redact", "redact_many"]

Kind = Literal["EMAIL", "IBAN", "CARD", "PHONE", "NAME"]

#: every kind, most specific first (the order breaks ties between overlapping findings)
KINDS: tuple[Kind, ...] = ("EMAIL", "IBAN", "CARD", "PHONE", "NAME")
_RANK = {kind: i for i, kind in enumerate(KINDS)}


class Finding(NamedTuple):
    """One redacted span of the original text: its kind and ``text[start:end]`` offsets."""

    kind: Kind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Redaction:
    """A redacted text and where its findings were in the original (values are not kept)."""

    text: str
    findings: list[Finding] = field(default_factory=list)


# --- emails -------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+\]-])[\w.%+-]++@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}(?![\w-])",
)

# --- IBANs --------------------------------------------------------------------------------

# registered IBAN lengths (SWIFT IBAN registry)
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# compact, or grouped in fours by single spaces; may swallow a following word (trimmed later)
_IBAN = re.compile(
    r"[a-z](?<![\w\]][a-z])[a-z][0-9]{2}"
    r"(?:[a-z0-9]{11,30}|(?: [a-z0-9]{4}){2,7}(?: [a-z0-9]{1,4})?)(?!\w)",
    re.IGNORECASE | re.ASCII,
)


def _mod97_ok(iban: str) -> bool:
    """ISO 13616 / ISO 7064 mod 97-10 on a compact, upper-case IBAN."""
    check = iban[2:4]
    if not check.isdigit() or not "02" <= check <= "98":
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_end(candidate: str) -> int:
    """Length of the valid IBAN at the start of ``candidate`` (0 when there is none)."""
    compact = candidate.replace(" ", "").upper()
    want = _IBAN_LENGTHS.get(compact[:2])
    if want is None:
        return len(candidate) if 15 <= len(compact) <= 34 and _mod97_ok(compact) else 0
    if len(compact) < want or not _mod97_ok(compact[:want]):
        return 0
    # map the compact length back onto the candidate; the IBAN must end where a group ends
    seen = 0
    for i, ch in enumerate(candidate):
        if ch != " ":
            seen += 1
            if seen == want:
                end = i + 1
                return end if end == len(candidate) or candidate[end] == " " else 0
    return 0


# --- cards --------------------------------------------------------------------------------

_CARD = re.compile(
    r"[2-6](?<![\w.,+/\]-][2-6])(?:[0-9]{12,18}"
    r"|[0-9]{3}(?P<s>[ -])[0-9]{4}(?P=s)[0-9]{4}(?P=s)[0-9]{1,4}(?:(?P=s)[0-9]{1,3})?"
    r"|[0-9]{3}(?P<t>[ -])[0-9]{6}(?P=t)[0-9]{4,5})"
    r"(?![\w%]|[.,][0-9])",
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# --- phones -------------------------------------------------------------------------------

# groups of digits joined by one space / dot / dash, or by a parenthesised area code;
# possessive so a candidate that ends badly is dropped, not shortened into a smaller one
_PHONE = re.compile(
    r"(?=[+(0-9])(?:(?<![\w+#@\]])|(?<=[0-9])(?=\+))(?<![0-9\]][.,/:-])"
    r"(?:\+ ?)?(?:\([0-9]{1,5}\) ?)?[0-9]++(?:(?:[ .-]| ?\([0-9]{1,5}\) ?)[0-9]++)*+"
    r"(?![\w%:@]|[.,/][0-9])",
)
_NANP = re.compile(r"(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}")
_DATE = re.compile(r"[0-9]{1,4}([./ -])[0-9]{1,2}\1[0-9]{2,4}")
_NON_DIGITS = re.compile(r"[^0-9]+")


def _is_phone(candidate: str) -> bool:
    digits = _NON_DIGITS.sub("", candidate)
    if not 7 <= len(digits) <= 15:
        return False
    if candidate[0] == "+":
        return True
    if _DATE.fullmatch(candidate):
        return False
    if _NANP.fullmatch(candidate):
        return True
    if digits[0] != "0" or candidate[0] not in "0(":
        return False
    contiguous = len(digits) == len(candidate)
    if digits[1] == "0":  # 00 + country code: international dialling prefix
        return not contiguous and digits[2] != "0" and len(digits) >= 9
    return len(digits) >= 10 or not contiguous


# --- names --------------------------------------------------------------------------------

# a word of letters (inner apostrophes and hyphens allowed), not glued to digits, not an email
_WORD = r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*(?!\w|[\w.%+-]*@)"
_NON_SPACE = re.compile(r"\S+")
_NAME_AFTER = re.compile(
    r"(?<!\w)(?:(?:mrs|mr|ms|miss|mx|dr|prof|herr|frau|mme|mlle)\.?|my name is)[ \t]+"
    rf"(?=({_WORD}(?:[ \t]+{_WORD}){{0,2}}))",
    re.IGNORECASE,
)
_NAME_SIGNED = re.compile(
    r"(?<!\w)(?:(?:kind |best |warm |warmest )?regards|best|thanks|thank you|cheers|sincerely"
    r"|yours(?: truly| sincerely| faithfully)?)[ \t]*,?[ \t]*\r?\n[ \t]*"
    rf"({_WORD}(?:[ \t]+{_WORD}){{0,2}})[ \t]*(?=\r?\n|$)",
    re.IGNORECASE,
)
# cheap substring pre-checks on the lower-cased text before the name patterns run
_SALUTATION_HINTS = (
    "mr", "ms.", "ms ", "miss ", "mx", "dr.", "dr ", "prof", "herr ", "frau ", "mme", "mlle",
    "my name is",
)  # fmt: skip
_SIGN_OFF_HINTS = ("regards", "best", "thank", "cheers", "sincerely", "yours")


def _name_spans(text: str) -> list[tuple[Kind, int, int]]:
    spans: list[tuple[Kind, int, int]] = []
    lower = text.lower()
    if any(hint in lower for hint in _SALUTATION_HINTS):
        spans += _salutation_spans(text)
    if "\n" in text and any(hint in lower for hint in _SIGN_OFF_HINTS):
        for m in _NAME_SIGNED.finditer(text):
            words = m.group(1).split()
            if all(w[0].isupper() for w in words):
                spans.append(("NAME", m.start(1), m.end(1)))
    return spans


def _salutation_spans(text: str) -> list[tuple[Kind, int, int]]:
    spans: list[tuple[Kind, int, int]] = []
    for m in _NAME_AFTER.finditer(text):
        # keep the leading capitalised words only: "Dr. Smith said" -> "Smith"
        start = m.start(1)
        end = start
        for word in _NON_SPACE.finditer(m.group(1)):
            if not word.group()[0].isupper():
                break
            end = start + word.end()
        if end > start:
            spans.append(("NAME", start, end))
    return spans


# --- putting it together ------------------------------------------------------------------


def _find(text: str) -> list[tuple[Kind, int, int]]:
    """All findings in ``text``, overlaps resolved, sorted by start."""
    spans: list[tuple[Kind, int, int]] = []
    if "@" in text:
        spans += [("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    # IBANs, cards and phones all have at least 7 digits
    if sum(text.count(d) for d in "0123456789") >= 7:
        for m in _IBAN.finditer(text):
            end = _iban_end(m.group())
            if end and not (m.start() and text[m.start() - 1].isalnum()):  # ASCII-only \w
                spans.append(("IBAN", m.start(), m.start() + end))
        for m in _CARD.finditer(text):
            if _luhn_ok(_NON_DIGITS.sub("", m.group())):
                spans.append(("CARD", m.start(), m.end()))
        # phones are searched with the findings so far blanked out (as "]", like the end of a
        # placeholder), so a rejected candidate cannot swallow a phone next to an IBAN or card
        # and a second pass over the redacted text sees the same neighbours
        masked = text
        for _, start, end in spans:
            masked = masked[:start] + "]" * (end - start) + masked[end:]
        for m in _PHONE.finditer(masked):
            if _is_phone(m.group()):
                spans.append(("PHONE", m.start(), m.end()))
    spans += _name_spans(text)
    if len(spans) < 2:
        return spans
    # longest first, then most specific; keep each span that overlaps none already kept
    spans.sort(key=lambda s: (s[1] - s[2], _RANK[s[0]], s[1]))
    kept: list[tuple[Kind, int, int]] = []
    for span in spans:
        if all(span[2] <= k[1] or span[1] >= k[2] for k in kept):
            kept.append(span)
    kept.sort(key=lambda s: s[1])
    return kept


def _apply(text: str, spans: list[tuple[Kind, int, int]]) -> str:
    parts: list[str] = []
    pos = 0
    for kind, start, end in spans:
        parts.append(text[pos:start])
        parts.append(f"[{kind}]")
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _require_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ContractError(
            f"redaction takes text (str){where}; got {type(value).__name__}. "
            "Pass None for a missing text "
            "(a pandas column: col.astype(object).where(col.notna(), None))."
        )
    return value


def redact(text: str) -> Redaction:
    """Redact emails, IBANs, card numbers, phone numbers and (heuristically) person names.

    Returns the redacted text and the findings as ``(kind, start, end)`` offsets into ``text``.
    Raises :class:`~corridor.errors.ContractError` when ``text`` is not a ``str``.
    """
    _require_str(text, "")
    spans = _find(text)
    if not spans:
        return Redaction(text)
    return Redaction(_apply(text, spans), [Finding(*s) for s in spans])


def redact_many(texts: Iterable[str | None]) -> list[str | None]:
    """Redact each text of a batch; ``None`` stays ``None``. Same rules as :func:`redact`; a
    text that repeats in the batch is searched once."""
    out: list[str | None] = []
    append = out.append
    done: dict[str, str] = {}
    for i, text in enumerate(texts):
        if text is None:
            append(None)
            continue
        text = _require_str(text, f" or None (item {i})")
        redacted = done.get(text)
        if redacted is None:
            spans = _find(text)
            redacted = done[text] = _apply(text, spans) if spans else text
        append(redacted)
    return out
