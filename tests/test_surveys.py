"""Hosted surveys below the pages (issue 15): definitions and their problems, versions, links
(hashed tokens, expiry, revocation, single use), and responses stored as feedback exactly once,
through the one ingest path, on both engines."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest

from corridor.analytics.feedback.gaps import gap_table
from corridor.ingest.pipeline import Ingestor
from corridor.surveys import answers, catalog, definition, links, responses
from corridor.surveys.errors import (
    LinkGoneError,
    LinkNotFoundError,
    SurveyDefinitionError,
    SurveyError,
    SurveyNotFoundError,
)
from survey_fixtures import delivery


@pytest.fixture
def loaded(store, ingestor):
    survey = definition.parse(delivery())
    assert catalog.save(store, survey, by="ana") == (1, True)
    return survey


def _problems(doc) -> dict[str, str]:
    with pytest.raises(SurveyDefinitionError) as e:
        definition.parse(doc)
    return dict(e.value.problems)


# -- definitions ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        ({"id": "Bad Id"}, "id", "lower-case"),
        ({"id": 123}, "id", "quote it (id: '123')"),
        ({"title": {"en": "How\x00 was it?", "de": "Wie"}}, "title.en", "control character"),
        ({"title": {"en": "a", "EN": "b", "de": "c"}}, "title.EN", "a second text in 'en'"),
        ({"touchpoints": []}, "touchpoints", "touch point keys"),
        ({"languages": ["en", "english!"]}, "languages[1]", "not a language code"),
        ({"fallback_language": "fr"}, "fallback_language", "must be one of languages"),
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"title": {"de": "Nur Deutsch"}}, "title", "fallback language 'en'"),
        ({"title": {"en": "x", "fr": "y"}}, "title.fr", "add it to languages"),
        ({"questions": []}, "questions", "a list of questions"),
    ],
)
def test_a_bad_definition_says_where_and_how_to_fix_it(change, where, says):
    problems = _problems(delivery(**change))
    assert where in problems and says in problems[where], problems


def test_question_problems_name_the_question():
    doc = delivery()
    doc["questions"][0]["field"] = "happiness"  # not a feedback field
    doc["questions"][1]["min"] = 3  # a bound field has its own range
    doc["questions"][2]["text"] = {"en": "x", "de": 5}
    doc["questions"][3]["show_if"] = {"question": "issue", "below": 5}  # a later question
    doc["questions"][4]["choices"] = ["only-one"]
    doc["questions"].append({"id": "nps_again", "field": "nps", "text": "Again?"})
    doc["questions"].append(
        {"id": "same_page", "type": "text", "text": "?", "show_if": {"question": "nps", "above": 8}}
    )
    doc["questions"].append({"id": "survey_id", "type": "text", "attribute": "survey_id",
                             "text": "?", "page": 3})  # fmt: skip
    doc["questions"].append({"id": "nested", "type": "text", "attribute": "attributes",
                             "text": "?", "page": 3})  # fmt: skip
    problems = _problems(doc)
    assert "use one of expectation, experience" in problems["questions[0] (expectation).field"]
    assert "fixed range (0 to 10)" in problems["questions[1] (experience).min"]
    assert "non-empty text" in problems["questions[2] (nps).text.de"]
    assert "earlier question" in problems["questions[3] (what_went_wrong).show_if.question"]
    assert "2 to 50 choices" in problems["questions[4] (issue).choices"]
    assert "filled by question 'nps'" in problems["questions[5] (nps_again)"]
    assert (
        "put this question on a later page" in problems["questions[6] (same_page).show_if.question"]
    )
    assert "survey attribute" in problems["questions[7] (survey_id).attribute"]
    assert "pick another name" in problems["questions[8] (nested).attribute"]
    doc = delivery()
    doc["questions"][3]["show_if"] = {"question": "experience", "below": float("nan")}
    assert "expected a number" in _problems(doc)["questions[3] (what_went_wrong).show_if.below"]
    # a condition no answer meets: the question would never be asked
    for never in ({"equals": "high"}, {"above": 10}, {"below": 2, "above": 8}, {"in": [11]}):
        doc = delivery()
        doc["questions"][3]["show_if"] = {"question": "experience", **never}
        says = _problems(doc)["questions[3] (what_went_wrong).show_if"]
        assert "no answer to 'experience' (0 to 10) meets this condition" in says, never
    # a choice value compared as a number: quote it
    doc = delivery()
    doc["questions"].append({"id": "why_late", "type": "text", "text": "Why?", "page": 3,
                             "show_if": {"question": "issue", "equals": 1}})  # fmt: skip
    says = _problems(doc)["questions[5] (why_late).show_if.equals"]
    assert "quote the value (equals: '1')" in says
    # labels of a scale's ends on another kind of question
    doc = delivery()
    doc["questions"][4]["min_label"] = {"en": "low", "de": "niedrig"}
    assert "remove it" in _problems(doc)["questions[4] (issue).min_label"]


def test_a_version_stored_before_a_check_was_added_is_still_read(store, ingestor):
    """A version stored by an earlier release, with what today's checks refuse when a
    definition is loaded (a condition no answer meets, a label on a choice question, a question
    named attributes), still reads: its links keep working as they did."""
    import json

    catalog.save(store, definition.parse(delivery()), by="ana")
    doc = delivery()
    doc["questions"][3]["show_if"] = {"question": "experience", "above": 10}
    doc["questions"][4]["min_label"] = "low"
    doc["questions"].append({"id": "attributes", "type": "text", "text": "?", "page": 2})
    with pytest.raises(SurveyDefinitionError):
        definition.parse(doc)
    with store.transaction() as tx:
        tx.execute("UPDATE survey_versions SET document = ? WHERE survey_id = ?",
                   [json.dumps(doc), "delivery-pulse"])  # fmt: skip
    got = catalog.get(store, "delivery-pulse").survey
    assert got.question("what_went_wrong").show_if.above == 10


def test_a_definition_reads_from_yaml_and_a_broken_file_says_the_line(tmp_path):
    good = tmp_path / "s.yaml"
    good.write_text(
        "id: counter\ntitle: At the counter\ntouchpoints: [checkout]\nquestions:\n"
        "  - {id: csat, field: csat, text: 'How satisfied are you?'}\n"
        "  - {id: ease, field: ces, text: 'How easy was it?', page: 3}\n"
    )
    s = definition.read_file(good)
    assert s.languages == ("en",) and [q.page for q in s.questions] == [1, 2]  # renumbered
    assert s.question("ease").low == 1 and s.question("ease").high == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nquestions: [\n")
    with pytest.raises(SurveyDefinitionError, match=r"bad.yaml.*line \d+, column \d+"):
        definition.read_file(bad)
    with pytest.raises(SurveyDefinitionError, match="no such file"):
        definition.read_file(tmp_path / "missing.yaml")
    for junk in (b"[" * 100_000, b"\xff\xfe\x00", b"- just\n- a list\n", b"42"):
        with pytest.raises(SurveyDefinitionError):
            definition.read_document(junk)


def test_skip_logic_and_translations():
    s = definition.parse(delivery())
    wrong = s.question("what_went_wrong")
    assert not s.shown(wrong, {"experience": 7}) and s.shown(wrong, {"experience": 4})
    assert s.visible_pages({}) == [1, 2]  # the choice question is always on page 2
    assert s.t(s.title, "de") == "Wie war Ihre Lieferung?" and s.language("de-CH") == "de"
    assert s.language("fr") is None
    # a regional form stands for its language (pt → pt-br), in ?lang= and Accept-Language alike
    from corridor.web.survey_words import best

    brazil = definition.parse({
        "id": "br", "title": {"en": "How was it?", "pt-br": "Como foi?"},
        "touchpoints": ["home_delivery"], "languages": ["en", "pt-br"],
        "questions": [{"id": "experience", "field": "experience", "text": "How was it?"}],
    })  # fmt: skip
    assert brazil.language("pt") == "pt-br" and brazil.language("pt-PT") == "pt-br"
    assert best("pt, en;q=0.5", brazil.languages) == "pt-br"
    page = answers.read_page(
        s, 1, {"expectation": "11", "experience": "", "nps": "9"}, {}, "de", check_required=True
    )
    assert page.values == {"nps": 9, "experience": None}
    assert page.errors == {"expectation": "Wählen Sie eine Zahl von 0 bis 10.",
                           "experience": "Bitte beantworten Sie diese Frage."}  # fmt: skip
    # an answer a later change hides is dropped at submit
    assert answers.kept(s, {"experience": 8, "what_went_wrong": "late", "nps": None}) == {
        "experience": 8
    }


def test_a_question_whose_condition_reads_a_skipped_question_is_skipped_too():
    """q3 is asked if q2 was 'late', q2 if q1 was under 5. Answering q1 3, q2 late, then going
    back and changing q1 to 9 skips q2, and with it q3: its page is not shown, it is not
    required, and neither answer is kept."""
    s = definition.parse({
        "id": "chain", "title": "T", "touchpoints": ["home_delivery"], "questions": [
            {"id": "q1", "field": "experience", "text": "How was it?"},
            {"id": "q2", "type": "choice", "choices": ["late", "damaged"], "page": 2,
             "text": "What went wrong?", "show_if": {"question": "q1", "below": 5}},
            {"id": "q3", "type": "text", "page": 3, "required": True, "text": "Tell us",
             "show_if": {"question": "q2", "equals": "late"}},
        ]})  # fmt: skip
    given = {"q1": 3, "q2": "late"}
    assert s.visible_pages(given) == [1, 2, 3] and answers.missing_required(s, given) == (3, "q3")
    changed = {"q1": 9, "q2": "late"}
    assert s.visible_pages(changed) == [1]
    assert answers.missing_required(s, changed) is None
    assert answers.kept(s, {**changed, "q3": "it was late"}) == {"q1": 9}


def test_answers_the_ingest_cannot_take_as_one_group_are_stored_one_by_one(store, ingestor):
    """Eleven versions of a survey of 100 custom questions, renamed from one version to the next,
    give their answers, acknowledged together, more attribute names than one ingest takes: the
    finisher stores them one by one instead of retrying the whole group for ever (which held
    back every survey's answers)."""

    def version(v: int) -> dict[str, object]:
        return {"id": "wide", "title": "T", "touchpoints": ["home_delivery"], "questions": [
            {"id": f"v{v}_q{i}", "type": "scale", "min": 0, "max": 1, "text": "x",
             "page": 1 + i // 50} for i in range(100)]}  # fmt: skip

    for v in range(11):
        catalog.save(store, definition.parse(version(v)), by="ana")
        link, token = links.create(store, "wide", person_id=f"p{v}")
        r = responses.open_response(store, link, token, language="en")
        r = responses.merge(r, {f"v{v}_q{i}": 1 for i in range(100)}, page=2)
        survey = catalog.get(store, "wide", r.version).survey
        responses.submit(store, ingestor, r, survey, finish_now=False)
    assert responses.finish_pending(store, ingestor) == 11
    assert store.query("SELECT state, count(*) FROM survey_responses GROUP BY 1") == [
        ("submitted", 11)]  # fmt: skip
    assert store.count("feedback") == 11


def test_yaml_aliases_are_refused_in_definitions_and_maps():
    """A few hundred bytes of nested YAML aliases expand to gigabytes once built (a 527-byte
    definition gave a 142 MB error reply; a 600-byte one stored 15.8 MB): a survey definition
    and a corridor map sent with an alias are refused, saying where and what to do."""
    from corridor.errors import CorridorMapError
    from corridor.ingest.payload import parse_map

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
        "id: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"  # fmt: skip
    with pytest.raises(SurveyDefinitionError) as e:
        definition.read_document(bomb)
    ((where, says),) = e.value.problems
    assert where == "line 2, column 8" and "aliases (*a) are not accepted" in says
    with pytest.raises(CorridorMapError, match=r"aliases \(\*a\) are not accepted"):
        parse_map(bomb.encode(), "application/yaml")


def test_versions_change_with_the_content_only(store, ingestor, loaded):
    assert catalog.save(store, loaded) == (1, False)  # the same content: no new version
    changed = definition.parse(delivery(title={"en": "Your delivery", "de": "Ihre Lieferung"}))
    assert catalog.save(store, changed, by="ana") == (2, True)
    assert catalog.get(store, "delivery-pulse").version == 2
    old = catalog.get(store, "delivery-pulse", 1)
    assert old.survey.t(old.survey.title, "en") == "How was your delivery?" and old.latest == 2
    assert [s.survey.id for s in catalog.list_all(store)] == ["delivery-pulse"]
    with pytest.raises(SurveyNotFoundError, match="no version 7"):
        catalog.get(store, "delivery-pulse", 7)
    with pytest.raises(SurveyNotFoundError, match="corridor surveys list"):
        catalog.get(store, "nope")
    elsewhere = definition.parse(delivery(id="elsewhere", touchpoints=["moon_base"]))
    with pytest.raises(SurveyDefinitionError, match="'moon_base' is not a touch point"):
        catalog.save(store, elsewhere)


# -- links ------------------------------------------------------------------------------------
def test_links_keep_only_a_hash_and_refuse_when_expired_revoked_or_unknown(store, loaded):
    now = datetime.now(UTC)
    link, token = links.create(store, "delivery-pulse", person_id="p1", interaction_id="i1",
                               channel="Email", by="ana")  # fmt: skip
    assert link.kind == "personal" and link.touchpoint == "home_delivery" and link.version == 1
    assert link.channel == "email" and link.expires_at - now > timedelta(days=29)
    stored = store.query("SELECT token_hash FROM survey_links")[0][0]
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert links.find(store, token).link_id == link.link_id
    # the token with its last character changed (a random token may end in "A" already)
    altered = token[:-1] + ("B" if token.endswith("A") else "A")
    for unknown in ("x" * 24, "short", "../../etc/passwd", altered):
        with pytest.raises(LinkNotFoundError):
            links.find(store, unknown)
    assert links.refusal(link, now + timedelta(days=31)).reason == "expired"
    revoked = links.revoke(store, link.link_id)
    assert revoked.state_at() == "revoked" and links.refusal(revoked).reason == "revoked"
    with pytest.raises(LinkGoneError, match="withdrawn"):
        responses.open_response(store, revoked, token, language="en")
    anon, _ = links.create(store, "delivery-pulse", anonymous=True, channel="qr")
    assert anon.kind == "anonymous" and anon.expires_at is None and anon.person_id is None
    for bad, says in [
        ({}, "needs the person"),
        ({"anonymous": True, "person_id": "p1"}, "names no person"),
        ({"person_id": "p1", "touchpoint": "checkout"}, "not 'checkout'"),
        ({"person_id": "p1", "language": "fr"}, "speaks en, de"),
        ({"person_id": "p1", "valid_days": 0}, "more than 0"),
        ({"person_id": "p1", "expires_at": now - timedelta(hours=1)}, "in the past"),
        ({"person_id": "p1", "channel": "e mail!"}, "short lower-case label"),
    ]:
        with pytest.raises(SurveyError, match=says):
            links.create(store, "delivery-pulse", **bad)
    assert {k.link_id for k in links.list_links(store, "delivery-pulse")} == {
        link.link_id,
        anon.link_id,
    }


# -- responses --------------------------------------------------------------------------------
def _answer(store, survey, response, page, form, lang="en"):
    given = answers.read_page(survey, page, form, response.answers, lang, check_required=True)
    assert not given.errors, given.errors
    return responses.save(store, response, given.values, page=page)


def test_a_response_is_saved_resumed_and_stored_as_feedback_once(store, ingestor, loaded):
    link, token = links.create(store, "delivery-pulse", person_id="p1", channel="email")
    r = responses.open_response(store, link, token, language="de")
    again = responses.open_response(store, link, token, language="en")
    assert again.response_id == r.response_id and again.language == "de"  # one per link
    r = _answer(store, loaded, r, 1, {"expectation": "9", "experience": "3", "nps": "2"})
    resumed = responses.open_response(store, link, token, language="de")
    assert resumed.answers == {"expectation": 9, "experience": 3, "nps": 2}
    assert resumed.started_at is not None and resumed.saved_at is not None
    r = _answer(store, loaded, resumed, 2, {"what_went_wrong": "Late, call +49 170 1234567",
                                            "issue": "late"})  # fmt: skip
    done = responses.submit(store, ingestor, r, loaded)
    assert done.state == responses.SUBMITTED and done.feedback_id == f"survey-{r.response_id}"
    # a retried submit (a lost reply) and the recovery store nothing twice
    responses.submit(store, ingestor, r, loaded)
    assert responses.recover(store, ingestor) == 0
    rows = store.query(
        "SELECT feedback_id, person_id, touchpoint, source, expectation, experience, nps, text, "
        "attributes FROM feedback"
    )
    assert len(rows) == 1
    fid, person, tp, source, exp, got, nps, text, attrs = rows[0]
    assert fid == done.feedback_id
    assert (person, tp, source, exp, got, nps) == ("p1", "home_delivery", "survey", 9, 3, 2)
    assert text == "Late, call [PHONE]"  # redacted by the ingest
    attrs = catalog.as_json(attrs)
    assert attrs == {"survey_id": "delivery-pulse", "survey_version": 1,
                     "survey_response": r.response_id, "survey_language": "de",
                     "survey_channel": "email", "delivery_issue": "late"}  # fmt: skip
    assert links.get(store, link.link_id).state_at() == "used"
    with pytest.raises(LinkGoneError, match="answered already"):
        responses.open_response(store, links.find(store, token), token, language="en")
    # the gap analysis counts it at its touch point
    ingestor.refresh_rollup()
    (row,) = [r for r in gap_table(store, by=["touchpoint"]).to_records()
              if r["touchpoint"] == "home_delivery"]  # fmt: skip
    assert row["n"] == 1 and row["mean_gap"] == pytest.approx(-6)


def test_a_response_keeps_its_version(store, ingestor, loaded):
    link, token = links.create(store, "delivery-pulse", person_id="p2")
    r = responses.open_response(store, link, token, language="en")
    catalog.save(store, definition.parse(delivery(thanks="Cheers")))
    assert catalog.get(store, "delivery-pulse").version == 2
    r = responses.open_response(store, link, token, language="en")
    assert r.version == 1
    r = _answer(store, loaded, r, 1, {"experience": "8"})
    responses.submit(store, ingestor, r, loaded)
    attrs = catalog.as_json(store.query("SELECT attributes FROM feedback")[0][0])
    assert attrs["survey_version"] == 1


def test_a_crash_mid_submit_loses_nothing_and_stores_once(store, small_map, loaded, monkeypatch):
    ing = Ingestor(store)
    link, token = links.create(store, "delivery-pulse", person_id="p3")
    r = responses.open_response(store, link, token, language="en")
    r = _answer(store, loaded, r, 1, {"experience": "6", "expectation": "7"})

    def dies(*args, **kwargs):
        raise RuntimeError("the server died")

    monkeypatch.setattr(ing, "ingest", dies)
    with pytest.raises(RuntimeError):
        responses.submit(store, ing, r, loaded)
    # acknowledged: the link is used and the answer kept, though no feedback yet
    row = store.query("SELECT state, record FROM survey_responses")[0]
    assert row[0] == responses.SUBMITTING and catalog.as_json(row[1])["experience"] == 6
    assert store.count("feedback") == 0 and links.get(store, link.link_id).state_at() == "used"
    monkeypatch.undo()
    # died after the feedback was stored but before the row was marked: recovery repeats it
    real = ing.ingest
    calls = []

    def stores_then_dies(*args, **kwargs):
        calls.append(1)
        report = real(*args, **kwargs)
        if len(calls) == 1:
            raise RuntimeError("died after the commit")
        return report

    monkeypatch.setattr(ing, "ingest", stores_then_dies)
    with pytest.raises(RuntimeError):
        responses.recover(store, ing)
    assert store.count("feedback") == 1
    assert responses.recover(store, ing) == 1  # the restart finishes it
    assert store.count("feedback") == 1 and responses.recover(store, ing) == 0
    assert responses.get(store, r.response_id).state == responses.SUBMITTED
    ing.close()


def test_a_double_submit_at_once_stores_one_record(store, ingestor, loaded):
    from concurrent.futures import ThreadPoolExecutor

    link, token = links.create(store, "delivery-pulse", person_id="p4")
    r = responses.open_response(store, link, token, language="en")
    r = _answer(store, loaded, r, 1, {"experience": "5", "expectation": "5"})
    barrier = threading.Barrier(4)

    def send(_: int) -> str:
        barrier.wait()
        return responses.submit(store, ingestor, r, loaded).state

    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(send, range(4)))
    assert states == [responses.SUBMITTED] * 4
    assert store.query("SELECT count(*), min(feedback_id) FROM feedback") == [
        (1, f"survey-{r.response_id}")
    ]
    batches = store.query("SELECT sum(accepted) FROM ingest_batches WHERE kind = 'feedback'")
    assert batches == [(1,)]  # handed to the ingest once


def test_anonymous_links_take_many_responses(store, ingestor, loaded):
    link, token = links.create(store, "delivery-pulse", anonymous=True, channel="qr")
    first = responses.open_response(store, link, token, language="en")
    second = responses.open_response(store, link, token, language="en")
    assert first.response_id != second.response_id
    resumed = responses.open_response(store, link, token, form_token=first.form_token,
                                      language="en")  # fmt: skip
    assert resumed.response_id == first.response_id
    assert responses.find_by_form(store, link, "forged") is None
    for r, score in ((first, "9"), (second, "4")):
        r = _answer(store, loaded, r, 1, {"experience": score})
        responses.submit(store, ingestor, r, loaded)
    rows = store.query("SELECT person_id, touchpoint FROM feedback ORDER BY feedback_id")
    assert rows == [(None, "home_delivery"), (None, "home_delivery")]
    assert links.get(store, link.link_id).state_at() == "active"
    # a submitted response's form token starts a new response, never reopens the old one
    after = responses.open_response(store, link, token, form_token=first.form_token, language="en")
    assert after.response_id not in (first.response_id, second.response_id)


def test_unfinished_responses_are_sent_as_they_are_when_the_survey_allows(store, ingestor):
    from corridor.loop.scheduler import JobContext
    from corridor.settings import Settings
    from corridor.surveys import upkeep

    catalog.save(store, definition.parse(delivery(partial_after_days=3)))
    survey = catalog.get(store, "delivery-pulse").survey
    assert survey.partial_after_days == 3
    now = datetime.now(UTC)
    made = {p: links.create(store, "delivery-pulse", person_id=p) for p in ("a", "b", "c", "d")}
    opened = {p: responses.open_response(store, link, token, language="en")
              for p, (link, token) in made.items()}  # fmt: skip
    old = now - timedelta(days=4)
    responses.save(store, opened["a"], {"experience": 2}, page=1, now=old)  # abandoned
    responses.save(store, opened["b"], {"experience": 9}, page=1, now=now)  # still going
    # "c" opened but never answered; "d" answered, abandoned, then its link withdrawn
    responses.save(store, opened["d"], {"experience": 4}, page=1, now=old)
    links.revoke(store, made["d"][0].link_id)
    ctx = JobContext(store, Settings(), "test", threading.Event())
    assert "1 unfinished one(s) sent" in upkeep.responses_job(ctx)
    rows = store.query("SELECT person_id, experience, attributes FROM feedback")
    assert [(r[0], r[1]) for r in rows] == [("a", 2)]
    assert catalog.as_json(rows[0][2])["survey_partial"] is True
    assert upkeep.responses_job(ctx) is None  # nothing more to do
    assert links.get(store, made["a"][0].link_id).state_at() == "used"
    # a survey that does not allow it keeps unfinished answers open
    catalog.save(store, definition.parse(delivery()))
    link, token = links.create(store, "delivery-pulse", person_id="e")
    r = responses.open_response(store, link, token, language="en")
    responses.save(store, r, {"experience": 1}, page=1, now=now - timedelta(days=30))
    assert responses.send_abandoned(store, ingestor) == 0


def test_a_record_the_ingest_refuses_is_kept_with_the_reason(store, ingestor, loaded, caplog):
    from conftest import SMALL_MAP
    from corridor.domain.corridor_map import CorridorMap

    link, token = links.create(store, "delivery-pulse", person_id="p5")
    r = responses.open_response(store, link, token, language="en")
    r = _answer(store, loaded, r, 1, {"experience": "4"})
    # the touch point leaves the corridor map while the customer answers
    smaller = {**SMALL_MAP, "touchpoints": [t for t in SMALL_MAP["touchpoints"]
                                            if t["key"] != "home_delivery"]}  # fmt: skip
    ingestor.load_map(CorridorMap.from_dict(smaller), force=True)
    done = responses.submit(store, ingestor, r, loaded)
    assert done.state == responses.REJECTED and "touchpoint" in done.error
    assert store.count("feedback") == 0 and "refused by the ingest" in caplog.text
    # the answers are kept with the response, and nothing is retried
    assert responses.get(store, r.response_id).answers["experience"] == 4
    assert responses.recover(store, ingestor) == 0


def test_the_example_in_the_docs_is_a_valid_definition():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "surveys.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    survey = definition.parse(definition.read_document(block))
    assert survey.id == "delivery-pulse" and survey.partial_after_days == 7
    assert survey.question("issue").attribute == "delivery_issue"
    assert definition.parse(delivery()).questions == survey.questions


def test_first_visits_of_a_personal_link_at_once_make_one_response(store, ingestor, loaded):
    """Eight first visits of one personal link at the same moment (each thread writing beside
    the main writer on a connection of its own): one response row, and every visit continues
    it."""
    from concurrent.futures import ThreadPoolExecutor

    link, token = links.create(store, "delivery-pulse", person_id="p5")
    barrier = threading.Barrier(8)

    def visit(_: int) -> str:
        barrier.wait()
        return responses.open_response(store, link, token, language="en").response_id

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(visit, range(8)))
    assert len(ids) == 1
    assert store.query("SELECT count(*) FROM survey_responses") == [(1,)]
