"""Query and catalogue text, normalised and tokenised one way for both sides.

A query matches an item only if both went through the same steps: Unicode NFKC (full-width Latin and
digits become ASCII, compatibility forms fold), case folding, every character that is not a letter,
a digit or a combining mark becomes a space (punctuation, symbols, control bytes, SQL and regex
metacharacters alike), then whitespace splits words. Chinese, Japanese and Korean script has no
spaces, so a run of CJK characters becomes its overlapping character bigrams (plus the lone
character of a one-character run): the usual dictionary-free CJK indexing, which matches any
two-character word inside a title without a segmenter.

`scrub` removes personal data a shopper may type into the search box (emails, phone numbers, long
digit runs such as card or ID numbers) before query text leaves the private zone.
"""

from __future__ import annotations

import re
import unicodedata

from shoprank.data.search_log import scrub

# Letters and digits of these scripts are written without spaces between words.
_CJK_RANGES = (
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x2FA1F),  # CJK Extensions B-F, compatibility supplement
)


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _keep(char: str) -> bool:
    """Letters, digits and combining marks make words; everything else separates them."""
    return unicodedata.category(char)[0] in ("L", "N", "M")


def normalise(text: str | None) -> str:
    """NFKC, case-folded, non-word characters as single spaces, trimmed."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join("".join(c if _keep(c) else " " for c in folded).split())


def _cjk_tokens(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


def tokens(text: str | None) -> list[str]:
    """The index terms of a text: words, and CJK runs as bigrams. Order kept, duplicates kept (BM25
    counts term frequency)."""
    out: list[str] = []
    for word in normalise(text).split(" "):
        if not word:
            continue
        run, rest = [], []
        for char in word:  # a word may mix scripts: "iphone手机壳" -> iphone, 手机, 机壳
            if is_cjk(char):
                if rest:
                    out.append("".join(rest))
                    rest = []
                run.append(char)
            else:
                if run:
                    out.extend(_cjk_tokens("".join(run)))
                    run = []
                rest.append(char)
        if run:
            out.extend(_cjk_tokens("".join(run)))
        if rest:
            out.append("".join(rest))
    return out


_PLACEHOLDERS = re.compile(r"\[(?:email|phone|number)\]")


def query_tokens(query: str | None) -> list[str]:
    """What a query searches for: scrubbed (a placeholder matches nothing), then tokenised."""
    return tokens(_PLACEHOLDERS.sub(" ", scrub(query)))
