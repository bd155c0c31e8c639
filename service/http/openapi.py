"""The OpenAPI document for Tocsin's own doors: the detector events schema is generated from the pydantic model
it validates with; the Alertmanager-shaped bodies (postable alerts, the webhook v4 payload, gettable alerts)
are written out here as Alertmanager's api/v2/openapi.yaml defines them. Every status an operation can answer
is listed (schemathesis in tests/test_properties_openapi.py holds the server to it). The rest of
Alertmanager's API v2 (silences, status, receivers) is Alertmanager's own document."""
from __future__ import annotations

from typing import Any

from service.ingest.events import DetectorEvent

_REF_ERR = {"$ref": "#/components/schemas/Error"}


def _err(description: str = "Invalid input: the reason and the path of each bad field") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _REF_ERR}}}


def _write_responses() -> dict[str, Any]:
    return {
        "200": {"description": "Stored durably (valid items of a batch are stored even when others are rejected)"},
        "400": _err(),
        "401": _err("Missing or invalid bearer token"),
        "403": _err("A cross-site request (foreign Origin or Sec-Fetch-Site)"),
        "413": {"description": "Body larger than tocsin.max_body_bytes"},
        "415": _err("Content-Type is not application/json"),
        "429": _err("Overloaded: retry after Retry-After seconds"),
        "503": _err("State store unavailable or overloaded: retry (Retry-After)"),
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_LABELS = {"type": "object", "additionalProperties": {"type": "string"},
           "description": "Label names match [a-zA-Z_][a-zA-Z0-9_]*; an empty value drops the label"}
_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, years 0001-9999 (UTC)"}


def _schemas() -> dict[str, Any]:
    postable = {"type": "object", "required": ["labels"], "properties": {
        "labels": _LABELS, "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "startsAt": _TIME, "endsAt": _TIME, "generatorURL": {"type": "string"}}}
    webhook_alert = {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["firing", "resolved"]}, **postable["properties"],
        "fingerprint": {"type": "string"}}, "required": ["labels"]}
    webhook = {"type": "object", "required": ["alerts"], "properties": {
        "version": {"type": "string", "enum": ["4"]}, "receiver": {"type": "string"},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "alerts": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookAlert"}},
        "groupLabels": _LABELS, "commonLabels": _LABELS, "commonAnnotations": _LABELS,
        "externalURL": {"type": "string"}, "groupKey": {"type": "string"}, "truncatedAlerts": {"type": "integer"}}}
    gettable = {"type": "object", "required": ["labels", "annotations", "startsAt", "endsAt", "updatedAt",
                                                "fingerprint", "receivers", "status"], "properties": {
        "labels": _LABELS, "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "startsAt": _TIME, "endsAt": _TIME, "updatedAt": _TIME, "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string"},
        "receivers": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                 "properties": {"name": {"type": "string"}}}},
        "status": {"type": "object", "required": ["state", "silencedBy", "inhibitedBy"], "properties": {
            "state": {"type": "string", "enum": ["unprocessed", "active", "suppressed"]},
            "silencedBy": {"type": "array", "items": {"type": "string"}},
            "inhibitedBy": {"type": "array", "items": {"type": "string"}}}}}}
    return {"PostableAlert": postable, "WebhookAlert": webhook_alert, "AlertmanagerWebhook": webhook,
            "GettableAlert": gettable}


def _get_alerts() -> dict[str, Any]:
    def flag(name: str, what: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": what,
                "schema": {"type": "boolean", "default": True}}

    return {
        "summary": "Alertmanager API v2: the firing alerts, with their receivers and silenced/inhibited state",
        "parameters": [
            {"name": "filter", "in": "query", "required": False, "style": "form", "explode": True,
             "description": "Alertmanager matchers, e.g. alertname=\"X\" or env=~\"prod|dev\" (RE2)",
             "schema": {"type": "array", "items": {"type": "string"}}},
            {"name": "receiver", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "An RE2 regex the receiver's name must match in full"},
            flag("active", "include active alerts"), flag("silenced", "include silenced alerts"),
            flag("inhibited", "include inhibited alerts"),
        ],
        "responses": {
            "200": {"description": "The alerts", "content": {"application/json": {"schema": {
                "type": "array", "items": {"$ref": "#/components/schemas/GettableAlert"}}}}},
            "400": _err("A bad filter or receiver regex"), "401": _err("Missing or invalid bearer token"),
            "503": _err("State store unavailable: retry"),
        },
    }


def _incident_schema() -> dict[str, Any]:
    factor = {"type": "object", "properties": {
        "factor": {"type": "string"}, "value": {}, "x": {"type": "number", "description": "the model's input"},
        "contribution": {"type": "number", "description": "points (severity) or log-odds (confidence)"},
        "explanation": {"type": "string"}}}
    return {"type": "object", "properties": {
        "id": {"type": "string"}, "title": {"type": "string"},
        "state": {"type": "string", "enum": ["triggered", "acknowledged", "snoozed", "resolved"]},
        "severity": {"type": "string", "enum": ["critical", "error", "warning", "info"],
                     "description": "How bad it is; separate from how sure Tocsin is that it is real."},
        "severity_factors": {"type": "array", "items": factor},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description":
                       "The probability that a person would treat this incident as real (acknowledge it rather "
                       "than mark it noise): a logistic model trained on labelled real streams and adjusted by "
                       "this installation's own acknowledgements and noise marks."},
        "confidence_factors": {"type": "array", "items": factor, "description":
                               "The model's base rate, then each feature with its value x and weight * x."},
        "held": {"type": ["object", "null"], "description":
                 "Set while the incident is held below the route's min_confidence instead of paged: since, floor, "
                 "confidence, receiver (the route's held_receiver, if any). Null once it paged."},
        "root_causes": {"type": "array", "items": {"type": "object"}},
        "members": {"type": "array", "items": {"type": "object"}},
        "timeline": {"type": "array", "items": {"type": "object"}}}}


def document() -> dict[str, Any]:
    ev = DetectorEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = ev.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tocsin", "version": "0.1.0",
                 "description": "Alertmanager-compatible alert router that rings once per incident. This document "
                                "and /metrics are served without a token."},
        "paths": {
            "/api/v1/events": {"post": {
                "summary": "Send detector outputs (one event or a list)",
                "requestBody": _json_body({"oneOf": [
                    {"$ref": "#/components/schemas/DetectorEvent"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/DetectorEvent"}}]}),
                "responses": _write_responses()}},
            "/api/v2/alerts": {
                "post": {"summary": "Alertmanager API v2: post alerts (what Prometheus sends)",
                         "requestBody": _json_body({"type": "array",
                                                    "items": {"$ref": "#/components/schemas/PostableAlert"}}),
                         "responses": _write_responses()},
                "get": _get_alerts(),
            },
            "/api/v1/alertmanager": {"post": {
                "summary": "Receive an Alertmanager webhook (version 4)",
                "requestBody": _json_body({"$ref": "#/components/schemas/AlertmanagerWebhook"}),
                "responses": _write_responses()}},
            "/api/v1/incidents/{id}": {"get": {
                "summary": "One incident: members and why each joined, severity, confidence, root causes, timeline",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The incident", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Incident"}}}},
                              "404": _err("No such incident")}}},
        },
        "components": {"schemas": {
            "DetectorEvent": ev, **defs, **_schemas(), "Incident": _incident_schema(),
            "Error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "integer"}, "message": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "message": {"type": "string"}}}}}},
        }},
    }
