"""Detect whether a chat message asks a question (English or Dutch).

copss sits in expat group chats and must notice when a member *asks* for
information or help, so that it can offer an FAQ answer.  This module holds
the rule-based detector: pure Python, no third-party imports, no state.

The pipeline applied by :func:`detect_question` is:

1. Bot commands (``/help``, ``!ask bsn``) and bridged copies are rejected.
2. The text is cleaned: URLs, mentions, emoji and chat markup are removed,
   quoted lines (``> ...``) are dropped when the message also has text of its
   own, and whitespace is collapsed (see :func:`clean_text`).
3. Messages that are too short after cleaning are rejected.
4. Positive cues, strongest first:

   * a question mark (``?``, ``？`` or ``¿``) after some words;
   * a request or indirect question ("anyone know", "I was wondering",
     "weet iemand", "graag advies", ...);
   * an interrogative opener at the start of a sentence or clause
     ("how ...", "is it ...", "kan ik ...", "hoeveel ..."), with checks that
     filter exclamations ("What a day"), relative clauses ("Where I live"),
     imperatives ("Do not forget") and subject-less statements ("Will do",
     "Heb het gisteren gedaan");
   * a wh-word directly followed by a verb and a subject anywhere in a
     sentence ("..., how do I report it");
   * a tag question at the end of a sentence ("..., right").

Each result carries a short human-readable ``reason`` so that misfires can be
inspected (see ``bench/detection.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_CHARS", "Detection", "clean_text", "detect_question", "is_question"]

#: Only this many characters of a message are judged (Telegram's whole limit, more than
#: Discord's); every step is linear in them, so detection stays a few milliseconds at most.
MAX_CHARS: Final = 4096


@dataclass(frozen=True)
class Detection:
    """Outcome of :func:`detect_question`.

    Attributes:
        is_question: ``True`` if the message asks for information or help.
        reason: Short explanation of the decision, e.g. ``"question mark"``,
            ``"interrogative opener 'hoe'"``, ``"request 'anyone know'"``,
            ``"too short"``, ``"command"``, ``"bridged copy"`` or ``"no cue"``.
    """

    is_question: bool
    reason: str


# --------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------

_COMMAND_RE: Final = re.compile(r"^\s*[/!][A-Za-z][\w-]*(?:@\w+)?(?=\s|$)")
_URL_RE: Final = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)\S+", re.IGNORECASE)
# Discord user/role/channel mentions and custom emoji: <@123>, <@!1>, <#1>, <:x:1>
_DISCORD_TOKEN_RE: Final = re.compile(r"<(?:@[!&]?|#)\d+>|<a?:\w+:\d+>")
# Telegram / plain-text mentions; the look-behind keeps e-mail addresses intact.
_MENTION_RE: Final = re.compile(r"(?<![\w.@])@\w+")
_SHORTCODE_RE: Final = re.compile(r":[a-z][a-z0-9_+-]*:", re.IGNORECASE)
_EMOJI_RE: Final = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, flags, ...
    "\u2600-\u27bf"  # misc symbols and dingbats
    "\u2b00-\u2bff"  # arrows, stars
    "\u2300-\u23ff"  # technical (watch, hourglass, ...)
    "\ufe0e\ufe0f\u200d\u20e3"  # variation selectors, ZWJ, keycap
    "\U000e0020-\U000e007f"  # tag characters (subdivision flags)
    "]+"
)
_QUOTE_LINE_RE: Final = re.compile(r"^\s*>")
_MARKUP_RE: Final = re.compile(r"[*_`~>|]+")
_SPACE_RE: Final = re.compile(r"[^\S\n]+")


# Put where emoji were: in chat an emoji usually ends a sentence ("Congrats 🎉
# is it ..."), so sentence splitting breaks there; it is not part of any word.
_BREAK: Final = "\ue000"  # private-use code point: neither a word nor whitespace


def _clean_lines(text: str) -> list[str]:
    """Clean *text* and return its non-empty lines (whitespace collapsed).

    Emoji become :data:`_BREAK` markers so that sentence splitting can use
    them; :func:`clean_text` removes the markers.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    own = [ln for ln in lines if ln.strip() and not _QUOTE_LINE_RE.match(ln)]
    if own:
        # Quoted lines are someone else's words; judge only the reply.
        lines = [ln for ln in lines if not _QUOTE_LINE_RE.match(ln)]
    out: list[str] = []
    for line in lines:
        line = _URL_RE.sub(" ", line)
        line = _DISCORD_TOKEN_RE.sub(" ", line)
        line = _MENTION_RE.sub(" ", line)
        line = _SHORTCODE_RE.sub(" ", line)
        line = _MARKUP_RE.sub(" ", line)
        line = _EMOJI_RE.sub(f" {_BREAK} ", line)
        line = _SPACE_RE.sub(" ", line).strip(f" {_BREAK}")
        if line:
            out.append(line)
    return out


