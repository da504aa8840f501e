"""The public survey pages and the survey API over HTTP (issue 15): a personal link answered
page by page, saved, resumed elsewhere, submitted once (a retried post stores nothing twice) and
counted by the gap analysis; anonymous links; languages; bad input answered with a clear page or
a 4xx, never a 500; strict headers; the rate limit."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from fastapi.testclient import TestClient

from corridor.analytics.feedback.gaps import gap_table
from corridor.api.app import create_app
from corridor.settings import Settings
from corridor.surveys import catalog, definition, links, responses
from corridor.web.survey_pages import LinkLimiter
from survey_fixtures import delivery

OWN = {"origin": "http://testserver"}


@pytest.fixture
def app(store, ingestor):
    catalog.save(store, definition.parse(delivery()), by="ana")
    return create_app(Settings(auth="off", scheduler="off"), store=store)


@pytest.fixture
def personal(store, app):
    _, token = links.create(store, "delivery-pulse", person_id="p1", interaction_id="i1",
                            channel="email")  # fmt: skip
    return token


def form_token(page: str) -> str:
    return re.search(r'name="form" value="([^"]+)"', page).group(1)


def checked(page: str) -> dict[str, str]:
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]+)" checked', page))


def post(c: TestClient, token: str, page: str, n: int, action: str, **answers: str):
    data = {"form": form_token(page), "page": str(n), "action": action, **answers}
    return c.post(f"/s/{token}", data=data, headers=OWN, follow_redirects=False)


# -- the flow ---------------------------------------------------------------------------------
def test_a_personal_link_is_answered_saved_resumed_and_submitted_once(store, app, personal):
    token = personal
    with TestClient(app) as c:
        first = c.get(f"/s/{token}", headers={"accept-language": "de-CH, en;q=0.5"})
        assert first.status_code == 200 and '<html lang="de">' in first.text
        assert "Wie war Ihre Lieferung?" in first.text and "Seite 1 von 2" in first.text
        # every field labelled: a legend per group of options, a label per option
        assert first.text.count("<legend>") == 3
        for qid, n in (("expectation", 11), ("experience", 11), ("nps", 11)):
            for i in range(1, n + 1):
                assert f'<label for="q-{qid}-{i}">' in first.text
        # out of range and a missing required answer: 422, each error by its field, nothing
        # valid lost
        bad = post(c, token, first.text, 1, "next", expectation="11", nps="9")
        assert bad.status_code == 422
        assert 'aria-describedby="err-expectation"' in bad.text
        said = '<p id="err-expectation" class="field-error">Wählen Sie eine Zahl von 0 bis 10.'
        assert said in bad.text
        assert '<p id="err-experience" class="field-error">Bitte beantworten' in bad.text
        assert 'href="#q-expectation"' in bad.text and checked(bad.text) == {"nps": "9"}
        second = post(c, token, bad.text, 1, "next", expectation="9", experience="3", nps="9")
        assert second.status_code == 200 and "Seite 2 von 2" in second.text
        assert "Was lief schief?" in second.text  # shown: experience is below 5
        saved = post(c, token, second.text, 2, "save", what_went_wrong="Sie kam zu spät.")
        assert saved.status_code == 200 and 'role="status"' in saved.text
        phone = TestClient(app)  # later, on another device: the same link resumes
        again = phone.get(f"/s/{token}?lang=en")
        assert again.status_code == 200 and '<html lang="en">' in again.text
        assert "Page 2 of 2" in again.text and "Sie kam zu spät.</textarea>" in again.text
        back = post(phone, token, again.text, 2, "back", what_went_wrong="It came late.")
        assert "Page 1 of 2" in back.text and checked(back.text) == {
            "expectation": "9", "experience": "3", "nps": "9"}  # fmt: skip
        page2 = post(phone, token, back.text, 1, "next", expectation="9", experience="3", nps="9")
        assert "It came late.</textarea>" in page2.text
        done = post(phone, token, page2.text, 2, "submit", what_went_wrong="It came late.",
                    issue="late")  # fmt: skip
        assert done.status_code == 303 and done.headers["location"] == f"/s/{token}/thanks?lang=en"
        thanks = phone.get(done.headers["location"])
        assert thanks.status_code == 200 and "Thank you for your answers!" in thanks.text
        # a retried post (the reply was lost) is acknowledged again, and stores nothing twice
        retry = post(phone, token, page2.text, 2, "submit", what_went_wrong="Other text")
        assert retry.status_code == 303
        used = phone.get(f"/s/{token}")
        assert used.status_code == 410 and "answered already" in used.text
        assert form_token(page2.text) not in used.text
    rows = store.query("SELECT person_id, interaction_id, touchpoint, expectation, experience, "
                       "nps, text, attributes FROM feedback")  # fmt: skip
    assert len(rows) == 1
    assert rows[0][:7] == ("p1", "i1", "home_delivery", 9, 3, 9, "It came late.")
    assert catalog.as_json(rows[0][7])["delivery_issue"] == "late"
    app.state.ingestor.refresh_rollup()
    (gap,) = [r for r in gap_table(store, by=["touchpoint"]).to_records()
              if r["touchpoint"] == "home_delivery"]  # fmt: skip
    assert gap["n"] == 1 and gap["mean_gap"] == pytest.approx(-6)
    state = store.query("SELECT state, started_at, saved_at, submitted_at FROM survey_responses")
    assert state[0][0] == "submitted" and all(t is not None for t in state[0][1:])


def test_skip_logic_hides_a_question_and_a_last_page_sends(store, app, personal):
    with TestClient(app) as c:
        first = c.get(f"/s/{personal}")
        second = post(c, personal, first.text, 1, "next", experience="9")
        assert "What went wrong?" not in second.text and "Anything in particular?" in second.text
        done = post(c, personal, second.text, 2, "submit", issue="none")
        assert done.status_code == 303
    assert store.query("SELECT experience, text FROM feedback") == [(9, None)]


def test_two_posts_at_once_keep_each_others_answers(store, ingestor, app, personal):
    """The form open in two tabs, both posted at the same moment: each post reads the response,
    then writes its page. Each merges its page into the answers as stored when it writes, not as
    it read them: a save after another's save, and a submit after another's save, keep both
    (the posts' reads made before either writes, as two threads' would be)."""
    link = links.find(store, personal)
    opened = responses.open_response(store, link, personal, language="en")
    tab1 = responses.get(store, opened.response_id)
    tab2 = responses.get(store, opened.response_id)
    responses.save(store, tab2, {"issue": "late"}, page=2)
    responses.save(store, tab1, {"experience": 8, "nps": 9}, page=1)
    (answers,) = store.query("SELECT answers FROM survey_responses")
    assert catalog.as_json(answers[0]) == {"experience": 8, "nps": 9, "issue": "late"}
    tab1 = responses.get(store, opened.response_id)
    tab2 = responses.get(store, opened.response_id)
    responses.save(store, tab1, {"experience": 8, "nps": 10}, page=1)
    survey = catalog.get(store, "delivery-pulse").survey
    merged = responses.merge(tab2, {"issue": "damaged"}, page=2)
    responses.submit(store, ingestor, merged, survey, given={"issue": "damaged"})
    (row,) = store.query("SELECT experience, nps, attributes FROM feedback")
    assert row[:2] == (8, 10) and "damaged" in str(row[2])


def test_anonymous_links_resume_by_cookie_and_take_many_answers(store, app):
    _, token = links.create(store, "delivery-pulse", anonymous=True, channel="qr")
    with TestClient(app) as a:
        b = TestClient(app)  # another visitor (the app runs once: a's)
        pa, pb = a.get(f"/s/{token}"), b.get(f"/s/{token}")
        assert form_token(pa.text) != form_token(pb.text)
        assert "httponly" in pa.headers["set-cookie"].lower()
        post(a, token, pa.text, 1, "save", experience="8")
        resumed = a.get(f"/s/{token}")
        assert form_token(resumed.text) == form_token(pa.text)
        assert checked(resumed.text) == {"experience": "8"}
        for client, page, score in ((a, resumed, "8"), (b, pb, "2")):
            p2 = post(client, token, page.text, 1, "next", experience=score)
            assert post(client, token, p2.text, 2, "submit").status_code == 303
        fresh = a.get(f"/s/{token}")  # the same visitor again: a new response
        assert fresh.status_code == 200 and form_token(fresh.text) != form_token(pa.text)
    assert sorted(r[0] for r in store.query("SELECT experience FROM feedback")) == [2, 8]
    assert store.query("SELECT DISTINCT person_id FROM feedback") == [(None,)]


def test_a_submit_is_answered_once_acknowledged_and_stored_with_others_as_one_group(store, app):
    """The customer waits for the acknowledgement (one transaction), not for the ingest: with
    the finisher held up, three submits are answered 303 and kept ``submitting``; once it runs,
    it stores the three with one ingest."""
    tokens = [links.create(store, "delivery-pulse", person_id=p)[1] for p in ("p1", "p2", "p3")]
    with TestClient(app) as c:
        assert app.state.survey_finisher.wait_idle(timeout=30)
        with responses._finishing:  # the finisher cannot store anything meanwhile
            for k, token in enumerate(tokens):
                first = c.get(f"/s/{token}")
                second = post(c, token, first.text, 1, "next", experience=str(5 + k))
                done = post(c, token, second.text, 2, "submit", issue="none")
                assert done.status_code == 303
            states = store.query("SELECT state FROM survey_responses")
            assert sorted(r[0] for r in states) == ["submitting"] * 3
            assert store.count("feedback") == 0
        assert app.state.survey_finisher.wait_idle(timeout=30)
        assert sorted(r[0] for r in store.query("SELECT experience FROM feedback")) == [5, 6, 7]
        batches = store.query(
            "SELECT accepted FROM ingest_batches WHERE source = 'survey:delivery-pulse'"
        )
        assert batches == [(3,)]
        assert {r[0] for r in store.query("SELECT state FROM survey_responses")} == {"submitted"}


def test_a_server_stores_the_answers_a_crash_left_acknowledged_when_it_starts(store, ingestor, app):
    link, token = links.create(store, "delivery-pulse", person_id="p1")
    survey = catalog.get(store, "delivery-pulse").survey
    r = responses.open_response(store, link, token, language="en")
    r = responses.save(store, r, {"experience": 4}, page=2)
    acked = responses.submit(store, ingestor, r, survey, finish_now=False)
    assert acked.state == responses.SUBMITTING and store.count("feedback") == 0
    with TestClient(app):  # the server starts: its finisher looks first
        assert app.state.survey_finisher.wait_idle(timeout=30)
        assert store.query("SELECT feedback_id, experience FROM feedback") == [
            (acked.feedback_id, 4)
        ]
    assert responses.get(store, r.response_id).state == responses.SUBMITTED


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["duckdb"])
def test_bad_input_gets_a_clear_page_never_a_500(store, app, personal):
    now = datetime.now(UTC)
    expired, expired_token = links.create(store, "delivery-pulse", person_id="p2",
                                          expires_at=now + timedelta(seconds=1))  # fmt: skip
    store.query("UPDATE survey_links SET expires_at = ? WHERE link_id = ?",
                (now - timedelta(days=1), expired.link_id))  # fmt: skip
    revoked, revoked_token = links.create(store, "delivery-pulse", person_id="p3")
    links.revoke(store, revoked.link_id)
    with TestClient(app, raise_server_exceptions=False) as c:
        for unknown in ("nope", "x" * 24, "A" * 65, "%E2%98%83" * 8, "..%2F..%2Fetc"):
            r = c.get(f"/s/{unknown}")
            assert r.status_code == 404 and "not known" in r.text, unknown
            assert c.post(f"/s/{unknown}", data={"a": "b"}, headers=OWN).status_code == 404
        r = c.get(f"/s/{expired_token}", headers={"accept-language": "de"})
        assert r.status_code == 410 and "abgelaufen" in r.text
        r = c.get(f"/s/{revoked_token}")
        assert r.status_code == 410 and "withdrawn" in r.text
        page = c.get(f"/s/{personal}")
        # a language the survey does not speak, or no language at all: the form, 422, the
        # error by the language field
        for wanted in ("fr", "<script>alert(1)</script>", "x" * 500):
            r = c.get(f"/s/{personal}", params={"lang": wanted})
            assert r.status_code == 422 and 'aria-describedby="lang-error"' in r.text
            assert "<script>" not in r.text
        # oversized text, a NUL, a value no option has: the form again with the errors
        p2 = post(c, personal, page.text, 1, "next", experience="2")
        too_long = (("x" * 501, "500 characters (it has 501)"), ("y" * 30_000, "it has 30000"))
        for text, says in (*too_long, ("a\x00b", "cannot be stored")):
            r = post(c, personal, p2.text, 2, "next", what_went_wrong=text, issue="late")
            assert r.status_code == 422 and says in html.unescape(r.text), says
            assert checked(r.text) == {"issue": "late"}  # the valid answer is kept
        r = post(c, personal, p2.text, 2, "next", issue="teleported")
        assert r.status_code == 422 and "Choose one of the options" in r.text
        for junk in ({"page": "abc"}, {"page": "99"}, {"action": "explode"}, {"nps": "1e9"},
                     {"expectation": "-0"}, {"experience": "٣"}):  # fmt: skip
            data = {"form": form_token(page.text), **junk}
            r = c.post(f"/s/{personal}", data=data, headers=OWN)
            assert r.status_code in (200, 422), (junk, r.status_code)
        # no form token, a forged one: refused, nothing saved
        for data in ({"experience": "1"}, {"form": "forged", "experience": "1"}):
            r = c.post(f"/s/{personal}", data=data, headers=OWN)
            assert r.status_code == 403 and "open the survey link again" in r.text
        r = c.post(f"/s/{personal}", content=b"\xff\xfe not a form",
                   headers={**OWN, "content-type": "multipart/form-data; boundary=x"})  # fmt: skip
        assert r.status_code in (400, 403)
        urlencoded = {**OWN, "content-type": "application/x-www-form-urlencoded"}
        r = c.post(f"/s/{personal}", content=b"a=" + b"b" * 1_100_000, headers=urlencoded)
        assert r.status_code == 413 and "too long" in r.text
        # the same sent in chunks, with no length announced: counted as it is read
        chunked = iter([b"a=", *(b"b" * 50_000 for _ in range(22))])
        r = c.post(f"/s/{personal}", content=chunked, headers=urlencoded)
        assert r.status_code == 413 and "too long" in r.text
        # two long answers outside ASCII (form-encoded, 9 bytes a character) are read
        long = "配達" * 7_500
        r = c.post(f"/s/{personal}", data={"form": form_token(page.text), "page": "1",
                                           "action": "save", "experience": "2", "note": long,
                                           "other": long}, headers=OWN)  # fmt: skip
        assert r.status_code == 200
        r = c.post(f"/s/{personal}", files={"f": ("x.txt", b"x")}, headers=OWN)
        assert r.status_code == 400
        # another site's page cannot post (the request-forgery guard)
        r = c.post(f"/s/{personal}", data={"form": form_token(page.text)},
                   headers={"origin": "https://evil.example"})  # fmt: skip
        assert r.status_code == 403
    assert store.count("feedback") == 0
    answers = catalog.as_json(store.query("SELECT answers FROM survey_responses WHERE "
                                          "person_id = 'p1'")[0][0])  # fmt: skip
    assert answers["experience"] == 2 and answers.get("what_went_wrong") is None  # none kept


@pytest.mark.parametrize("engine", ["duckdb"])
def test_pages_send_strict_headers_and_only_the_embed_route_may_be_framed(store, app, personal):
    with TestClient(app) as c:
        for path in (f"/s/{personal}", "/s/unknown-token-here", f"/s/{personal}/thanks"):
            r = c.get(path)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path
            assert "script-src" not in csp and "'unsafe-inline'" not in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "same-origin"
            assert r.headers["cache-control"] == "no-store"
            assert "<script" not in r.text and 'name="robots" content="noindex"' in r.text
        embed = c.get(f"/s/{personal}/embed")
        assert embed.status_code == 200 and "x-frame-options" not in embed.headers
        assert "frame-ancestors *" in embed.headers["content-security-policy"]
        assert f'action="/s/{personal}/embed"' in embed.text
        data = {"form": form_token(embed.text), "page": "1", "experience": "7"}
        p2 = c.post(f"/s/{personal}/embed", headers=OWN, data=data)
        assert p2.status_code == 200
        assert "frame-ancestors *" in p2.headers["content-security-policy"]
        data = {"form": form_token(p2.text), "page": "2", "action": "submit"}
        done = c.post(f"/s/{personal}/embed", headers=OWN, follow_redirects=False, data=data)
        assert done.headers["location"].startswith(f"/s/{personal}/embed/thanks")
        assert c.get(done.headers["location"]).status_code == 200
        assert c.get("/static/survey.css").status_code == 200


@pytest.mark.parametrize("engine", ["duckdb"])
def test_requests_per_link_and_address_are_limited(store, app, personal):
    app.state.survey_limiter = LinkLimiter(limit=3, window_s=60)
    with TestClient(app) as c:
        assert [c.get(f"/s/{personal}").status_code for _ in range(3)] == [200] * 3
        r = c.get(f"/s/{personal}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.post(f"/s/{personal}", data={}, headers=OWN).status_code == 429
    limiter = LinkLimiter(limit=2, window_s=10)
    assert [limiter.wait("l", "a", now=t) for t in (0, 1)] == [0, 0]
    assert limiter.wait("l", "a", now=2) == pytest.approx(8)
    assert limiter.wait("l", "b", now=2) == 0 and limiter.wait("m", "a", now=2) == 0
    assert limiter.wait("l", "a", now=10.5) == 0  # the window moved on
    # random tokens make a pair each: idle ones are forgotten as they go idle, and no more
    # than ``most`` are kept, however many come within a window
    flood = LinkLimiter(limit=2, window_s=10, most=1_000)
    for i in range(5_000):
        assert flood.wait(f"token-{i}", "a", now=20 + i / 1_000) == 0
    assert len(flood._hits) == 1_000
    assert flood.wait("token-4999", "a", now=25) == 0  # kept: its second request of two
    assert flood.wait("token-4999", "a", now=25) > 0
    assert flood.wait("l", "a", now=40) == 0 and len(flood._hits) == 1  # the rest went idle


# -- the API and the admin page ---------------------------------------------------------------
@pytest.mark.parametrize("engine", ["duckdb"])
def test_the_survey_api_loads_lists_shows_and_makes_links(store, app):
    doc = delivery(id="counter", touchpoints=["checkout", "support_call"])
    body = yaml.safe_dump(doc).encode()
    yaml_type = {"content-type": "application/yaml"}
    with TestClient(app) as c:
        r = c.put("/api/v1/surveys/counter", content=body, headers=yaml_type)
        assert r.status_code == 200 and r.json() == {"survey_id": "counter", "version": 1,
                                                     "created": True}  # fmt: skip
        assert c.put("/api/v1/surveys/counter", content=body).json()["created"] is False
        bad = c.put("/api/v1/surveys/counter", json={**doc, "languages": ["en", "??"]})
        assert bad.status_code == 422
        assert "languages[1]" in bad.json()["error"]["message"]
        assert bad.json()["error"]["code"] == "survey_definition"
        # every problem in details, though the message names the first ten
        many = {**doc, "languages": ["en", *(f"?{i}" for i in range(12))]}
        error = c.put("/api/v1/surveys/counter", json=many).json()["error"]
        assert error["message"].endswith(f"(and {len(error['details']) - 10} more)")
        assert [[f"languages[{i}]"] for i in range(1, 13)] == [
            d["loc"] for d in error["details"] if d["loc"][0].startswith("languages")]  # fmt: skip
        r = c.put("/api/v1/surveys/other", json=doc)
        assert r.status_code == 422 and "differs from the URL" in r.text
        listed = c.get("/api/v1/surveys").json()
        assert [s["survey_id"] for s in listed] == ["counter", "delivery-pulse"]
        one = c.get("/api/v1/surveys/counter", params={"version": 1}).json()
        assert one["definition"]["touchpoints"] == ["checkout", "support_call"]
        assert c.get("/api/v1/surveys/counter", params={"version": 9}).status_code == 404
        assert c.get("/api/v1/surveys/nope").status_code == 404
        assert c.get("/api/v1/surveys", params={"colour": "red"}).status_code == 422
        r = c.post("/api/v1/surveys/counter/links", json={"person_id": "p9"})
        assert r.status_code == 422 and "several touch points" in r.text
        made = c.post("/api/v1/surveys/counter/links",
                      json={"person_id": "p9", "touchpoint": "support_call", "language": "de",
                            "valid_days": 7})  # fmt: skip
        assert made.status_code == 201, made.text
        link = made.json()
        assert link["path"] == f"/s/{link['token']}" and link["url"].endswith(link["path"])
        assert link["state"] == "active" and link["language"] == "de"
        page = c.get(link["path"])
        assert page.status_code == 200 and '<html lang="de">' in page.text
        qr = {"anonymous": True, "touchpoint": "checkout", "channel": "qr"}
        anon = c.post("/api/v1/surveys/counter/links", json=qr)
        assert anon.status_code == 201 and anon.json()["expires_at"] is None
        listed = c.get("/api/v1/surveys/counter/links").json()
        assert len(listed) == 2 and all("token" not in k for k in listed)
        revoked = c.post(f"/api/v1/surveys/counter/links/{link['link_id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert c.get(link["path"]).status_code == 410
        assert c.post("/api/v1/surveys/delivery-pulse/links/"
                      f"{link['link_id']}/revoke").status_code == 404  # fmt: skip
        admin = c.get("/admin/surveys")
        assert admin.status_code == 200 and '<td data-label="Survey">counter</td>' in admin.text
        assert admin.text.count('aria-current="page"') == 1
        assert '<a href="/admin/surveys" aria-current="page">Surveys</a>' in admin.text


@pytest.mark.parametrize("engine", ["duckdb"])
def test_only_admins_and_analysts_manage_surveys(store, ingestor):
    from corridor.auth import accounts

    catalog.save(store, definition.parse(delivery()))
    accounts.add_user(store, "lena", "a-long-password-1", "department_head",
                      department="logistics")  # fmt: skip
    accounts.add_user(store, "ana", "a-long-password-2", "analyst")
    app = create_app(Settings(scheduler="off"), store=store)
    lena = {"authorization": f"Bearer {accounts.create_key(store, 'lena')[1]}"}
    ana = {"authorization": f"Bearer {accounts.create_key(store, 'ana')[1]}"}
    with TestClient(app) as c:
        assert c.get("/api/v1/surveys").status_code == 401
        assert c.get("/api/v1/surveys", headers=lena).status_code == 403
        r = c.post("/api/v1/surveys/delivery-pulse/links", json={"person_id": "p1"},
                   headers=lena)  # fmt: skip
        assert r.status_code == 403
        assert c.get("/api/v1/surveys", headers=ana).status_code == 200
        made = c.post("/api/v1/surveys/delivery-pulse/links", json={"person_id": "p1"},
                      headers=ana)  # fmt: skip
        assert made.status_code == 201 and made.json()["created_by"] == "ana"
        # the public page needs no sign-in
        assert c.get(made.json()["path"]).status_code == 200
        assert c.get("/admin/surveys", follow_redirects=False).status_code == 303


def test_the_thanks_page_is_the_answered_versions(store, app, personal):
    """A response sent in German to version 1, then version 2 loaded without German and with
    other thanks: the thank-you page is version 1's, in German."""
    with TestClient(app) as c:
        first = c.get(f"/s/{personal}", headers={"accept-language": "de"})
        second = post(c, personal, first.text, 1, "next", experience="9")
        assert post(c, personal, second.text, 2, "submit", issue="none").status_code == 303
        doc = delivery(languages=["en"], thanks={"en": "Cheers."})
        doc["title"] = {"en": "How was your delivery?"}
        doc["intro"] = {"en": "Two short pages."}
        for q in doc["questions"]:
            q["text"] = {"en": q["text"]["en"]}
            q.pop("min_label", None), q.pop("max_label", None)
            for choice in q.get("choices", ()):
                choice["label"] = {"en": choice["label"]["en"]}
        catalog.save(store, definition.parse(doc), by="ana")
        thanks = c.get(f"/s/{personal}/thanks?lang=de")
    assert thanks.status_code == 200 and "Danke für Ihre Antworten!" in thanks.text


def test_an_empty_language_in_the_address_asks_for_none(store, app, personal):
    """``?lang=`` left empty (a link template filled with nothing) shows the form in the
    language the browser asks for, as without it, not a page saying the language is unknown."""
    with TestClient(app) as c:
        page = c.get(f"/s/{personal}?lang=", headers={"accept-language": "de"})
    assert page.status_code == 200 and "Wie war Ihre Lieferung?" in page.text
