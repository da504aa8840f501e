"""The parameters of an alert rule's definition, declared once: the API's request body
(:class:`RuleDefinition`, with its bounds and descriptions in ``/openapi.json``), the checks
:func:`corridor.loop.rules.check` runs on every path (API, CLI, pages, library: :data:`NUMBERS`,
:func:`check_value`, :func:`check_name`), and the options of ``corridor rules add``
(:mod:`corridor.cli.rules`, from :func:`parameters`) all come from here; and the building
blocks of the loop's other request bodies (:mod:`corridor.api.routes.case_models`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from corridor.domain.plain_text import has_control


def printable(value: str) -> str:
    if has_control(value, lines=True):
        raise ValueError("control characters are not allowed")
    return value


#: a short name: printable, at most 200 characters
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable)]
Names = Annotated[list[Name], Field(max_length=200)]
Period = Literal["day", "week", "month", "quarter"]
#: feedback fields a score rule can watch (gap: experience − expectation)
ScoreField = Literal["expectation", "experience", "gap", "nps", "csat", "ces", "emotion"]
SCORE_FIELDS: tuple[str, ...] = get_args(ScoreField)
#: what a record rule alerts once per cooldown: a customer at a touch point, a touch point, or
#: every record
Per = Literal["customer", "touchpoint", "record"]
PER: tuple[str, ...] = get_args(Per)
DURATION = r"^\s*\d{1,9}(\.\d{1,6})?\s*[smhdw]?\s*$"
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


def option(description: str, **constraints: Any) -> Any:
    """An optional field of a request body: None unless given, ``description`` and
    ``constraints`` (bounds, a pattern) in the schema."""
    return Field(default=None, description=description, **constraints)


class RuleDefinition(BaseModel):
    """What the rule watches; each kind takes some of these (the others are refused)."""

    model_config = STRICT

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """JSON's true and false are not numbers (pydantic would read them as 1 and 0)."""
        field = cls.model_fields[info.field_name or ""]
        if isinstance(value, bool) and _core(field.annotation) in (int, float):
            raise ValueError("must be a number, not true or false")
        return value

    max_nps: float | None = option("detractor: NPS at most this (default 6)", ge=0, le=10)
    field: ScoreField | None = option(
        "score_below: the feedback field (gap: experience − expectation)"
    )
    below: float | None = option("score_below, threshold, forecast: fires under this")
    above: float | None = option("threshold, forecast: fires over this")
    per: Per | None = option(
        "record rules: alert once per cooldown per customer at a touch point "
        "(default), per touch point, or every record"
    )
    max_age: str | None = option(
        "record rules: records older than this when they arrive do not fire (default 7d)",
        pattern=DURATION,
    )
    promises: Names | None = option("broken_promise: only these promise keys")
    intents: list[Literal["complaint", "praise", "suggestion", "question"]] | None = option(
        "text: texts of these intents"
    )
    themes: Names | None = option("text: texts of these themes (ids or labels)")
    jump: float | None = option(
        "churn_jump: rise of the customer's churn risk since the last scoring "
        "(absolute probability, default 0.15)",
        gt=0,
        le=1,
    )
    min_risk: float | None = option(
        "churn_jump: churn risk at least this after the rise (default 0.4)", ge=0, le=1
    )
    measure: Literal["gap", "nps", "csat", "ces", "feedback", "interactions"] | None = option(
        "forecast: what is forecast (default gap)"
    )
    ratio: float | None = option(
        "forecast: fires when the forecast reaches this multiple of the last "
        "observed period (2: doubles, 0.5: halves)",
        gt=0,
        le=1e6,
    )
    horizon: int | None = option("forecast: periods ahead (default 2)", ge=1, le=24)
    bound: Literal["point", "interval"] | None = option(
        "forecast: read the point forecast (default) or the far side of the 80 % "
        "interval (the whole band beyond the line)"
    )
    min_periods: int | None = option(
        "forecast: periods observed in a group's series for it to fire (default 6)", ge=2, le=1000
    )
    analysis: Name | None = option("threshold, change: a registered analysis")
    column: Name | None = option("threshold, change: its result column")
    direction: Literal["down", "up", "any"] | None = option(
        "change, drift, ripple: which way counts"
    )
    alpha: float | None = option(
        "change, drift, ripple: significance level (p, adjusted p or q below it)", gt=0, le=0.5
    )
    min_n: int | None = option(
        "threshold, change: records needed in the group and period; forecast: "
        "records the group's series rests on",
        ge=0,
        le=10**9,
    )
    period: Period | None = option("threshold, change, drift, forecast: the period")
    lookback: int | None = option(
        "threshold, change: complete periods read at each scheduled run (default 1)", ge=1, le=104
    )
    by: Names | None = option("threshold, change, drift, forecast: grouping dimensions")
    params: dict[Name, float | bool | Name | Names] | None = option(
        "threshold, change: further parameters of the analysis"
    )


