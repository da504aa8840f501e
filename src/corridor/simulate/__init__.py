"""A seeded, vectorised generator of a believable company, with planted effects.

Usage::

    from corridor.simulate import simulate, SimulationResult
    res = simulate(customers=3000, months=12, seed=7, out_dir=Path("out"), fmt="parquet")
    res.files["interactions"], res.counts["feedback"], res.truth["ripples"]

``simulate(customers, months, seed, out_dir, fmt="parquet", start=date(2025, 1, 1),
progress=None, precursors=False)`` writes into ``out_dir``:

- ``corridor.yaml``: the corridor map (contract format): 7 stages, 34 touch points with channels,
  owning department and (for 13 of them) 15 promises;
- ``people``, ``interactions``, ``feedback``, ``operational_events``, ``market_events``,
  ``employee_predictions`` as ``.parquet``, ``.csv`` or ``.ndjson`` with exactly the contract's
  columns (interactions also carry the four identity columns, mostly null), plus the optional
  share-of-wallet columns ``brands_used`` and ``brand_rank`` last in feedback;
- ``truth.json``: what was planted (below).

Parquet types: ids and labels ``string``; times ``timestamp[us, tz=UTC]``; scores ``int8``;
money, durations and predictions ``float64``. CSV/NDJSON times read ``2025-01-31T08:15:00Z``;
NDJSON writes every column on every line (``null`` where empty). The same seed gives
byte-identical CSV/NDJSON and identical Parquet contents. Interactions are written in time
order; feedback in time order within each month of interactions.

Scale (rates live in :mod:`corridor.simulate.params` and ``company.yaml``):

- ``customers`` customers plus 40 % as many prospects. 2.5 % of the base per month (at most
  60 %) is acquired inside the window through an acquisition journey (awareness -> research ->
  purchase -> delivery -> first use, ~8 interactions, online/store/dealer path by segment); the
  rest existed before the window.
- An active customer has about 3.8 interactions a month: invoice 1, payment 0.97, app use 0.7,
  account portal 0.25, help centre 0.2, support chat 0.12, call 0.12, e-mail 0.06, renewal
  offers 0.06, loyalty 0.08, repairs/warranty/returns/social care ~0.07, plus repeat-purchase
  journeys (4-8 % a month by segment, ~4 interactions each). Prospects have ~3 awareness /
  research interactions each (8 % reach checkout and abandon).
- Measured: ~3.2 interactions per customer per month overall (churn removes some), so
  ``customers=260_000, months=12`` gives ~10.0 M interactions and ~1.26 M feedback rows, in
  ~15 s as Parquet, ~19 s as CSV and ~29 s as NDJSON on 2 cores, under 0.8 GB peak memory
  (interactions are generated a month at a time, in chunks of 500k rows, and written on a
  background thread).
- Feedback is ~12.6 % of interactions: surveys (representative, rate per touch point),
  transcripts (30 % of voice/chat support, sales and cancellation contacts), field notes (1 % of
  store/partner contacts), and self-selected reviews and social posts (mostly anonymous; their
  probability grows as exp(-0.6 gap) below zero, so they are mostly complaints).

Latent model, for every interaction (integers 0..10)::

    expectation = tp.base_expectation + segment effect + drift + N(0, 1.1)
    experience  = tp.quality + partner offset + channel effect + person mood N(0, 0.5)
                  + ripple + N(0, 1.4)

Feedback scores (nps, csat, ces, emotion) follow the gap G = experience - expectation
(formulas in :mod:`corridor.simulate.feedback` and ``truth["model"]["scores"]``). Half of
customers' surveys with an NPS also carry ``brands_used`` (1-5, fixed per person, more in
larger segments) and ``brand_rank`` (1 = ours preferred), from a ranking model driven by the
person's experience offset (:mod:`corridor.simulate.wallet`; its own random stream, so the rest
of the output does not depend on it).

``truth.json`` (``res.truth``) holds:

- ``seed, start, end, months, format, counts`` (rows per kind, customers, prospects,
  churned customers, partners, employees) and ``base_rates``;
- ``model``: the formulas above, per-touch-point ``base_expectation`` and ``quality``, segment
  and channel effects (no region effects);
- ``ripples``: planted department ripples, each ``{event_id, department, kind, touchpoints,
  region (null = all), start, end, experience_effect, duration_factor, value_factor}`` — a
  logistics ``carrier_change`` in ``north`` (-2.0 at home_delivery and shipping_notice, 25 % of
  the window from ~35 %; deliveries 1.6x slower) and a billing ``billing_error`` everywhere
  (-1.5 at invoice, invoices 25 % higher, ~6 % of the window from ~70 %);
- ``drift``: ``{touchpoint: support_chat, date, size: +1.5, market_event_id, metric}`` — the
  only planted expectation shift, starting at a ``competitor_move`` market event;
- ``null_events``: operational and market event ids planted with no effect (false-positive
  checks); they never overlap a planted ripple's touch points within 14 days of its window;
- ``partners``: ``{partner_id, type, region, experience_offset ~ N(0, 1), volume_weight}`` for
  6 dealers, 6 retailers (regional), 5 service firms and 4 agencies (national);
- ``churn``: ``logit(monthly hazard) = intercept_logit + sum(coefficient * gap)`` over the driver
  touch points support_call (-0.35), home_delivery (-0.30) and invoice (-0.25), where gap is the
  customer's latest latent gap there (decaying x0.8 a month); churn is a ``cancellation`` with
  outcome ``cancel`` and nothing after it (other cancellation contacts end ``retained``);
  ``precursors`` is null, or with ``precursors=True`` (:mod:`corridor.simulate.precursors`) the
  at-risk model — a fired hazard is a decision to leave, the cancellation follows 10-13 weeks
  later, and meanwhile the customer makes unresolved support contacts, a retention call, uses
  less, buys nothing and waits longer — and its ``ceiling``: the AUC of the simulator's own
  probability of churning within the product's 3-month horizon, at the cut-off one horizon
  before the end (only the interactions and feedback change; people, partners, events,
  predictions, the map and the rest of ``truth.json`` stay those of the seed);
- ``identity``: ``merges`` (groups of person_ids that share an e-mail or device id: 1.5 % of
  prospects return as a new customer record) and ``identity_only_interactions`` (count per
  column and a sample; ~1 % of interactions carry only the identity their channel knows:
  device_id on web/app, phone on voice, e-mail on e-mail/chat/social, crm_id in store/partner);
- ``employee_optimism``: department bias added to the true quality in employee predictions;
- ``wallet``: the share-of-wallet model and, per segment, its exact expected brands_used
  distribution, mean_brands, mean_rank, first_choice (share ranking us first) and wallet_share
  (Wallet Allocation Rule, any one answer of a person: the latest, say).

``progress(stage, fraction)`` is called with stages ``setup``, ``interactions`` and ``done``.
"""

from .core import SimulationResult, simulate

__all__ = ["SimulationResult", "simulate"]
