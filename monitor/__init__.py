"""twitchwatch: find live Twitch streams whose declared category is not what is on screen."""

from __future__ import annotations

__version__ = "0.1.0"
