"""The run's budget: at most ``max_items`` items fetched per run (a spider middleware).

Past it a listed item stays pending in the seen store (its first sighting is recorded
by the seen filter) and the next run fetches it, re-queued items first. The budget is
``LEAKSENTRY_MAX_ITEMS``: a shard's share of the source's, or a batch's.
"""

from __future__ import annotations

from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.middlewares.seen import LISTED, RETRY


class ItemBudgetMiddleware(BaseSpiderMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.left = crawler.settings.getint("LEAKSENTRY_MAX_ITEMS")

    def take(self) -> bool:
        """One item more for this run, if the budget has room."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def get_processed_request(self, request: Request, response: Response | None
                              ) -> Request | None:
        if RETRY in request.meta:  # the seen filter asked the store for no more than fit
            self.left -= 1
        elif LISTED in request.meta and not self.take():
            return None
        return request
