"""The LLM summarizer's failure, importable without the Anthropic SDK (which takes over a second to import and
is needed only when an LLM is configured)."""
from __future__ import annotations


class LLMUnavailable(Exception):
    """The LLM gave no usable summary. `outcome` is a metrics label; `detail` is safe to show."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(f"{outcome}: {detail}" if detail else outcome)
        self.outcome = outcome
        self.detail = detail