def clean_text(text: str) -> str:
    """Return *text* without URLs, mentions, emoji and markup, whitespace collapsed.

    Quoted lines (starting with ``>``) are dropped when the message also has
    lines of its own; otherwise only the ``>`` marker is removed.

    >>> clean_text("**Hi** <@123> see https://x.nl/?a=1 🎉")
    'Hi see'
    """
    return _without_breaks(" ".join(_clean_lines(text)))


def _without_breaks(text: str) -> str:
    """Remove emoji break markers from cleaned *text* and re-collapse spaces."""
    return " ".join(text.replace(_BREAK, " ").split())


# --------------------------------------------------------------------------
# Tokenisation helpers
# --------------------------------------------------------------------------

_WORD_RE: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TOKEN_RE: Final = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")
_HAS_WORD_RE: Final = re.compile(r"[^\W_]")
_SENTENCE_SPLIT_RE: Final = re.compile(r"(?<=[.!?？¿;:…])\s+|\s+[-–—]+\s+|\s*\ue000\s*")
_CLAUSE_SPLIT_RE: Final = re.compile(r",?\s+\b(?:but|maar|or|of)\b\s+", re.IGNORECASE)


def _normalise(text: str) -> str:
    """Lower-case *text* and unify apostrophes."""
    return text.replace("’", "'").replace("‘", "'").replace("`", "'").lower()


def _words(text: str) -> list[str]:
    """Return the word tokens of *text* (lower-cased)."""
    return _WORD_RE.findall(_normalise(text))


_WH_CONTRACTIONS: Final[dict[str, tuple[str, str]]] = {
    f"{wh}'s": (wh, "is") for wh in ("what", "where", "who", "how", "when", "why", "which")
}


def _tokens(text: str) -> list[tuple[str, str]]:
    """Tokenise *text* into ``(lower, original)`` pairs of words and punctuation.

    ``what's`` and friends are expanded to ``what`` + ``is``.
    """
    out: list[tuple[str, str]] = []
    for match in _TOKEN_RE.finditer(text.replace("’", "'").replace("‘", "'")):
        orig = match.group(0)
        low = orig.lower()
        if low in _WH_CONTRACTIONS:
            wh, verb = _WH_CONTRACTIONS[low]
            out.append((wh, orig[: len(wh)]))
            out.append((verb, verb))
        else:
            out.append((low, orig))
    return out


def _has_question_mark(line: str) -> bool:
    """Return whether *line* has a question mark that ends (or, ``¿``, opens) some words.

    A lone ``?``/``??`` or one that only follows punctuation does not count.
    Linear time, so long messages stay cheap.
    """
    last = max(line.rfind(mark) for mark in "?？")
    if last > 0 and _HAS_WORD_RE.search(line, 0, last):
        return True
    first = line.find("¿")
    return first >= 0 and _HAS_WORD_RE.search(line, first) is not None


def _is_word(token: str) -> bool:
    """Return whether *token* is a word rather than punctuation."""
    return bool(_WORD_RE.fullmatch(token))


# --------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------


def _set(words: str) -> frozenset[str]:
    """Return the whitespace-separated *words* as a frozenset."""
    return frozenset(words.split())


# Words that may precede the real start of a sentence: greetings, discourse
# markers, thanks.  "hi all, is it ..." is judged from "is".
_FILLERS: Final = _set(
    """
    hi hey hello hiya heya yo dear all everyone everybody guys folks y'all yall
    team so also btw ok okay oke oké k and but oh ah well anyway anyways ps
    edit update sorry thanks thx cheers please pls plz yes yeah yep ja jep
    hoi hallo allemaal iedereen en maar nou goedemorgen goedemiddag goedenavond
    morning moin haha hahaha lol bedankt dank dankje dankjewel merci trouwens
    overigens plus besides again then
    """
)
# Two-word fillers: second word is a filler only after the first.
_FILLER_PAIRS: Final = frozenset(
    {
        ("hi", "there"),
        ("hey", "there"),
        ("hello", "there"),
        ("thank", "you"),
        ("good", "morning"),
        ("good", "afternoon"),
        ("good", "evening"),
        ("dank", "je"),
        ("dank", "u"),
    }
)
_FILLER_FIRSTS: Final = frozenset(first for first, _ in _FILLER_PAIRS)

# --- English ---------------------------------------------------------------

