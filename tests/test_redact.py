"""PII redaction: positives and negatives per kind, overlaps, offsets, idempotence, batches."""

from __future__ import annotations

import random
from typing import Any

import pytest

from corridor.errors import ContractError
from corridor.text import KINDS, Finding, Redaction, redact, redact_many


def found(text: str) -> list[tuple[str, str]]:
    """(kind, original substring) for every finding, checked against the redacted text."""
    result = redact(text)
    return [(f.kind, text[f.start : f.end]) for f in result.findings]


def assert_redacted(text: str, kind: str, value: str) -> None:
    assert found(text) == [(kind, value)], text
    assert redact(text).text == text.replace(value, f"[{kind}]")


def assert_clean(text: str) -> None:
    result = redact(text)
    assert result.findings == [], (text, found(text))
    assert result.text == text


# --- emails -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        "john.doe@example.com",
        "j.doe+newsletter@mail.example.co.uk",
        "first_last-99@sub-domain.example.org",
        "ANNA@EXAMPLE.DE",
        "jürgen.weiß@beispiel.de",
        "user%tag@example.museum",
        "0176123456789@sms.example.com",
    ],
)
def test_emails_are_redacted(email: str) -> None:
    assert_redacted(f"Please write to {email}, thanks.", "EMAIL", email)
    assert_redacted(f"<{email}>", "EMAIL", email)
    assert_redacted(email, "EMAIL", email)


@pytest.mark.parametrize(
    "text",
    [
        "Meet me @ the store",
        "twitter handle @corridor",
        "user@localhost said hi",
        "a@b",
        "price 3 @ €5",
        "foo@bar.c0m",
    ],
)
def test_not_emails(text: str) -> None:
    assert_clean(text)


def test_email_sentence_end_and_trailing_punctuation() -> None:
    assert found("Mail: a.b@example.com.") == [("EMAIL", "a.b@example.com")]
    assert found("(a.b@example.com)") == [("EMAIL", "a.b@example.com")]


# --- phones -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "+44(0)2079460958",
        "+1 (555) 123-4567",
        "+1 555 123 4567",
        "+49 30 12345678",
        "+4930123456",
        "+33 6 12 34 56 78",
        "+31.20.123.4567",
        "0044 20 7946 0958",
        "020 7946 0958",
        "030 1234567",
        "0176 12345678",
        "0176-123 45 67",
        "06 12 34 56 78",
        "0612345678",
        "02079460958",
        "(555) 123-4567",
        "(555)123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
    ],
)
def test_phones_are_redacted(phone: str) -> None:
    assert_redacted(f"Call me on {phone} after six.", "PHONE", phone)
    assert_redacted(f"Tel: {phone}.", "PHONE", phone)
    assert_redacted(f"Tel:{phone}", "PHONE", phone)
    assert_redacted(phone, "PHONE", phone)


@pytest.mark.parametrize(
    "text",
    [
        "Ordered on 2025-03-01, delivered 2025-03-04.",
        "on 01.03.2025 at 14:30",
        "between 14:30 and 15:45",
        "14:30-15:45",
        "on 03/01/2025",
        "It cost €1,299.00 in the end",
        "It cost $12,345,678.90 in the end",
        "€1299.00 and 1.299,00 € and 1 299 €",
        "paid 129999 cents",
        "12.5% of 1000000 users",
        "It took 3 days and 24 hours",
        "in 2019, 2020 and 2021",
        "years 2019 2020 2021",
        "order #0012345678 and ticket #4821399",
        "order no. 48213991",
        "ref 12345678",
        "customer 1234567",
        "ip 192.168.100.200",
        "version 10.15.7.123",
        "room 12, floor 3, 45 minutes",
        "1,234,567 visitors",
        "scored 9.5/10",
        "PLZ 10115 Berlin",
        "+15 points",
        "0012345678",
        "01234567",
        "0 stars, 0 help",
        "123-4567",
    ],
)
def test_not_phones(text: str) -> None:
    assert_clean(text)


def test_phone_too_long_is_not_redacted_as_phone() -> None:
    assert_clean("ref 0123 4567 8901 2345 6789")  # 20 digits: neither phone nor Luhn card


