"""Person words: which captions are about people (the person-caption subset of an evaluation).

ImageNet-1k has no "person" class, so the built-in model sees people through the learned
projection (projection.py), which COCO's captions, mostly about people, teach; a separate face
or person detector was measured and did not pay for its cost (docs/builtin-model.md).
"""

from __future__ import annotations

import re

PERSON_WORDS = frozenset(
    [
        "man",
        "men",
        "woman",
        "women",
        "person",
        "people",
        "persons",
        "boy",
        "boys",
        "girl",
        "girls",
        "child",
        "children",
        "kid",
        "kids",
        "baby",
        "babies",
        "guy",
        "guys",
        "lady",
        "ladies",
        "player",
        "players",
        "skier",
        "skiers",
        "surfer",
        "surfers",
        "skateboarder",
        "skateboarders",
        "snowboarder",
        "rider",
        "riders",
        "someone",
        "crowd",
        "family",
        "couple",
        "adult",
        "adults",
        "teenager",
        "gentleman",
        "toddler",
        "he",
        "she",
        "they",
        "her",
        "his",
    ]
)
_WORD = re.compile(r"[a-z]+")


def names_person(text: str) -> bool:
    """Whether `text` talks about a person (by one of `PERSON_WORDS`)."""
    return any(w in PERSON_WORDS for w in _WORD.findall(text.lower()))