_EN_WH: Final = frozenset({"how", "what", "where", "when", "why", "who", "which", "whom", "whose"})
_EN_PERSONS: Final = _set(
    """
    i you u ya we they he she anyone anybody someone somebody everyone
    everybody people y'all yall expats landlords employers students kids
    """
)
_EN_THINGS: Final = _set(
    "it there this that these those one the my your ur his her our their its any some all "
    "every each a an"
)
_EN_ARTICLES: Final = frozenset({"a", "an"})
# Auxiliaries whose subject-less use is usually an imperative or a statement
# ("Do it online", "Did the same", "Have a nice day"): only a person counts.
_EN_AUX_PERSON_ONLY: Final = _set("do did have don't dont didn't didnt haven't havent")
_EN_AUX_FULL: Final = _set(
    """
    does doesn't doesnt has hasn't hasnt is isn't isnt was wasn't wasnt are
    aren't arent were weren't can can't cant cannot could couldn't couldnt
    should shouldn't shouldnt would wouldn't wouldnt will won't wont may might
    must shall
    """
)
_EN_COPULA: Final = _set("is isn't isnt was wasn't wasnt are aren't arent were weren't")
_EN_PLURAL_COPULA: Final = _set("are aren't arent were weren't")
# "Is possible to register ...?" (non-native but clearly a question).
_EN_MODAL_ADJECTIVES: Final = _set(
    "possible necessary mandatory required allowed legal obligatory compulsory"
)
# Capitalised words after an auxiliary that are *not* a proper-noun subject.
_EN_NOT_SUBJECT: Final = _set(
    """
    not never just also so be been do done fine def definitely probably only
    still always confirm recommend check try really totally
    """
)
_EN_SUBJECT_PRONOUNS: Final = _set(
    """
    i you u we they he she it there i'm you're we're they're he's she's it's
    there's i've you've we've they've
    """
)
_EN_MODALS: Final = _set("can could should must may might shall")
_EN_EXCLAMATION_ADJECTIVES: Final = _set(
    """
    nice cool great lovely sad awful annoying funny weird cute beautiful
    amazing typical dutch sweet awesome terrible frustrating crazy wonderful
    exciting fun strange rude kind lucky unlucky ironic brilliant stupid
    """
)
_EN_ANYONE: Final = frozenset({"anyone", "anybody", "any1"})
_EN_ANYONE_NOT_NEXT: Final = _set(
    "who that which can could would will should must is was can't cannot won't"
)

# --- Dutch -----------------------------------------------------------------

_NL_WH: Final = _set(
    "hoe wat waar wanneer waarom wie welke welk hoeveel hoelang hoezo waarmee waarvoor waarheen"
)
# A wh-word followed by one of these starts a subordinate/relative clause:
# "Waar ik woon ...", "Wat je nodig hebt ...", "Hoeveel je krijgt ...".
_NL_SUBORDINATE_NEXT: Final = _set(
    "ik je jij u we wij ze zij hij het er men jullie de dat dit die deze een mijn jouw uw onze hun"
)
_NL_EXCLAMATION_ADJECTIVES: Final = _set(
    """
    leuk mooi fijn jammer goed erg gek lekker grappig raar vervelend heerlijk
    top tof gaaf stom zonde knap lief slim handig naar irritant herkenbaar
    typisch dom triest zielig geweldig prachtig balen vreemd bijzonder cool
    apart schattig lullig sneu rot klote vet interessant spannend
    """
)
_NL_DETERMINERS: Final = _set(
    "de het een mijn je jouw uw zijn haar onze ons hun deze die dit dat zo'n"
)
_NL_THIRD: Final = _set("iemand hij zij ze het er men dat dit die u") | _NL_DETERMINERS
_NL_ALL_PERSONS: Final = _set(
    "ik je jij u hij zij ze het we wij men iemand iedereen er dat dit jullie"
)
_NL_PLURAL: Final = _set(
    "we wij jullie ze zij er de die deze mijn onze hun je jouw uw alle mensen expats veel sommige"
)
_NL_YOU: Final = frozenset({"je", "jij", "u"})
_NL_FIRST_PERSON: Final = frozenset({"ik", "we", "wij"})
# "Heb ik ook gehad", "Zou ik ook doen", "Hebben we allemaal meegemaakt":
# topic-drop statements put one of these right after the inverted subject.
_NL_TOPIC_DROP_ADVERBS: Final = _set(
    """
    ook allemaal wel niet nooit zeker gewoon echt zelf eerlijk altijd al
    precies helemaal vaak zelden me mij
    """
)

# Generic "je" + one of these after a fronted verb is advice with the topic
# dropped, not a question.
_NL_ADVICE_ADVERBS: Final = _set("gewoon even beter best gerust sowieso dus dan prima")

