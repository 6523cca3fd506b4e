"""Downloader middlewares: network guard, Retry-After/backoff, redirects without
Referer handling. Size limits, timeouts, robots.txt, User-Agent and proxies are Scrapy's own
middlewares, configured per source by ``crawler.runner.scrapy_settings``."""
