"""Downloader middlewares: network guard, Retry-After/backoff. Size limits,
timeouts, redirects, robots.txt, User-Agent and proxies are Scrapy's own
middlewares, configured per source by ``crawler.runner.scrapy_settings``."""