_NL_MODALS: Final = _set("kan mag moet zal zou wil kon mocht moest hoeft")
# First-person-singular stems (also "zit", whose 1st and 3rd person are the
# same): subject-less they are statements ("Heb het gedaan", "Ben benieuwd",
# "Doe maar", "Zit er al weken op te wachten"), so only "you" counts.
_NL_STEMS: Final = _set(
    "heb ben weet doe ga kom krijg betaal woon ken vind gebruik hoef word rijd kun snap begrijp zit"
)
_NL_THIRD_SINGULAR: Final = _set(
    """
    heeft is doet gaat komt krijgt betaalt woont kent vindt gebruikt wordt
    rijdt klopt bestaat werkt geldt kost duurt maakt heet was had wilt
    """
)
_NL_PAST_SINGULAR: Final = _set("was had kon moest mocht wist zat ging kwam kreeg deed")
_NL_PLURAL_VERBS: Final = _set(
    """
    hebben zijn kunnen moeten mogen weten gaan komen krijgen betalen wonen
    kennen vinden gebruiken hoeven willen worden rijden kosten zitten doen
    waren hadden konden moesten mochten heten werken gelden bestaan zouden
    zullen
    """
)
_NL_IEMAND_NEXT: Final = _set(
    """
    ervaring ervaringen tips tip een idee advies suggesties aanraders hier
    die bekend nog anders met interesse goede
    """
)
# Fixed phrases that look like questions but are not.
_IDIOMS: Final = tuple(
    re.compile(p)
    for p in (
        r"^kan ik me voorstellen\b",
        r"^mag ik hopen\b",
        r"^moet ik zeggen\b",
        r"^weet ik (?:veel|niet|het niet)\b",
        r"^weet je (?:wat|wel)\b",
        r"^moet je zien\b",
        r"^zie je wel\b",
        r"^snap je\b",
        r"^heb je (?:gelijk|helemaal gelijk|een punt)\b",
        r"^who (?:cares|knew|would have thought|would've thought|'d have thought)\b",
        r"^which (?:is why|reminds|means)\b",
        r"^does the (?:job|trick)\b",
        r"^are you (?:kidding|joking|serious|crazy|mad)\b",
        r"^when in doubt\b",
        r"^what the (?:hell|heck|fuck|f)\b",
        r"^(?:hoe|wat|waar|wie|welke|wanneer) dan ook\b",
    )
)

# --------------------------------------------------------------------------
# Request / indirect-question cues (searched anywhere in a sentence)
# --------------------------------------------------------------------------

_NEGATED_BEFORE: Final = re.compile(
    r"\b(?:no|not|never|without|zonder|geen|niet|\w+n't|dont|doesnt|didnt)\s+(?:\w+\s+){0,2}$"
)
_CONDITIONAL_BEFORE: Final = re.compile(
    r"\b(?:if|als|indien|in case)\s+"
    r"(?:you|u|je|jij|jullie|anyone|iemand|someone|somebody)\s+(?:\w+\s+){0,2}$"
)
_HEDGE_AFTER: Final = re.compile(r"\b(?:but|maar)\b")
#: Characters before a guarded cue that its guard looks at (a few words and then some).
_GUARD_WINDOW: Final = 200

