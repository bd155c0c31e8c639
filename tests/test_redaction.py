"""The configuration shown by /api/v2/status never carries a secret."""
from service.config.sections import redacted


def test_secrets_are_masked_in_maps_and_lists():
    """Tokens, URLs with credentials, routing keys and lists of webhook secrets are masked; file paths are kept."""
    raw = {
        "global": {"slack_api_url": "https://hooks.slack.com/services/T/B/X"},
        "receivers": [{"name": "r", "slack_configs": [{"api_url": "https://hooks.slack.com/services/T/B/Y",
                                                       "bot_token_file": "/run/secrets/bot"}],
                       "pagerduty_configs": [{"routing_key": "R0UT1NG"}]}],
        "tocsin": {"pagerduty": {"webhook_secrets": ["s3cret-a", "s3cret-b"]},
                   "slack": {"signing_secret": "shh"},
                   "auth": {"tokens": [{"name": "prom", "token": "tok"}]}},
    }
    text = repr(redacted(raw))
    for secret in ("hooks.slack.com", "R0UT1NG", "s3cret-a", "s3cret-b", "shh", "'tok'"):
        assert secret not in text
    assert "/run/secrets/bot" in text