class Bounds(NamedTuple):
    """Where a number of a definition may lie: ``low`` and ``high`` (None: no bound), each
    included unless ``open_low`` / ``open_high``."""

    low: float | None
    high: float | None
    open_low: bool = False
    open_high: bool = False

    def admits(self, v: float) -> bool:
        low, high = self.low, self.high
        if low is not None and (v <= low if self.open_low else v < low):
            return False
        return high is None or (v < high if self.open_high else v <= high)

    def words(self) -> str:
        low = "" if self.low is None else f"{'(' if self.open_low else '['}{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}{')' if self.open_high else ']'}"
        if low and high:
            return f"lie in {low}, {high}"
        if low:
            return f"be {'over' if self.open_low else 'at least'} {self.low:g}"
        return f"be {'under' if self.open_high else 'at most'} {self.high:g}" if high else ""


def _bounds(metadata: list[Any]) -> Bounds:
    """The bounds among a field's constraints (``annotated_types``' Ge, Gt, Le and Lt)."""
    b = Bounds(None, None)
    for m in metadata:
        if getattr(m, "ge", None) is not None:
            b = b._replace(low=float(m.ge))
        elif getattr(m, "gt", None) is not None:
            b = b._replace(low=float(m.gt), open_low=True)
        elif getattr(m, "le", None) is not None:
            b = b._replace(high=float(m.le))
        elif getattr(m, "lt", None) is not None:
            b = b._replace(high=float(m.lt), open_high=True)
    return b


def _core(annotation: Any) -> Any:
    """The type under ``X | None`` and ``Annotated[X, ...]``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    core = args[0] if args and type(None) in get_args(annotation) else annotation
    while hasattr(core, "__metadata__"):
        core = get_args(core)[0]
    return core


#: the numbers of a definition (int or float) and their bounds
NUMBERS: dict[str, Bounds] = {
    name: _bounds(f.metadata)
    for name, f in RuleDefinition.model_fields.items()
    if _core(f.annotation) in (int, float)
}


#: each parameter's type with its constraints, to check one value as the API body would
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(Annotated[f.annotation, f])  # type: ignore[arg-type]
    for name, f in RuleDefinition.model_fields.items()
}


def shown(value: Any) -> str:
    """``value`` for a message: at most 60 characters of it."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}… ({len(text)} characters)"


def check_value(key: str, value: Any) -> Any:
    """``value`` of the definition's ``key`` as the declaration takes it (a whole number, one
    of the allowed values, a list of printable names of at most 200 characters...), converted
    as the API body converts it; :class:`ValueError` saying what is wrong otherwise. A key the
    declaration does not have is left to the caller (a kind refuses keys it does not take)."""
    if key not in _ADAPTERS:
        return value
    try:
        return _ADAPTERS[key].validate_python(value)
    except ValidationError as e:
        err = e.errors()[0]
        kind, where = err["type"], "".join(f"[{i}]" for i in err["loc"])
        if kind.startswith("int_"):
            raise ValueError(f"{key} must be a whole number, got {shown(value)}") from None
        if kind == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            raise ValueError(f"{key} must be one of {allowed}, got {shown(value)}") from None
        if kind in ("list_type", "dict_type"):
            what = "a list of names" if kind == "list_type" else "an object of NAME: VALUE"
            raise ValueError(f"{key} must be {what}, got {shown(value)}") from None
        said = str(err["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{key}{where}: {said[:1].lower()}{said[1:]}") from None


_NAME: TypeAdapter[str] = TypeAdapter(Name)


def check_name(label: str, value: Any) -> str:
    """``value`` if it is a name as the API takes one (printable, 1-200 characters);
    :class:`ValueError` saying what is wrong, about ``label``, otherwise."""
    try:
        return _NAME.validate_python(value)
    except ValidationError as e:
        said = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{label}: {said[:1].lower()}{said[1:]}, got {shown(value)}") from None


def parameters() -> dict[str, tuple[Any, str]]:
    """Each definition parameter's plain type (``float``, ``int``, ``str``, or ``list[str]`` for
    a list) and its description, with the allowed values of a closed set."""
    out: dict[str, tuple[Any, str]] = {}
    for name, f in RuleDefinition.model_fields.items():
        core = _core(f.annotation)
        listed = getattr(core, "__origin__", None) is list
        item = _core(get_args(core)[0]) if listed else core
        kind: Any = core if core in (int, float) else (list[str] if listed else str)
        words = f.description or ""
        if getattr(item, "__origin__", None) is Literal:
            words += f"; one of {', '.join(get_args(item))}"
        if getattr(core, "__origin__", None) is not dict:  # (params: NAME=VALUE, not generated)
            out[name] = (kind, words)
    return out