# Each cue is (key, pattern, guard).  Guards: "" none; "neg" skips the cue
# after a negation or an "if you ..." ("I don't need help", "Let me know if
# you need help"); "hedge" skips an uncertainty phrase that is followed by
# "but"/"maar", because then it introduces an answer ("Not sure if this
# still applies but ...").
_REQUEST_SPECS: Final[tuple[tuple[str, str, str], ...]] = (
    # --- English
    ("anyone know", r"\b(?:any\s?one|anybody|any1)\s+(?:here\s+|else\s+)?knows?\b", ""),
    (
        "can someone",
        r"\b(?:can|could|would|will)\s+(?:some\s?one|somebody|any\s?one|anybody|you|u)\s+"
        r"(?:please\s+|pls\s+|plz\s+|maybe\s+|kindly\s+)?"
        r"(?:help|explain|tell|recommend|translate|check|confirm|advise|share|point|send|look"
        r"|clarify|suggest)\b",
        "",
    ),
    ("someone please", r"\b(?:some\s?one|somebody|any\s?one|anybody)\s+(?:please|pls|plz)\b", ""),
    (
        "any advice",
        r"\bany\s+(?:ideas?|clue|advice|tips?|recommendations?|suggestions?|experiences?"
        r"|pointers|help|thoughts|info|information|insights?|luck|news|updates?)\b",
        "neg",
    ),
    (
        "i wonder",
        r"\bi\s+(?:was\s+|am\s+|'m\s+)?(?:just\s+)?wonder(?:ing)?\b|^(?:just\s+)?wondering\b"
        r"|\bwondering\s+(?:if|whether|how|what|where|when|why|who|which)\b",
        "",
    ),
    (
        "looking for advice",
        r"\b(?:looking|searching)\s+for\s+(?:some\s+|any\s+)?(?:advice|tips|help"
        r"|recommendations?|suggestions?|input|info|information|experiences?|pointers)\b",
        "",
    ),
    (
        "need help",
        r"\b(?:need|needs|needed|want|could\s+use)\s+"
        r"(?:some\s+|a\s+little\s+|a\s+bit\s+of\s+|urgent\s+)?"
        r"(?:help|advice|assistance|guidance|tips)\b",
        "neg",
    ),
    (
        "help needed",
        r"\bhelp\s+(?:needed|wanted|appreciated|welcome)\b"
        r"|\bhelp\s+(?:me\s+)?(?:please|pls|plz)\b|\b(?:please|pls|plz)\s+help\b",
        "",
    ),
    ("please advise", r"\b(?:please|pls|plz)\s+(?:advi[sc]e|let\s+me\s+know|explain)\b", ""),
    (
        "recommendations welcome",
        r"\b(?:recommendations?|suggestions?|tips|advice|input|ideas|thoughts|help)\s+"
        r"(?:are\s+|is\s+)?(?:very\s+|much\s+|greatly\s+)?(?:welcome|appreciated|wanted|needed)\b",
        "",
    ),
    (
        "tips please",
        r"\b(?:tips|advice|recommendations?|suggestions?|help)\b[^.!?\n]{0,60}?"
        r"\b(?:please|pls|plz)\b",
        "",
    ),
    ("thanks in advance", r"\b(?:thanks|thank\s+you|thx|ty)\s+in\s+advance\b|\btia\b", ""),
    (
        "not sure how",
        r"\b(?:not\s+sure|unsure|no\s+idea|no\s+clue|idk"
        r"|(?:i\s+)?(?:don't|dont|do\s+not)\s+(?:really\s+)?(?:know|understand|get)"
        r"|(?:i\s+)?(?:can't|cant|cannot)\s+(?:find\s+out|figure\s+out|work\s+out))\s+"
        r"(?:how|where|whether|if|what|which|who|when|why)\b",
        "hedge",
    ),
    (
        "trying to understand",
        r"\b(?:i'm|im|am)\s+(?:\w+\s+)?(?:trying|struggling)\s+to\s+"
        r"(?:understand|figure\s+out|find\s+out|work\s+out)\b",
        "",
    ),
    (
        "confused about",
        r"\b(?:i'm|im|am|so|really|totally|bit|little|very|completely)\s+(?:confused|lost)\s+"
        r"(?:about|with|by|on)\b",
        "hedge",
    ),
    (
        "question",
        r"^(?:(?:quick|small|short|stupid|dumb|silly|random|another|a|one\s+more|follow-up"
        r"|general)\s+)?question\b"
        r"|\b(?:i\s+have|i've\s+got|got)\s+a\s+(?:quick\s+|small\s+|short\s+)?question\b"
        r"|\bsorry\s+(?:for\s+)?(?:the|this|a|my)\s+(?:\w+\s+)?question\b",
        "",
    ),
    # --- Dutch
    (
        "weet iemand",
        r"\b(?:weet|heeft|kan|kent|zou|wil|mag)\s+(?:er\s+)?(?:hier\s+)?iemand\b"
        r"|\bis\s+er\s+(?:hier\s+)?iemand\b",
        "",
    ),
    (
        "iemand ervaring met",
        r"^(?:\w+\s+){0,2}?iemand\s+(?:hier\s+)?(?:ervaring|ervaringen|tips?"
        r"|een\s+(?:tip|idee|suggestie|aanrader)|idee|ideeën|advies|suggesties|aanraders"
        r"|bekend)\b",
        "",
    ),
    ("ik vraag me af", r"\b(?:vraag|vroeg)\s+(?:me|mij|ik\s+me)\s+af\b", ""),
    (
        "wie weet",
        r"\bwie\s+weet\s+(?:er\s+)?(?:waar|hoe|of|wat|welke|wanneer|een|iets|meer)\b",
        "",
    ),
    (
        "graag advies",
        r"\bgraag\s+(?:wat\s+|jullie\s+|uw\s+|je\s+)?"
        r"(?:advies|hulp|tips|input|suggesties|mening|ervaringen)\b"
        r"|\b(?:advies|tips|hulp|suggesties|ideeën)\s+(?:welkom|gevraagd|gezocht|nodig|gewenst)\b",
        "neg",
    ),
    ("alvast bedankt", r"\balvast\s+(?:bedankt|dank(?:je|jewel)?|thanks)\b", ""),
    (
        "ik weet niet hoe",
        r"\b(?:weet|snap|begrijp)\s+(?:het\s+)?niet\s+(?:zo\s+)?"
        r"(?:goed\s+|precies\s+|zeker\s+|helemaal\s+)?"
        r"(?:hoe|waar|of|wat|welke|wanneer|waarom|wie)\b"
        r"|\bgeen\s+idee\s+(?:hoe|waar|of|wat|welke|wanneer)\b|\bniet\s+zeker\s+of\b",
        "hedge",
    ),
    (
        "ik zoek advies",
        r"\b(?:zoek|zoeken)\s+(?:wat\s+|een\s+beetje\s+)?"
        r"(?:advies|tips|hulp|informatie|info|ervaringen)\b",
        "",
    ),
    (
        "vraagje",
        r"\bvraagje\b|^vraag\b|\bik\s+heb\s+een\s+(?:kleine\s+|korte\s+|domme\s+)?vraag\b",
        "",
    ),
)
_REQUESTS: Final[tuple[tuple[str, re.Pattern[str], str], ...]] = tuple(
    (key, re.compile(pattern), guard) for key, pattern, guard in _REQUEST_SPECS
)

