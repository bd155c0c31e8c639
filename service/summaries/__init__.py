"""Root-cause summaries. Import from the submodules (kept empty so `python -m service.summaries.prompt` runs cleanly):
evidence (build_evidence, EvidencePack), evidence_summarizer (EvidenceSummarizer, ranked_root_causes),
claude (ClaudeSummarizer, LLMUnavailable), summarizer (SummaryService), config (LLMConfig, build_summary_service),
schema (Summary, RootCause), sanitize, prompt, metrics."""
