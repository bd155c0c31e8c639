"""Fake third-party servers (real aiohttp apps on 127.0.0.1:0) and sample data for receiver tests."""