# wh-word + verb + subject anywhere in a sentence: "..., how do I report it".
_EMBEDDED_WH: Final = re.compile(
    r"\b(?:how|what|where|when|why|which)\s+"
    r"(?:do|does|did|can|could|should|would|will|is|are|am|shall|must)\s+"
    r"(?:i|you|u|we|they|he|she|it|one|people|anyone|someone)\b"
    r"|\b(?:hoe|wat|waar|wanneer|waarom|welke|hoeveel)\s+"
    r"(?:kan|kun|moet|mag|zal|zou|is|zijn|heb|heeft|doe|doet|ga|gaat|krijg|krijgt|vind)\s+"
    r"(?:ik|je|jij|u|we|wij|jullie|ze|het|er|men)\b"
    r"|\bwie\s+(?:kan|kent|heeft|wil|zou|mag|moet)\s+(?:me|mij|ons|hier|er|een|iets|dit|dat)\b"
)
_TAG_QUESTION: Final = re.compile(
    r",\s*(?:right|correct|toch|klopt\s+dat|klopt\s+het|of\s+niet|or\s+not|isn't\s+it)"
    r"\s*[.!]*$"
)


# --------------------------------------------------------------------------
# Opener rules
# --------------------------------------------------------------------------


def _skip_fillers(tokens: list[tuple[str, str]]) -> int:
    """Return the index of the first token after greetings and discourse markers."""
    i = 0
    while i < len(tokens):
        low = tokens[i][0]
        if low in {",", "!", "."}:
            i += 1
            continue
        nxt = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        if low in _FILLER_FIRSTS and (low, nxt) in _FILLER_PAIRS:
            i += 2
            continue
        if low in _FILLERS:
            i += 1
            continue
        break
    return i


def _english_wh(wh: str, nxt: str, nxt2: str, length: int) -> bool:
    """Judge an English wh-word opener given the following two words."""
    if wh in {"why", "whose", "whom"}:
        return True
    if wh == "who" and nxt == "knows":
        return bool(nxt2)
    if wh == "what" and nxt in _EN_ARTICLES:
        return False  # "What a day"
    if wh == "how" and nxt in _EN_EXCLAMATION_ADJECTIVES:
        # "How nice", "how cool is that", "How lucky you are" exclaim;
        # "How strict are they with the deadline" would go on asking.
        return nxt2 in _EN_AUX_FULL and length > 4
    if nxt in _EN_SUBJECT_PRONOUNS:
        # "Where I live ..." is a clause; "Where I can find ..." asks.
        return nxt2 in _EN_MODALS
    return True


def _english_aux(aux: str, nxt: str, nxt_orig: str) -> bool:
    """Judge an English auxiliary opener ("Is it ...", "Can I ...")."""
    if aux == "am":
        return nxt == "i"
    if aux in _EN_AUX_PERSON_ONLY:
        if nxt in _EN_PERSONS:
            return True
        return aux not in {"have", "haven't", "havent"} and _proper_noun(nxt, nxt_orig)
    subjects = _EN_PERSONS | _EN_THINGS
    if aux in _EN_COPULA:
        subjects = subjects - _EN_ARTICLES
        if nxt in _EN_MODAL_ADJECTIVES:
            return True
        if aux in _EN_PLURAL_COPULA and _looks_plural(nxt):
            return True  # "Are bikes allowed ...", "Were trains running ..."
    return nxt in subjects or _proper_noun(nxt, nxt_orig)


def _looks_plural(word: str) -> bool:
    """Return whether *word* looks like an English plural noun ("bikes", "dogs")."""
    return len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "'s"))


