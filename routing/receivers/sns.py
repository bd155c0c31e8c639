"""Alertmanager's Amazon SNS integration: one `Publish` call of the SNS Query API, signed with SigV4.

Config (Alertmanager 0.25): api_url (default https://sns.<region>.amazonaws.com), sigv4 (region, access_key,
secret_key, profile, role_arn), topic_arn | phone_number | target_arn, subject (cut to 100 characters; not for
phone numbers), message (cut to 256 KiB), attributes (message attributes, type String), send_resolved (default
true), http_config. The region defaults to the topic ARN's. A FIFO topic (`.fifo`) gets the group key's hash as
message group and deduplication id. Without access keys, botocore's credential chain is used (environment,
profile), as the AWS SDK does for Alertmanager.

The request is signed by botocore's SigV4 signer (a well-kept library; SigV4 is not written here) and sent through
the shared HTTP sender. As in Alertmanager: an AWS error answer is retried when its status is 5xx; network
errors are retried.
"""
from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from routing.receivers.fields import render_field, truncate_bytes, truncate_runes
from routing.receivers.http import HttpIntegration, scrub

MAX_MESSAGE_BYTES = 256 * 1024


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" else ""


class SNSReceiver(HttpIntegration):
    kind = "sns"

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.sigv4 = dict(self.c.get("sigv4") or {})
        target = self.c.get("topic_arn") or self.c.get("target_arn") or ""
        self.region = str(self.sigv4.get("region") or _region_of(str(target)) or "us-east-1")
        self.endpoint = str(self.c.get("api_url") or f"https://sns.{self.region}.amazonaws.com").rstrip("/") + "/"

    def _credentials(self) -> Any:
        from botocore.credentials import Credentials

        if self.sigv4.get("access_key") and self.sigv4.get("secret_key"):
            return Credentials(str(self.sigv4["access_key"]), str(self.sigv4["secret_key"]))
        import botocore.session

        session = botocore.session.Session(profile=self.sigv4.get("profile") or None)
        creds = session.get_credentials()
        if creds is None:
            from routing.receivers.base import NotifyError

            raise NotifyError("sns: no AWS credentials (sigv4.access_key/secret_key, environment or profile)",
                              False, label="other")
        return creds

    def params(self, n: Any) -> dict[str, str]:
        f = lambda name: render_field(self.kind, name, self.c.get(name), n)  # noqa: E731
        p: dict[str, str] = {"Action": "Publish", "Version": "2010-03-31"}
        topic = render_field(self.kind, "topic_arn", self.c.get("topic_arn"), n) if self.c.get("topic_arn") else ""
        if topic:
            p["TopicArn"] = topic
            if topic.endswith(".fifo"):
                h = hashlib.sha256(n.group_key.encode()).hexdigest()
                p["MessageGroupId"], p["MessageDeduplicationId"] = h, h
        if self.c.get("phone_number"):
            p["PhoneNumber"] = render_field(self.kind, "phone_number", self.c["phone_number"], n)
        if self.c.get("target_arn"):
            p["TargetArn"] = render_field(self.kind, "target_arn", self.c["target_arn"], n)
        message, _ = truncate_bytes(f("message"), MAX_MESSAGE_BYTES)
        p["Message"] = message
        if not self.c.get("phone_number"):
            subject, _ = truncate_runes(f("subject"), 100)
            p["Subject"] = subject
        for i, (k, v) in enumerate(sorted((self.c.get("attributes") or {}).items()), start=1):
            p[f"MessageAttributes.entry.{i}.Name"] = str(k)
            p[f"MessageAttributes.entry.{i}.Value.DataType"] = "String"
            p[f"MessageAttributes.entry.{i}.Value.StringValue"] = render_field(self.kind, f"attributes.{k}", v, n)
        return p

    async def deliver(self, n: Any) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        creds = self._credentials()
        body = urlencode(self.params(n))
        req = AWSRequest(method="POST", url=self.endpoint, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(creds, "sns", self.region).add_auth(req)
        frozen = creds.get_frozen_credentials() if hasattr(creds, "get_frozen_credentials") else creds
        secrets = [s for s in (getattr(frozen, "secret_key", None), getattr(frozen, "token", None)) if s]
        r = await self.http.request("POST", self.endpoint, data=body.encode(), headers=dict(req.headers.items()),
                                    secrets=secrets, check=False)
        if 200 <= r.status < 300:
            return
        from routing.receivers.http import check_status

        err = check_status(r.status, scrub(r.text, secrets), (), r.headers.get("Retry-After"), secrets)
        assert err is not None
        raise err
