"""`leaksentry demo`: a self-contained local run of the whole chain.

``scenario`` generates a fictional register and planted leaks among harmless
items, ``sites`` serves them on loopback (a Pastebin-style feed, an open
directory, a page rendered by JavaScript, a watched link, a webhook
receiver), ``runner`` drives the real crawl / alert / index code paths for
one cycle, and ``report`` shows what happened with Rich.
"""
