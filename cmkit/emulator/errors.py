"""The one exception emulator code raises to answer a request with an API error response.

Named `ErrorResponse`, not `ApiError`: that is the client's error (`cmkit.api.client.ApiError`),
what cmkit raises when an API (DataRobot's or the emulator's) answers with one of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class ErrorBody(TypedDict, total=False):
    """DataRobot's error document: a message, and per-field reasons when there are some."""

    message: str
    errors: dict[str, Any]


class ErrorResponse(Exception):
    """An error response: `status` with the JSON body `{"message", "errors"?}` DataRobot sends."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers or {})

    def body(self) -> ErrorBody:
        body = ErrorBody(message=self.message)
        if self.errors:
            body["errors"] = self.errors
        return body


def not_found(what: str, ident: str) -> ErrorResponse:
    return ErrorResponse(404, f"{what} {ident} not found")


def invalid(message: str, errors: Mapping[str, Any] | None = None) -> ErrorResponse:
    return ErrorResponse(422, message, errors)