# --- cards --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",  # Visa
        "4111-1111-1111-1111",
        "4111111111111111",
        "4012888888881881",
        "4222222222222",  # Visa, 13 digits
        "5555 5555 5555 4444",  # Mastercard
        "5105105105105100",
        "2223003122003222",  # Mastercard 2-series
        "3782 822463 10005",  # Amex 4-6-5
        "378282246310005",
        "3056 930902 5904",  # Diners 4-6-4
        "6011 1111 1111 1117",  # Discover
        "3530111333300000",  # JCB
        "6200 0000 0000 0005",  # UnionPay
        "6759 6498 2643 8453",  # Maestro
    ],
)
def test_luhn_valid_cards_are_redacted(card: str) -> None:
    assert_redacted(f"my card {card} was charged twice", "CARD", card)
    assert_redacted(f"card:{card}.", "CARD", card)
    assert_redacted(card, "CARD", card)


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "4111111111111112",
        "5555 5555 5555 4445",
        "1234 5678 9012 3456",
        "3782 822463 10006",
        "4111 1111-1111 1111",  # mixed separators
        "41111 1111 1111 111",  # odd grouping
        "8111111111111111111",  # Luhn-valid but not a payment-card prefix
        "41111111111111111111",  # 20 digits
        "4111.1111.1111.1111",
    ],
)
def test_not_cards(text: str) -> None:
    assert all(kind != "CARD" for kind, _ in found(text)), found(text)


def test_card_followed_by_expiry() -> None:
    assert found("card 4111 1111 1111 1111 exp 12/27") == [("CARD", "4111 1111 1111 1111")]


# --- IBANs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "GB82 WEST 1234 5698 7654 32",
        "GB82WEST12345698765432",
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "de89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91 ABNA 0417 1643 00",
        "BE68 5390 0754 7034",
        "CH93 0076 2011 6238 5295 7",
        "NO93 8601 1117 947",
        "AT61 1904 3002 3457 3201",
        "ES91 2100 0418 4502 0005 1332",
        "IT60 X054 2811 1010 0000 0123 456",
    ],
)
def test_valid_ibans_are_redacted(iban: str) -> None:
    assert_redacted(f"Please refund to {iban} today.", "IBAN", iban)
    assert_redacted(f"IBAN: {iban}", "IBAN", iban)
    assert_redacted(iban, "IBAN", iban)


def test_iban_followed_by_words_keeps_the_words() -> None:
    text = "BE68 5390 0754 7034 THIS IS A TEST and GB82 WEST 1234 5698 7654 32 Best"
    assert found(text) == [("IBAN", "BE68 5390 0754 7034"), ("IBAN", "GB82 WEST 1234 5698 7654 32")]


@pytest.mark.parametrize(
    "text",
    [
        "GB83 WEST 1234 5698 7654 32",  # wrong check digits
        "DE88 3704 0044 0532 0130 00",
        "DE89 3704 0044 0532 0130 01",  # wrong account digit
        "DE89370400440532013000123",  # too long for DE
        "DE89 3704 0044 0532 0130",  # too short for DE
        "AB12 3456 7890 1234 56",
        "AB12 cdef ghij klmn op",
    ],
)
def test_invalid_ibans_are_not_redacted_as_iban(text: str) -> None:
    assert all(kind != "IBAN" for kind, _ in found(text)), found(text)


def test_iban_digits_are_not_also_a_phone_or_card() -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00, call 030 1234567"
    assert found(text) == [("IBAN", "DE89 3704 0044 0532 0130 00"), ("PHONE", "030 1234567")]


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Mr. Smith was very helpful", ["Smith"]),
        ("Mrs Jane Doe called", ["Jane Doe"]),
        ("Dr. Anna Müller explained it", ["Anna Müller"]),
        ("ask for Ms. O'Brien-Smith please", ["O'Brien-Smith"]),
        ("Herr Jürgen Weiß und Frau Öztürk", ["Jürgen Weiß", "Öztürk"]),
        ("Mr. and Mrs. Smith", ["Smith"]),
        ("Hi, my name is Anna Schmidt and I ordered", ["Anna Schmidt"]),
        ("Kind regards,\nAnna Schmidt", ["Anna Schmidt"]),
        ("Thanks\r\nJohn\r\n", ["John"]),
        ("Best,\n  Zoë Δημητρίου\nSent from my phone", ["Zoë Δημητρίου"]),
    ],
)
def test_names_after_salutation_or_sign_off(text: str, names: list[str]) -> None:
    assert found(text) == [("NAME", n) for n in names]


@pytest.mark.parametrize(
    "text",
    [
        "Anna helped me a lot",  # running-text names are not covered (documented)
        "the dr was nice",
        "Mr. nobody knows",
        "Thanks for nothing",
        "Thanks,\nthe delivery was late",
        "Best service ever\nreally",
        "items arrived, problems solved",
        "Madrid store",
    ],
)
def test_no_name_without_a_cue(text: str) -> None:
    assert_clean(text)


