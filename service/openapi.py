"""The OpenAPI document for Tocsin's own API, generated from the pydantic models it validates with."""
from __future__ import annotations

from typing import Any

from .events import DetectorEvent


def _err() -> dict[str, Any]:
    return {"description": "Invalid input: the reason and the path of each bad field",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document() -> dict[str, Any]:
    ev = DetectorEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = ev.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tocsin", "version": "0.1.0",
                 "description": "Alertmanager-compatible alert router that rings once per incident."},
        "paths": {
            "/api/v1/events": {"post": {
                "summary": "Send detector outputs (one event or a list)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                    {"$ref": "#/components/schemas/DetectorEvent"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/DetectorEvent"}}]}}}},
                "responses": {"200": {"description": "Stored durably"}, "400": _err(), "401": _err(),
                              "503": {"description": "State store unavailable; retry"}}}},
            "/api/v2/alerts": {"post": {
                "summary": "Alertmanager API v2: post alerts (what Prometheus sends)",
                "responses": {"200": {"description": "Stored durably"}, "400": _err(), "503": {"description": "Retry"}}}},
            "/api/v1/alertmanager": {"post": {
                "summary": "Receive an Alertmanager webhook (version 4)",
                "responses": {"200": {"description": "Stored durably"}, "400": _err(), "503": {"description": "Retry"}}}},
        },
        "components": {"schemas": {
            "DetectorEvent": ev, **defs,
            "Error": {"type": "object", "properties": {
                "code": {"type": "integer"}, "message": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "message": {"type": "string"}}}}}},
        }},
    }