def _proper_noun(low: str, orig: str) -> bool:
    """Return whether *orig* looks like a capitalised name or acronym (a subject)."""
    return len(orig) > 1 and orig[0].isupper() and low not in _EN_NOT_SUBJECT


def _dutch_wh(wh: str, nxt: str, nxt2: str, length: int) -> bool:
    """Judge a Dutch wh-word opener given the following two words."""
    if wh == "wie" and nxt == "weet":
        return bool(nxt2)  # "Wie weet, misschien ..." vs "Wie weet waar ..."
    if wh == "wat" and (nxt == "een" or nxt in _NL_EXCLAMATION_ADJECTIVES):
        return False  # "Wat een mooie dag", "Wat leuk dat ..."
    if wh == "hoe" and nxt in _NL_EXCLAMATION_ADJECTIVES and length <= 4:
        return False  # "Hoe leuk!"
    return nxt not in _NL_SUBORDINATE_NEXT


def _dutch_verb(verb: str, nxt: str, nxt2: str, nxt_orig: str) -> bool:
    """Judge a Dutch verb-first opener ("Kan ik ...", "Heeft iemand ...")."""
    if nxt in _NL_FIRST_PERSON and nxt2 in _NL_TOPIC_DROP_ADVERBS:
        return False  # "Zou ik ook doen", "Hebben we allemaal meegemaakt"
    if nxt in _NL_YOU and nxt2 in _NL_ADVICE_ADVERBS:
        return False  # "(Dat) kun je gewoon online doen", "Moet je even bellen"
    matched = False
    if verb in _NL_MODALS:
        matched = nxt in _NL_ALL_PERSONS | _NL_DETERMINERS
    if not matched and verb in _NL_PAST_SINGULAR:
        # "Was een leuke avond" drops "het"; "Was het druk?" asks.
        matched = nxt in (_NL_ALL_PERSONS | _NL_DETERMINERS) - {"een"}
    if not matched and verb in _NL_STEMS:
        matched = nxt in _NL_YOU or (verb == "kun" and nxt == "ik")
    if not matched and verb in _NL_THIRD_SINGULAR:
        subjects = _NL_THIRD
        if verb in {"is", "was"}:
            subjects = subjects - {"een"}
        matched = nxt in subjects
    if not matched and verb in _NL_PLURAL_VERBS:
        matched = nxt in _NL_PLURAL
    if not matched and verb not in _NL_STEMS and _proper_noun(nxt, nxt_orig):
        matched = verb in _NL_MODALS | _NL_THIRD_SINGULAR | _NL_PLURAL_VERBS
    return matched


_NL_VERB_OPENERS: Final = (
    _NL_MODALS | _NL_STEMS | _NL_THIRD_SINGULAR | _NL_PAST_SINGULAR | _NL_PLURAL_VERBS
)


def _opener(clause: str) -> str | None:
    """Return the interrogative opener of *clause*, or ``None`` if it has none."""
    tokens = _tokens(clause)
    start = _skip_fillers(tokens)
    if start >= len(tokens) or not _is_word(tokens[start][0]):
        return None
    rest = tokens[start:]
    low_text = " ".join(t for t, _ in rest if _is_word(t))
    if any(idiom.search(low_text) for idiom in _IDIOMS):
        return None
    first = rest[0][0]
    nxt, nxt_orig, nxt2 = "", "", ""
    if len(rest) > 1 and _is_word(rest[1][0]):
        nxt, nxt_orig = rest[1]
        if len(rest) > 2 and _is_word(rest[2][0]):
            nxt2 = rest[2][0]
    if not nxt:
        return None  # "Waar, dat klopt", "Why?" (handled by '?'), "How!"
    length = sum(1 for t, _ in rest if _is_word(t))
    checks: list[bool] = []
    if first in _EN_WH:
        checks.append(_english_wh(first, nxt, nxt2, length))
    if first in _EN_AUX_PERSON_ONLY or first in _EN_AUX_FULL or first == "am":
        checks.append(_english_aux(first, nxt, nxt_orig))
    if first in _EN_ANYONE:
        checks.append(nxt not in _EN_ANYONE_NOT_NEXT)
    if first in _NL_WH:
        checks.append(_dutch_wh(first, nxt, nxt2, length))
    if first in _NL_VERB_OPENERS:
        checks.append(_dutch_verb(first, nxt, nxt2, nxt_orig))
    if first == "iemand":
        checks.append(nxt in _NL_IEMAND_NEXT)
    return first if any(checks) else None


