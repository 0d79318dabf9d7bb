"""Calling URLs that users give us: the SSRF guard and the transport that obeys it."""
