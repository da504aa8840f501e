"""The surveys' errors: each says what is wrong and what to do next."""

from __future__ import annotations

from corridor.errors import CorridorError


class SurveyError(CorridorError, ValueError):
    """A survey definition, link or response that cannot be used as given."""

    status_code = 422


class SurveyDefinitionError(SurveyError):
    """A definition that does not validate; ``problems`` lists each one as (where, what to do)."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        #: every problem (the message shows the first ten), for the API's ``details``
        self.details = [{"loc": [where], "message": what} for where, what in problems]
        shown = "; ".join(f"{where}: {what}" for where, what in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{source} is not a valid survey definition: {shown}{more}")


class SurveyNotFoundError(SurveyError):
    status_code = 404


class LinkNotFoundError(SurveyError):
    """No link with this token or id (never said which: a token is a secret)."""

    status_code = 404


class LinkGoneError(SurveyError):
    """A link that worked once and no longer does: expired, revoked or already answered."""

    status_code = 410

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        #: expired, revoked or used
        self.reason = reason


class FormTokenError(SurveyError):
    """A form post without the token of the form it claims to answer (a forged or stale post)."""

    status_code = 403