def _find_request(sentence: str) -> str | None:
    """Return the key of the first request cue found in *sentence*, if any.

    The guards look at a bounded window before a cue and at one precomputed position after
    it, so a sentence repeating a guarded cue ("no need help no need help ...") stays linear.
    """
    low = _normalise(sentence)
    last_hedge: int | None = None
    for key, pattern, guard in _REQUESTS:
        for match in pattern.finditer(low):
            if guard == "neg":
                # Both guards end at the cue and reach back a few words; searching the window
                # (\b still sees the text around it) is the same as searching everything
                # before the cue, unless those words are absurdly long.
                end = match.start()
                start = max(0, end - _GUARD_WINDOW)
                if _NEGATED_BEFORE.search(low, start, end) or _CONDITIONAL_BEFORE.search(
                    low, start, end
                ):
                    continue
            if guard == "hedge":
                if last_hedge is None:
                    starts = [m.start() for m in _HEDGE_AFTER.finditer(low)]
                    last_hedge = starts[-1] if starts else -1
                if last_hedge >= match.end():
                    continue
            return key
    return None


def _sentences(lines: list[str]) -> list[str]:
    """Split cleaned lines into sentences."""
    out: list[str] = []
    for line in lines:
        out.extend(s.strip() for s in _SENTENCE_SPLIT_RE.split(line) if s.strip())
    return out


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def detect_question(
    text: str,
    *,
    min_chars: int = 12,
    min_words: int = 3,
    is_bridged_copy: bool = False,
) -> Detection:
    """Decide whether *text* asks a question, and say why.

    Args:
        text: The raw chat message (Discord or Telegram markup allowed).
        min_chars: Minimum length of the cleaned text; shorter is "too short".
        min_words: Minimum number of words in the cleaned text.
        is_bridged_copy: ``True`` if the message is a copy relayed by the
            Discord/Telegram bridge; such copies are never questions, so the
            original is only answered once.

    Returns:
        A :class:`Detection` with the verdict and a short reason.
    """
    if _COMMAND_RE.match(text):
        return Detection(False, "command")
    if is_bridged_copy:
        return Detection(False, "bridged copy")
    # A question is asked near the start; judging more only costs time on hostile input.
    text = text[:MAX_CHARS]

    lines = _clean_lines(text)
    cleaned = _without_breaks(" ".join(lines))
    if len(cleaned) < min_chars or len(_words(cleaned)) < min_words:
        return Detection(False, "too short")

    if any(_has_question_mark(line) for line in lines):
        return Detection(True, "question mark")

    sentences = _sentences(lines)
    for sentence in sentences:
        key = _find_request(sentence)
        if key is not None:
            return Detection(True, f"request '{key}'")

    for sentence in sentences:
        for clause in _CLAUSE_SPLIT_RE.split(sentence):
            opener = _opener(clause)
            if opener is not None:
                return Detection(True, f"interrogative opener '{opener}'")

    for sentence in sentences:
        low = _normalise(sentence)
        match = _EMBEDDED_WH.search(low)
        if match is not None:
            return Detection(True, f"interrogative phrase '{match.group(0)}'")
        tag = _TAG_QUESTION.search(low)
        if tag is not None:
            return Detection(True, f"tag question '{tag.group(0).strip(' ,.!')}'")

    return Detection(False, "no cue")


#: The fewest words an asking part needs to be matched on its own.
MIN_PART_WORDS: Final = 4


def _asks(sentence: str) -> bool:
    """Whether one sentence carries a question cue of its own."""
    if _has_question_mark(sentence) or _find_request(sentence) is not None:
        return True
    if any(_opener(clause) is not None for clause in _CLAUSE_SPLIT_RE.split(sentence)):
        return True
    low = _normalise(sentence)
    return _EMBEDDED_WH.search(low) is not None or _TAG_QUESTION.search(low) is not None


def question_part(text: str) -> str | None:
    """The sentences of ``text`` that ask, when it also says other things ("Hi all! I moved
    here last month. How do I file my tax return?" gives the last sentence); None when every
    sentence asks, or none does. Matching can then look at what is asked without the
    greeting and the story around it."""
    sentences = _sentences(_clean_lines(text[:MAX_CHARS]))
    asking = [s for s in sentences if _asks(s)]
    if not asking or len(asking) == len(sentences):
        return None
    part = " ".join(asking)
    # "Any advice?" alone says nothing to match on; the whole message is all there is.
    return part if len(_words(_normalise(part))) >= MIN_PART_WORDS else None


def is_question(
    text: str,
    *,
    min_chars: int = 12,
    min_words: int = 3,
    is_bridged_copy: bool = False,
) -> bool:
    """Return ``detect_question(text, ...).is_question``; same keyword arguments."""
    return detect_question(
        text,
        min_chars=min_chars,
        min_words=min_words,
        is_bridged_copy=is_bridged_copy,
    ).is_question
