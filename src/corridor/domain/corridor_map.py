"""The corridor map: stages in order, touch points per stage with channels, owner and promises."""

from __future__ import annotations

import re
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corridor.domain import yaml_text
from corridor.domain.contract import CHANNELS, DEPARTMENTS, PROMISE_SOURCES, STAGES
from corridor.errors import CorridorMapError

_KEY = r"^[a-z0-9][a-z0-9_\-]*$"
_TARGET = re.compile(r"^\s*(<=|>=|<|>|==|=)\s*(-?\d+(?:\.\d+)?)\s*$")


class Promise(BaseModel):
    """A measurable brand promise at a touch point, e.g. checkout within 3 minutes."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_KEY, description="unique promise key")
    metric: str = Field(min_length=1, description="an interaction attribute or feedback field")
    target: str = Field(description="comparison and number, e.g. '<= 3' or '>= 7'")
    source: Literal["advertising", "sales", "service", "reviewers", "peers", "history"] = Field(
        description=f"who made the promise: {', '.join(PROMISE_SOURCES)}"
    )
    description: str | None = None

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if not _TARGET.match(v):
            raise ValueError("target must be a comparison and a number, e.g. '<= 3' or '>= 7'")
        return v.strip()

    @property
    def operator(self) -> str:
        m = _TARGET.match(self.target)
        assert m
        return "==" if m.group(1) == "=" else m.group(1)

    @property
    def threshold(self) -> float:
        m = _TARGET.match(self.target)
        assert m
        return float(m.group(2))


class Touchpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_KEY, description="unique key referenced by records")
    name: str = Field(min_length=1)
    stage: str
    channels: list[str] = Field(min_length=1)
    department: str
    promises: list[Promise] = Field(default_factory=list)
    description: str | None = None

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        out = [c.strip().lower() for c in v]
        if len(set(out)) != len(out):
            raise ValueError("channels must not repeat")
        return out

    @field_validator("department", "stage")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.strip().lower()


class CorridorMap(BaseModel):
    """Stages from the moment a need arises until it is extinct, and the touch points in each."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] = Field(default_factory=lambda: list(STAGES), min_length=1)
    touchpoints: list[Touchpoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CorridorMap:
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("stages must not repeat")
        keys: set[str] = set()
        promise_keys: set[str] = set()
        for i, tp in enumerate(self.touchpoints):
            where = f"touchpoints[{i}] ({tp.key})"
            if tp.key in keys:
                raise ValueError(f"{where}: touch point key {tp.key!r} is used twice")
            keys.add(tp.key)
            if tp.stage not in self.stages:
                raise ValueError(
                    f"{where}: stage {tp.stage!r} is not one of the stages: "
                    + ", ".join(self.stages)
                )
            for p in tp.promises:
                if p.key in promise_keys:
                    raise ValueError(f"{where}: promise key {p.key!r} is used twice")
                promise_keys.add(p.key)
        return self

    # -- vocabularies ---------------------------------------------------------------------
    @property
    def touchpoint_keys(self) -> list[str]:
        return [t.key for t in self.touchpoints]

    @property
    def channels(self) -> list[str]:
        """The standard channels plus any the map adds."""
        seen = list(CHANNELS)
        for tp in self.touchpoints:
            seen.extend(c for c in tp.channels if c not in seen)
        return seen

    @property
    def departments(self) -> list[str]:
        """The standard departments plus any the map adds."""
        seen = list(DEPARTMENTS)
        for tp in self.touchpoints:
            if tp.department not in seen:
                seen.append(tp.department)
        return seen

    def unknown(self, kind: Literal["department", "touchpoint"], value: str) -> str | None:
        """None when ``value`` is one of the map's departments (or touch point keys); else the
        sentence that says so, with the closest one ("did you mean") and the known ones."""
        known = self.departments if kind == "department" else [t.key for t in self.touchpoints]
        if value in known:
            return None
        near = [k for k in known if k.lower() == value.strip().lower()] or get_close_matches(
            value, known, n=1, cutoff=0.75
        )
        hint = f"did you mean {near[0]!r}? " if near else ""
        label = "touch point" if kind == "touchpoint" else kind
        return f"no {label} {value!r} in the corridor map; {hint}known: {', '.join(sorted(known))}"

    def touchpoint(self, key: str) -> Touchpoint:
        for tp in self.touchpoints:
            if tp.key == key:
                return tp
        raise KeyError(key)

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "corridor map") -> CorridorMap:
        if not isinstance(data, dict):
            raise CorridorMapError(
                f"{source}: expected a mapping with 'stages' and 'touchpoints', got "
                f"{type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
                for err in e.errors()
            )
            raise CorridorMapError(f"{source} is not a valid corridor map: {problems}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> CorridorMap:
        p = Path(path)
        if not p.exists():
            raise CorridorMapError(f"corridor map file {str(p)!r} does not exist")
        raw = p.read_bytes()
        if not raw.strip():
            raise CorridorMapError(f"corridor map file {str(p)!r} is empty")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CorridorMapError(f"{p}: not valid UTF-8 at byte {e.start}") from None
        try:
            data = orjson.loads(text) if p.suffix.lower() == ".json" else yaml_text.load(text)
        except (orjson.JSONDecodeError, yaml.YAMLError) as e:
            raise CorridorMapError(f"{p}: cannot parse: {e}") from None
        return cls.from_dict(data, source=str(p))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False)
