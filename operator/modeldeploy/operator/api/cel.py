"""CEL validation rules (`x-kubernetes-validations`) attached to the pydantic API types.

The API server evaluates these rules itself, so a bad ModelDeployment is rejected by
`kubectl apply` with the rule's message. Every rule is also enforced in Python by a pydantic
validator next to it (the unit tests check both sides reject the same specs).

- On a field: `Annotated[T, CelRule("self > 0", "must be positive")]`.
- On a model: `__cel_rules__ = (CelRule(...), ...)` in a subclass of `ApiModel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

VALIDATIONS_KEY = "x-kubernetes-validations"


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry: a CEL expression over `self` and the message shown to users."""

    rule: str
    message: str
    field_path: str | None = None
    """Optional JSON path (relative to `self`) the API server reports the error on, e.g. `.steps`."""

    def as_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        target.setdefault(VALIDATIONS_KEY, []).append(self.as_schema())
        return schema


@dataclass(frozen=True, eq=False)  # identity hash: `values` is a dict
class SchemaExtra:
    """Extra OpenAPI keywords for a field's schema, e.g. list bounds the pydantic type cannot express."""

    values: dict[str, Any]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        handler.resolve_ref_schema(schema).update(self.values)
        return schema


class ApiModel(BaseModel):
    """Base of every API type: camelCase JSON names, snake_case Python names, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=False,
    )

    __cel_rules__: ClassVar[tuple[CelRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.__cel_rules__:
            target = handler.resolve_ref_schema(schema)
            target[VALIDATIONS_KEY] = [rule.as_schema() for rule in cls.__cel_rules__]
        return schema


def cel_raw_string(text: str) -> str:
    """`text` as a CEL raw string literal (backslashes kept as they are), e.g. for a regular expression."""
    for quote in ("'", '"'):
        if quote not in text and "\n" not in text:
            return f"r{quote}{text}{quote}"
    raise ValueError(f"cannot write {text!r} as a CEL raw string: it contains both quote characters")


@dataclass(frozen=True)
class Matches:
    """A string must match `pattern`; checked in Python and by a CEL rule with a readable `message`.

    Used instead of an OpenAPI `pattern`, whose error shows users the regular expression.
    """

    pattern: str
    message: str

    def check(self, value: str) -> str:
        if not re.search(self.pattern, value):
            raise ValueError(f"{self.message}, got {value!r}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        rule = CelRule(f"self.matches({cel_raw_string(self.pattern)})", self.message)
        return rule.__get_pydantic_json_schema__(schema, handler)
