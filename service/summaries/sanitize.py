"""Make summary text safe to show in Slack, PagerDuty and the API: plain text, no mentions, no foreign links.

Summaries can echo untrusted alert text (the evidence summary quotes labels; Claude may repeat an
annotation). So every summary, whatever its source, goes through `sanitize_summary` before anyone sees it:
- Slack control sequences (`<!channel>`, `<!here>`, `<@U123>`, `<#C1>`, `<!subteam^...>`, `<url|text>`)
  are taken apart; `@channel`/`@here`/`@everyone` and `@handle` lose their `@`.
- URLs (any scheme, or `www.`) to hosts not on the allowlist are defanged (`hxxps://evil[.]com/...`);
  so are bare domains with a common public TLD. Allowlisted hosts (and their subdomains) stay links.
- Control characters are removed and every field is length-limited.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import urlsplit

from service.summaries.schema import Summary

HEADLINE_MAX = 150
REASONING_MAX = 1200
CHECK_MAX = 200
CHECKS_MAX = 5

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SLACK_SPECIAL = re.compile(r"<\s*([!@#])([^<>]*)>")  # <!channel>, <@U1>, <#C1|name>, <!subteam^S1>
_SLACK_LINK = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9+.-]*:[^<>|]*)(?:\|([^<>]*))?>")  # <http://x|text>
_MENTION_WORD = re.compile(r"(?<![\w.@])[@＠﹫]+(?=[\w-])")
_URL = re.compile(r"(?i)\b((?:[a-z][a-z0-9+.-]{1,15})://[^\s<>\"'`|]+|www\.[^\s<>\"'`|]+)")
_BARE_DOMAIN = re.compile(
    r"(?i)(?<![\w.@/\[-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:com|net|org|io|co|info|biz|ru|cn|xyz|top|app|dev|me|ly|sh|gg|ai|cc|tk|site|online|link|click|zip|mov)"
    r")\b(?![\w-])(/[^\s<>\"'`|]*)?"
)


def _host_allowed(host: str, allowlist: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    for allowed in allowlist:
        a = allowed.lower().strip().rstrip(".")
        if a and (host == a or host.endswith("." + a)):
            return True
    return False


def _defang(url: str) -> str:
    if re.match(r"(?i)https?://", url):
        url = "hxxp" + url[4:]
    elif "://" in url:
        url = url.replace("://", "[://]", 1)
    return url.replace(".", "[.]")


def sanitize_text(text: str, allowlist: Iterable[str] = (), limit: int = REASONING_MAX) -> str:
    """Plain text with no mentions and no links to hosts outside `allowlist`, at most `limit` characters."""
    allow = list(allowlist)
    s = _CONTROL.sub("", text or "")
    s = s.replace("\r", " ").replace("\t", " ")
    s = _SLACK_LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), s)
    s = _SLACK_SPECIAL.sub(lambda m: m.group(2).split("|")[-1].lstrip("^").strip(), s)
    s = s.replace("<!", "<").replace("<@", "<").replace("<#", "<")

    def url(m: re.Match[str]) -> str:
        u = m.group(1).rstrip(".,;:!?)]}")
        tail = m.group(1)[len(u):]
        parsed = urlsplit(u if "://" in u else "http://" + u)
        scheme_ok = "://" not in u or u.split("://", 1)[0].lower() in ("http", "https")
        if scheme_ok and parsed.hostname and not parsed.username and _host_allowed(parsed.hostname, allow):
            return u + tail
        return _defang(u) + tail

    s = _URL.sub(url, s)

    def bare(m: re.Match[str]) -> str:
        host = m.group(1)
        if _host_allowed(host, allow):
            return m.group(0)
        return m.group(0).replace(".", "[.]")

    s = _BARE_DOMAIN.sub(bare, s)
    s = _MENTION_WORD.sub("", s)
    s = re.sub(r"[ \u00a0]{2,}", " ", s).strip()
    if len(s) > limit:
        s = s[: limit - 1].rstrip() + "…"
    return s


def sanitize_summary(summary: Summary, allowlist: Iterable[str] = ()) -> Summary:
    """The same summary with every text field made safe (see the module docstring)."""
    allow = list(allowlist)
    headline = sanitize_text(summary.headline, allow, HEADLINE_MAX).replace("\n", " ")
    checks = [sanitize_text(c, allow, CHECK_MAX).replace("\n", " ") for c in summary.next_checks]
    return summary.model_copy(update={
        "headline": headline or "Incident summary",
        "reasoning": sanitize_text(summary.reasoning, allow, REASONING_MAX),
        "next_checks": [c for c in checks if c][:CHECKS_MAX],
        "note": sanitize_text(summary.note, allow, 200),
    })
