"""The aiohttp app: the APIs, operations endpoints, and the Slack and PagerDuty doors."""
