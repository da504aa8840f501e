"""Feedback from a batch of interactions: representative surveys, transcripts, field notes, and
self-selected reviews and social posts (given mostly after a bad gap).

Scores derive from the latent integers E (experience) and X (expectation), gap G = E - X::

    nps     = clip(rint(2.8 + 0.6 E + 0.5 G + N(0, 1.3)), 0, 10)
    csat    = clip(rint(3.4 + 0.15 (E - 6) + 0.45 G + N(0, 0.6)), 1, 5)
    ces     = clip(rint(5.0 + 0.10 (E - 6) + 0.35 G + N(0, 0.9)), 1, 7)
    emotion = clip(rint(0.10 (E - 6) + 0.5 G + N(0, 0.7)), -3, 3)

Unsolicited (review, social) probability per interaction: base x touch-point propensity x
selection(G), selection = exp(-0.6 G) for G < 0 and 1 + 0.25 G otherwise.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import params as P
from .arrowutil import DAY, label_array, padded_ids, take_strings, timestamps
from .corridor_map import CHANNELS, TOUCHPOINTS, TP_INDEX
from .interactions import Batch, World
from .text import build_text, sentiment
from .wallet import Wallet

_SURVEY = np.array([t.survey for t in TOUCHPOINTS])
_REVIEW = np.array([t.review for t in TOUCHPOINTS])
_SOCIAL = np.array([t.social for t in TOUCHPOINTS])
_TRANSCRIPT_TP = np.zeros(len(TOUCHPOINTS), bool)
_TRANSCRIPT_TP[[TP_INDEX[k] for k in P.TRANSCRIPT_TOUCHPOINTS]] = True
_TRANSCRIPT_CH = np.array([c in ("voice", "chat", "social") for c in CHANNELS])
_FIELD_CH = np.array([c in ("store", "partner") for c in CHANNELS])
_PRESENCE = np.array([P.FEEDBACK_PRESENCE[s] for s in P.FEEDBACK_SOURCES])
_ANONYMOUS = np.array([0.0, P.REVIEW_ANONYMOUS, P.SOCIAL_ANONYMOUS, 0.0, 0.0])


def selection(gap: np.ndarray) -> np.ndarray:
    """Relative propensity to post unsolicited feedback after a gap (complaints dominate)."""
    g = gap.astype(np.float64)
    return np.where(g < 0, np.exp(-0.6 * g), 1.0 + 0.25 * g)


def make_feedback(
    world: World, b: Batch, first_id: int, end: int, rng: np.random.Generator, wallet: Wallet
) -> pa.Table:
    """Feedback rows about the interactions of ``b`` (ids continue from ``first_id``); the
    share-of-wallet answers come from ``wallet`` (its own random stream)."""
    n = len(b)
    gap = b.experience.astype(np.int16) - b.expectation.astype(np.int16)
    sel = selection(gap)
    picks = [
        rng.random(n) < _SURVEY[b.tp],
        rng.random(n) < P.REVIEW_BASE * _REVIEW[b.tp] * sel,
        rng.random(n) < P.SOCIAL_BASE * _SOCIAL[b.tp] * sel,
        (rng.random(n) < P.TRANSCRIPT_SHARE) & _TRANSCRIPT_TP[b.tp] & _TRANSCRIPT_CH[b.channel],
        (rng.random(n) < P.FIELD_NOTE_SHARE) & _FIELD_CH[b.channel],
    ]
    row = np.concatenate([np.flatnonzero(p) for p in picks])
    src = np.concatenate([np.full(int(p.sum()), k, np.int8) for k, p in enumerate(picks)])
    m = len(row)
    dur = np.minimum(np.nan_to_num(b.duration[row], nan=5.0), 180.0) * 60.0  # contact end
    lag = np.select(
        [src == 0, src == 1, src == 2, src == 3],
        [
            dur + rng.lognormal(np.log(4 * 3600), 1.0, m),
            rng.uniform(0.5, 10.0, m) * DAY,
            dur + rng.lognormal(np.log(3 * 3600), 1.0, m),
            dur,
        ],
        default=rng.uniform(0, 2 * 3600, m),
    )
    when = b.time[row] + np.minimum(lag, 30 * DAY).astype(np.int64)
    keep = when < end
    row, src, when = row[keep], src[keep], when[keep]
    order = np.lexsort((src, row, when))
    row, src, when = row[order], src[order], when[order]
    m = len(row)

    E = b.experience[row].astype(np.float64)
    X = b.expectation[row].astype(np.float64)
    G = E - X
    nps = np.clip(np.rint(2.8 + 0.6 * E + 0.5 * G + rng.normal(0, 1.3, m)), 0, 10)
    csat = np.clip(np.rint(3.4 + 0.15 * (E - 6) + 0.45 * G + rng.normal(0, 0.6, m)), 1, 5)
    ces = np.clip(np.rint(5.0 + 0.10 * (E - 6) + 0.35 * G + rng.normal(0, 0.9, m)), 1, 7)
    emotion = np.clip(np.rint(0.10 * (E - 6) + 0.5 * G + rng.normal(0, 0.7, m)), -3, 3)
    present = rng.random((m, _PRESENCE.shape[1])) < _PRESENCE[src]

    anonymous = rng.random(m) < _ANONYMOUS[src]
    person = np.where(anonymous, -1, b.person[row])
    hide_tp = (src == 2) & (rng.random(m) < P.SOCIAL_NO_TOUCHPOINT)
    ix_number = np.where(anonymous, -1, b.first_id + row + 1)

    people = world.people
    pii = (~anonymous) & (rng.random(m) < P.PII_IN_TEXT_SHARE)
    has_email = people.has_identity[b.person[row], 0]
    has_phone = people.has_identity[b.person[row], 1]
    email = take_strings(people.identities["email"], np.where(pii & has_email, b.person[row], -1))
    phone = take_strings(
        people.identities["phone"], np.where(pii & ~has_email & has_phone, b.person[row], -1)
    )
    contact = pc.coalesce(email, phone)
    mood = sentiment(b.expectation[row], b.experience[row], rng)
    text = build_text(src, b.tp[row], mood, contact, rng)
    text = pc.if_else(pa.array(present[:, 6]), text, pa.nulls(m, pa.string()))

    ix_ids = _ids_or_null(ix_number)
    brands, rank = wallet.answers(person, (src == 0) & present[:, 2])
    return pa.table(
        {
            "feedback_id": _fb_ids(first_id, m),
            "person_id": take_strings(people.ids, person),
            "occurred_at": timestamps(when),
            "touchpoint": label_array(
                tuple(t.key for t in TOUCHPOINTS), np.where(hide_tp, -1, b.tp[row])
            ),
            "interaction_id": ix_ids,
            "partner_id": label_array(world.partners.ids, b.partner[row]),
            "source": label_array(P.FEEDBACK_SOURCES, src),
            "expectation": pa.array(X.astype(np.int8), pa.int8(), mask=~present[:, 0]),
            "experience": pa.array(E.astype(np.int8), pa.int8(), mask=~present[:, 1]),
            "nps": pa.array(nps.astype(np.int8), pa.int8(), mask=~present[:, 2]),
            "csat": pa.array(csat.astype(np.int8), pa.int8(), mask=~present[:, 3]),
            "ces": pa.array(ces.astype(np.int8), pa.int8(), mask=~present[:, 4]),
            "emotion": pa.array(emotion.astype(np.int8), pa.int8(), mask=~present[:, 5]),
            "text": text,
            "brands_used": brands,
            "brand_rank": rank,
        }
    )


def _ids_or_null(numbers: np.ndarray) -> pa.Array:
    valid = numbers >= 0
    out = padded_ids("ix-", np.where(valid, numbers, 0), 9)
    return pc.if_else(pa.array(valid), out, pa.nulls(len(numbers), pa.string()))


def _fb_ids(first_id: int, n: int) -> pa.Array:
    return padded_ids("fb-", np.arange(first_id + 1, first_id + n + 1), 9)
