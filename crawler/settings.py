"""Scrapy settings for leaksentry's crawler (placeholder: the crawler issue fills it in)."""

BOT_NAME = "leaksentry"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
ROBOTSTXT_OBEY = True