# --- mixtures, offsets, idempotence, batches ------------------------------------------------

MIXED = (
    "Hallo, ich bin Frau Öztürk 👋 — Karte 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00, Tel. +49 (0)30 1234 5678, "
    "Mail öz@example.de. Lieferung am 01.03.2025 um 14:30 für €1.299,00 (20 % Rabatt)."
)


def test_mixed_unicode_text() -> None:
    result = redact(MIXED)
    assert result.text == (
        "Hallo, ich bin Frau [NAME] 👋 — Karte [CARD], IBAN [IBAN], Tel. [PHONE], "
        "Mail [EMAIL]. Lieferung am 01.03.2025 um 14:30 für €1.299,00 (20 % Rabatt)."
    )
    assert [f.kind for f in result.findings] == ["NAME", "CARD", "IBAN", "PHONE", "EMAIL"]


def test_offsets_point_into_the_original_and_values_are_not_kept() -> None:
    result = redact(MIXED)
    assert isinstance(result, Redaction)
    assert [MIXED[f.start : f.end] for f in result.findings] == [
        "Öztürk",
        "4111 1111 1111 1111",
        "DE89 3704 0044 0532 0130 00",
        "+49 (0)30 1234 5678",
        "öz@example.de",
    ]
    for f in result.findings:
        assert isinstance(f, Finding)
        assert f.kind in KINDS
        assert len(tuple(f)) == 3
    starts = [f.start for f in result.findings]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(result.findings, result.findings[1:], strict=False))
    # rebuilding from the findings gives the redacted text
    rebuilt, pos = [], 0
    for f in result.findings:
        rebuilt += [MIXED[pos : f.start], f"[{f.kind}]"]
        pos = f.end
    assert "".join([*rebuilt, MIXED[pos:]]) == result.text


def test_overlap_longest_wins() -> None:
    # the card's digits contain phone-like runs; an email holding a phone stays one email
    assert found("4111 1111 1111 1111") == [("CARD", "4111 1111 1111 1111")]
    assert found("+4930123456@fax.example.com") == [("EMAIL", "+4930123456@fax.example.com")]
    assert found("Dr. Smith 0176 12345678") == [("NAME", "Smith"), ("PHONE", "0176 12345678")]


def test_empty_and_plain() -> None:
    assert redact("") == Redaction("", [])
    assert redact("Great service, thanks!") == Redaction("Great service, thanks!", [])


def test_idempotent() -> None:
    once = redact(MIXED).text
    assert redact(once) == Redaction(once, [])


def test_idempotent_on_random_mixtures() -> None:
    pieces = [
        "Mr. Smith",
        "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "+44 20 7946 0958",
        "a.b@example.com",
        "2025-03-01",
        "14:30",
        "€1,299.00",
        "Best,\nAnna",
        "Ünïcödé",
        "(555) 123-4567",
        "42",
        "\n",
        "+",
        "-",
        "#",
        "x",
        "DE89 3704 0044 0532 0130 00",
        "030 1234567",
    ]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) + rng.choice([" ", ", ", "\n", ""]) for _ in range(6))
        once = redact(text)
        assert redact(once.text).text == once.text, text
        for f in once.findings:
            assert 0 <= f.start < f.end <= len(text)


def test_redact_many_matches_redact_and_keeps_none() -> None:
    texts = [MIXED, None, "", "plain", "call 020 7946 0958", None, MIXED, "call 020 7946 0958"]
    assert redact_many(texts) == [None if t is None else redact(t).text for t in texts]
    assert redact_many(iter(["a@b.co"])) == ["[EMAIL]"]
    assert redact_many([]) == []


def test_non_text_is_a_contract_error() -> None:
    not_text: Any = float("nan")
    with pytest.raises(ContractError, match="item 1"):
        redact_many(["ok", not_text])
    with pytest.raises(ContractError):
        redact(not_text)


def test_batch_agrees_with_single_texts() -> None:
    """redact_many is the fast path of redact: same output, text for text (speed is measured
    outside the unit tests)."""
    texts = [
        "The delivery was late again and nobody answered the hotline for 3 days.",
        "Order 2025-03-01 arrived damaged, refund of €1,299.00 still missing.",
        "Please call me on +49 176 12345678 or mail anna.m@example.org",
        "Mr. Smith was very helpful with my card 4111 1111 1111 1111",
        None,
    ] * 50
    assert redact_many(texts) == [None if t is None else redact(t).text for t in texts]
