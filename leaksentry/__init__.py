"""leaksentry: watch leak sites for an organisation's identifiers, holding only keyed digests."""

__version__ = "0.1.0"
