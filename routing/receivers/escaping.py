"""Make untrusted alert text safe for each target: Slack mrkdwn, plain text, PagerDuty.

Labels, annotations and summaries come from whoever can reach Prometheus or the events API, so they
are treated as hostile. For every target the text loses its control characters (except newline and
tab, and keeping emoji sequences intact), can never mention anyone (`<!channel>`, `<@U…>`, `<#C…>`,
`<!subteam^…>`, a bare `@here`), and is cut to the target's limit with a visible note saying how much
was left out. JSON is never built from strings: callers put these results into dicts and json.dumps them.
"""
from __future__ import annotations

import json
import re
from typing import Any

# C0 controls except \t and \n, DEL, C1 controls, and the Unicode bidi overrides/isolates that can
# make text read differently from what it is ("trojan source"). ZWJ (U+200D) and variation
# selectors stay: emoji sequences need them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# "@here", "@channel", "@everyone" as a word of their own; a word joiner after the "@" keeps the
# text readable but means Slack never treats it as a broadcast.
_BROADCAST = re.compile(r"(?<![\w@])@(?=(?:here|channel|everyone|group)\b)", re.IGNORECASE)
_WORD_JOINER = "\u2060"
# Slack's special syntax `<!channel>`, `<@U…>`, `<#C…>`, `<!subteam^…>` (also with blanks or invisible
# characters after the `<`): in plain-text targets (PagerDuty summary, digest text, notification fallback)
# the `<` becomes the look-alike `‹`, so the text reads the same and can never form a mention.
_SLACK_SPECIAL = re.compile("<[\\s\u200b-\u200f\u2060\ufeff]*(?=[!@#])")
_MRKDWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}

# Target limits.
SLACK_SECTION_TEXT = 3000
SLACK_PLAIN_TEXT = 150  # header / button plain_text
SLACK_FALLBACK_TEXT = 3000  # the top-level `text` (Slack accepts 40k, but notifications show a line)
SLACK_FIELD_TEXT = 2000
PAGERDUTY_SUMMARY = 1024
PAGERDUTY_EVENT_BYTES = 512 * 1024
PAGERDUTY_DETAILS_BYTES = 400 * 1024  # leaves room for the rest of the event


def truncation_note(omitted: int) -> str:
    return f"… (truncated, {omitted} chars omitted)"


def clean(value: Any) -> str:
    """Any value as text, with control characters removed and broadcasts neutralised."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return _BROADCAST.sub("@" + _WORD_JOINER, text)


def _prep(value: Any, limit: int | None) -> tuple[str, int]:
    """Clean `value`, first dropping what is far beyond `limit` (cheap on 100 KB annotations)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    extra = 0
    if limit is not None and len(text) > 2 * limit + 64:
        extra = len(text) - (2 * limit + 64)
        text = text[: 2 * limit + 64]
    return clean(text), extra


def _cut(pieces: list[str], limit: int | None, extra: int = 0) -> str:
    """Join `pieces` (one per source character) into at most `limit` characters, noting what was cut.

    Cutting happens between source characters, so an escape such as `&amp;` is never split, and the
    note counts source characters, which is what a reader cares about.
    """
    total = sum(len(p) for p in pieces)
    if limit is None or (total <= limit and not extra):
        return "".join(pieces)
    note_len = len(truncation_note(len(pieces) + extra))
    budget = max(0, limit - note_len)
    kept = 0
    used = 0
    for p in pieces:
        if used + len(p) > budget:
            break
        used += len(p)
        kept += 1
    # Do not end on half of a surrogate-free but multi-codepoint emoji sequence joiner.
    while kept and pieces[kept - 1] == "\u200d":
        kept -= 1
    out = "".join(pieces[:kept]) + truncation_note(len(pieces) - kept + extra)
    return out[:limit] if len(out) > limit else out


def _no_mentions(text: str) -> str:
    return _SLACK_SPECIAL.sub("\u2039", text)


def plain(value: Any, limit: int | None = None) -> str:
    """Plain text (Slack plain_text objects, PagerDuty summary, e-mail-like targets)."""
    text, extra = _prep(value, limit)
    return _cut(list(_no_mentions(text)), limit, extra)


