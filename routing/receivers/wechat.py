"""Alertmanager's WeChat (WeChat Work / 企业微信) integration: gettoken, then message/send.

Config (Alertmanager 0.25): api_secret (default global wechat_api_secret), corp_id (global wechat_api_corp_id),
api_url (global wechat_api_url, https://qyapi.weixin.qq.com/cgi-bin/), to_user, to_party, to_tag, agent_id,
message, message_type (text | markdown), send_resolved (default false), http_config. The access token is
cached for two hours (by the injected clock) and fetched again when WeChat says it expired (errcode 42001,
retried). As in Alertmanager: any non-200 status and network errors are retried; other WeChat errcodes are not.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from routing.receivers.base import NotifyError
from routing.receivers.fields import render_field
from routing.receivers.http import HttpIntegration, retry_after_seconds, scrub, secret

DEFAULT_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
TOKEN_TTL = 7200.0


class WeChatReceiver(HttpIntegration):
    kind = "wechat"
    send_resolved_default = False

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        g = self.global_
        url = str(self.c.get("api_url") or g.get("wechat_api_url") or DEFAULT_API_URL)
        self.api_url = url if url.endswith("/") else url + "/"
        self.api_secret_ref = secret(self.c, "api_secret", secret(g, "wechat_api_secret"))
        self.corp_id = str(self.c.get("corp_id") or g.get("wechat_api_corp_id") or "")
        self.message_type = self.c.get("message_type") or "text"
        self.api_secret = ""
        self._token = ""
        self._token_at = float("-inf")

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else 0.0

    async def _access_token(self) -> str:
        if self._token and self._now() - self._token_at <= TOKEN_TTL:
            return self._token
        self.api_secret = self.api_secret_ref.get()
        q = urlencode({"corpsecret": self.api_secret, "corpid": self.corp_id})
        r = await self.http.request("GET", f"{self.api_url}gettoken?{q}", secrets=[self.api_secret], check=False)
        try:
            tok = (r.json() or {}).get("access_token") or ""
        except ValueError:
            tok = ""
        if not tok:
            raise NotifyError(f"wechat: invalid APISecret for CorpID: {self.corp_id} (HTTP {r.status})", False,
                              status=r.status)
        self._token, self._token_at = str(tok), self._now()
        return self._token

    def message(self, n: Any) -> dict[str, Any]:
        f = lambda name: render_field(self.kind, name, self.c.get(name), n)  # noqa: E731
        msg: dict[str, Any] = {"touser": f("to_user"), "toparty": f("to_party"), "totag": f("to_tag"),
                               "agentid": f("agent_id"), "safe": "0", "msgtype": self.message_type}
        content = {"content": f("message")}
        msg["markdown" if self.message_type == "markdown" else "text"] = content
        return msg

    async def deliver(self, n: Any) -> None:
        token = await self._access_token()
        r = await self.http.request("POST", f"{self.api_url}message/send?{urlencode({'access_token': token})}",
                                    json=self.message(n), secrets=[token, self.api_secret], check=False)
        if r.status != 200:
            raise NotifyError(f"wechat: unexpected status code {r.status}", True,
                              retry_after_seconds(r.headers.get("Retry-After")), r.status)
        try:
            body = r.json() or {}
        except ValueError:
            body = {}
        code = body.get("errcode", -1) if isinstance(body, dict) else -1
        if code == 0:
            return
        err = scrub(str(body.get("errmsg") if isinstance(body, dict) else r.text[:200]), [token, self.api_secret])
        if code == 42001:  # the access token expired: fetch a new one on the retry
            self._token = ""
            raise NotifyError(f"wechat: {err}", True)
        raise NotifyError(f"wechat: errcode {code}: {err}", False)