def mrkdwn(value: Any, limit: int | None = None) -> str:
    """Slack mrkdwn: `&`, `<`, `>` escaped, so no link, mention or special command can be formed."""
    text, extra = _prep(value, limit)
    return _cut([_MRKDWN_ESCAPES.get(c, c) for c in text], limit, extra)


def one_line(value: Any, limit: int | None = None) -> str:
    """Plain text on one line (titles): newlines and tabs become spaces."""
    text, extra = _prep(value, limit)
    return _cut(list(_no_mentions(re.sub(r"[\n\t]+", " ", text).strip())), limit, extra)


def mrkdwn_line(value: Any, limit: int | None = None) -> str:
    """mrkdwn on one line."""
    text, extra = _prep(value, limit)
    text = re.sub(r"[\n\t]+", " ", text).strip()
    return _cut([_MRKDWN_ESCAPES.get(c, c) for c in text], limit, extra)


def code(value: Any, limit: int | None = None) -> str:
    """mrkdwn inline code: backticks cannot close the span early."""
    text = mrkdwn_line(value, limit).replace("`", "ˋ")
    return f"`{text}`" if text else ""


def truncate(value: str, limit: int) -> str:
    """Cut already-safe mrkdwn to `limit` characters with the note (never splitting an escape or link)."""
    if len(value) <= limit:
        return value
    # Tokens: a whole `<link|label>` / `<!date^…>` construct, an escape, or one character.
    pieces = re.findall(r"<[^<>\n]*>|&(?:amp|lt|gt);|.", value, re.DOTALL)
    return _cut(pieces, limit)


def safe_url(value: Any) -> str | None:
    """An http(s) URL fit for a Slack `<url|text>` link or a button, or None.

    Only http and https are accepted, and the characters that would end the link syntax are
    percent-encoded.
    """
    if not isinstance(value, str):
        return None
    url = _CONTROL.sub("", value).strip()
    if not re.match(r"^https?://[^\s/?#]+", url, re.IGNORECASE) or len(url) > 3000:
        return None
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def slack_link(url: Any, text: Any, limit: int = 300) -> str:
    """A mrkdwn link `<url|text>`; the text is escaped, and a bad URL leaves only the text."""
    u = safe_url(url)
    label = mrkdwn_line(text, limit)
    if u is None:
        return label
    return f"<{u}|{label}>"


def bound_json(value: Any, max_bytes: int) -> Any:
    """A JSON-able copy of `value` (strings cleaned) whose json.dumps is at most `max_bytes` bytes.

    Long strings are cut with the note, and long lists keep their head plus a note, at decreasing caps
    until the whole fits.
    """
    for str_cap, list_cap in ((8192, 200), (2048, 100), (512, 50), (128, 20), (64, 10), (32, 5)):
        out = _bounded(value, str_cap, list_cap, depth=0)
        if len(json.dumps(out, ensure_ascii=False).encode()) <= max_bytes:
            return out
    return {"note": "details omitted: too large"}


def _bounded(value: Any, str_cap: int, list_cap: int, depth: int) -> Any:
    if depth > 12:
        return "… (nested too deep)"
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, dict):
        items = list(value.items())
        out = {}
        for k, v in items[:list_cap]:
            out[plain(k, 200)] = _bounded(v, str_cap, list_cap, depth + 1)
        if len(items) > list_cap:
            out["…"] = f"{len(items) - list_cap} more keys omitted"
        return out
    if isinstance(value, (list, tuple)):
        out_l = [_bounded(v, str_cap, list_cap, depth + 1) for v in value[:list_cap]]
        if len(value) > list_cap:
            out_l.append(f"… {len(value) - list_cap} more omitted")
        return out_l
    return plain(value, str_cap)


def register_filters(env: Any) -> None:
    """Register the escaping filters on a Jinja2 Environment."""
    env.filters.update(
        {
            "mrkdwn": mrkdwn,
            "mrkdwn_line": mrkdwn_line,
            "plain": plain,
            "one_line": one_line,
            "code": code,
            "slack_link": slack_link,
            "safe_url": safe_url,
            "truncate_note": truncate,
        }
    )
