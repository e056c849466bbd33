"""Question detection (faq.detect): one test group per rule, plus the labelled set."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from faq.detect import Detection, clean_text, detect_question, is_question

LABELLED = Path(__file__).parents[1] / "data" / "questions_labelled.tsv"


def _load_labelled() -> list[tuple[bool, str, str]]:
    """Return ``(is_question, lang, text)`` rows; a literal ``\\n`` is a line break."""
    rows: list[tuple[bool, str, str]] = []
    lines = LABELLED.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["label", "lang", "text"]
    for line in lines[1:]:
        if not line.strip():
            continue
        label, lang, text = line.split("\t", 2)
        assert label in {"Q", "N"}, line
        assert lang in {"en", "nl"}, line
        rows.append((label == "Q", lang, text.replace("\\n", "\n")))
    return rows


# --- API ------------------------------------------------------------------


def test_detection_is_frozen_dataclass() -> None:
    result = detect_question("Where do I register my address?")
    assert result == Detection(True, "question mark")
    with pytest.raises(AttributeError):
        result.is_question = False  # type: ignore[misc]


def test_is_question_matches_detect_question() -> None:
    assert is_question("hoe vraag ik huurtoeslag aan")
    assert not is_question("Thanks, that worked!")
    assert not is_question("Where do I register?", is_bridged_copy=True)
    assert not is_question("BSN how?", min_words=3)
    assert is_question("BSN how?", min_words=2, min_chars=5)


# --- cleaning ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Hi** <@123> see https://x.nl/?a=1 🎉", "Hi see"),
        ("@sarah_nl   which   huisarts", "which huisarts"),
        ("mail info@ind.nl about it", "mail info@ind.nl about it"),
        ("`code` ~~old~~ _it_ ||spoiler||", "code old it spoiler"),
        ("> where do I get a BSN\nat the gemeente", "at the gemeente"),
        ("> only a quote here", "only a quote here"),
        ("party :tada: <:pepe:1234> time", "party time"),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


# --- rejections: command, bridged copy, too short -------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "/help",
        "!ask bsn",
        "/faq huurtoeslag",
        "!vraag digid",
        "/start@copss_bot",
        "/ask is it open?",
    ],
)
def test_commands_are_not_questions(text: str) -> None:
    assert detect_question(text) == Detection(False, "command")


@pytest.mark.parametrize("text", ["!!! what, really?", "/usr/bin is where is it?"])
def test_punctuation_or_paths_are_not_commands(text: str) -> None:
    assert detect_question(text).reason != "command"


def test_bridged_copy_is_not_a_question() -> None:
    result = detect_question("Does anyone know a good dentist?", is_bridged_copy=True)
    assert result == Detection(False, "bridged copy")


@pytest.mark.parametrize(
    "text",
    ["?", "??", "???", "lol", "ok cool", "BSN?", "any update?", "👍", "https://ind.nl/?q=1 🎉"],
)
def test_too_short(text: str) -> None:
    assert detect_question(text) == Detection(False, "too short")


def test_thresholds_are_configurable() -> None:
    assert detect_question("BSN where?", min_words=1, min_chars=1).is_question
    assert detect_question("Where do I register?", min_words=10).reason == "too short"
    assert detect_question("Where do I register?", min_chars=100).reason == "too short"


# --- question mark ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Can I open a bank account without a BSN?",
        "i need a notary for a samenlevingscontract, recommendations?",
        "Mijn werkgever zegt dat ik geen recht heb, klopt dat?",
        "Is that right？ full-width mark",
        "¿Alguien sabe where the IND desk is",
        "the deposit thing?? landlord still has it",
        "Is that normal for the IND 🤔?",
    ],
)
def test_question_mark(text: str) -> None:
    assert detect_question(text) == Detection(True, "question mark")


@pytest.mark.parametrize(
    "text",
    [
        "The 30% ruling is explained at https://www.belastingdienst.nl/30?lang=en&x=1",
        "Kijk even op https://www.toeslagen.nl/?lang=nl daar staat alles",
        "> does anyone know where the IND is?\nIt's in Rijswijk, next to the station",
    ],
)
def test_question_mark_in_url_or_quote_does_not_count(text: str) -> None:
    assert not detect_question(text).is_question


def test_emoji_end_a_sentence() -> None:
    assert detect_question("Congrats 🎉 is the party on Saturday") == Detection(
        True, "interrogative opener 'is'"
    )
    assert not detect_question("Thanks 🙏 will do this tomorrow").is_question


def test_long_messages_stay_fast() -> None:
    start = time.perf_counter()
    for text in ("word " * 2000, "if you " * 3000 + "need help", "x, " * 5000):
        detect_question(text)
    assert time.perf_counter() - start < 1.0


# --- interrogative openers: English ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "opener"),
    [
        ("how long does it take for the DigiD letter to arrive", "how"),
        ("what happens if I miss the deadline for the tax return", "what"),
        ("what's the best way to find an apartment here", "what"),
        ("where to find cheap furniture besides marktplaats", "where"),
        ("When does the huurtoeslag get paid, beginning or end", "when"),
        ("Why is my energy bill so high this month", "why"),
        ("who do I call if my landlord refuses to return the deposit", "who"),
        ("Which bank is best for newcomers without a BSN", "which"),
        ("Is Albert Heijn open on Kings Day", "is"),
        ("is it ok to ride on the sidewalk with a kid seat", "is"),
        ("Is possible to register without a rental contract", "is"),
        ("are bikes allowed on the train during rush hour", "are"),
        ("Am I allowed to sublet my room for the summer", "am"),
        ("Can u pay the gemeentebelasting in installments", "can"),
        ("could my partner work on my kennismigrant permit", "could"),
        ("should i get the aanvullende verzekering for physio", "should"),
        ("Would you go for Bunq or ING as a newcomer", "would"),
        ("Will the trains run tomorrow with the strike", "will"),
        ("Do you need a permit for a satellite dish", "do"),
        ("Does the gemeente check if you really live there", "does"),
        ("Did you get the letter from the belastingdienst", "did"),
        ("Has the IND started processing January applications", "has"),
        ("Have you ever been fined for cycling without lights", "have"),
        ("May I register at my friend's address for a month", "may"),
        ("Must I bring the original birth certificate", "must"),
        ("Don't you need a DigiD for that form", "don't"),
        ("Hi all, is there a way to get the BSN earlier", "is"),
        ("Where I can find the form for the zorgtoeslag", "where"),
        ("Moved last week. Is the gemeente open on Saturday", "is"),
        ("Not sure where to ask this but how do I cancel Ziggo", "how"),
        ("Anyone here working at ASML and living in Eindhoven", "anyone"),
    ],
)
def test_english_openers(text: str, opener: str) -> None:
    assert detect_question(text) == Detection(True, f"interrogative opener '{opener}'")


@pytest.mark.parametrize(
    "text",
    [
        "How nice! Congrats on the new apartment",
        "how cool is that",
        "How lucky you are to find a place that fast",
        "What a beautiful day today, finally some sun",
        "What the hell, they charged me twice",
        "Where I live the gemeente is pretty fast actually",
        "When I moved here I waited 6 weeks for the DigiD letter",
        "What you need is a werkgeversverklaring from your employer",
        "Which is why I always tell people to register first",
        "Who cares about the weather when you have stroopwafels",
        "When in doubt just call the belastingdienst",
        "Where there's a will there's a way",
        "Do not sign anything before you have seen the apartment",
        "Don't forget to cancel your zorgverzekering when you leave",
        "Can't wait for the summer holidays to start",
        "Will do, thanks for the help!",
        "Have a nice weekend all",
        "Have fun at the King's Day market",
        "Did it online last week, took 10 minutes",
        "Do it before the end of the month",
        "Should be fine, I did the same last year",
        "Could be the post, PostNL has been terrible",
        "Must be nice to have a landlord who fixes stuff",
        "Is easy, just book the appointment online",
        "Is fine, I already paid it",
        "Was a nightmare but it's done now",
        "Has been raining for 3 days straight",
        "Can confirm, got mine in 2 weeks",
        "Would recommend the expat center in Eindhoven",
        "Does the job, but the bikes are heavy",
        "Are you kidding, that's way too expensive",
        "Anyone who says rent is cheap here is lying",
        "Anyone can register, you just need an address",
    ],
)
def test_english_non_questions_with_question_words(text: str) -> None:
    assert not detect_question(text).is_question, detect_question(text)


# --- interrogative openers: Dutch ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "opener"),
    [
        ("hoe vraag ik huurtoeslag aan als ik net verhuisd ben", "hoe"),
        ("wat kost een uittreksel bij de gemeente Utrecht", "wat"),
        ("Waar vind ik mijn BSN als ik de brief kwijt ben", "waar"),
        ("wanneer krijg je de voorlopige teruggave", "wanneer"),
        ("Waarom krijg ik een brief van het CJIB", "waarom"),
        ("Wie heeft er ervaring met huren via Pararius", "wie"),
        ("welk energiebedrijf is op dit moment het goedkoopst", "welk"),
        ("Welke zorgverzekeraar is het goedkoopst", "welke"),
        ("hoeveel toeslag krijg je bij een huur van 750", "hoeveel"),
        ("Hoelang duurt een aanvraag voor een verblijfsvergunning", "hoelang"),
        ("kan je de huurtoeslag met terugwerkende kracht aanvragen", "kan"),
        ("Kun je een BSN aanvragen zonder vast adres", "kun"),
        ("Kunnen jullie een goede zorgverzekering aanraden", "kunnen"),
        ("Moet ik mijn buitenlandse rijbewijs omwisselen", "moet"),
        ("Moeten expats ook gemeentelijke belastingen betalen", "moeten"),
        ("Mag mijn huisbaas zomaar de huur verhogen", "mag"),
        ("Mogen we een schotel op het balkon hangen", "mogen"),
        ("Is het verplicht om een zorgverzekering te hebben", "is"),
        ("Zijn er nog goedkope sportscholen in Den Bosch", "zijn"),
        ("Ben je verplicht om hondenbelasting te betalen", "ben"),
        ("Heb je een DigiD nodig voor de huurtoeslag", "heb"),
        ("Hebben jullie tips voor een makelaar in Den Haag", "hebben"),
        ("Heeft de gemeente mijn BSN doorgegeven", "heeft"),
        ("weet jij toevallig of de bieb engelse boeken heeft", "weet"),
        ("Weten jullie of je het eigen risico kan spreiden", "weten"),
        ("Zou het uitmaken of ik me in januari inschrijf", "zou"),
        ("Zal het morgen druk zijn bij het stadskantoor", "zal"),
        ("Doe je de aangifte zelf of via een adviseur", "doe"),
        ("Doet de belastingdienst de aangifte ook in het Engels", "doet"),
        ("Klopt het dat je geen 30% regeling meer krijgt", "klopt"),
        ("Hallo allemaal, is het normaal dat de IND zo traag is", "is"),
    ],
)
def test_dutch_openers(text: str, opener: str) -> None:
    assert detect_question(text) == Detection(True, f"interrogative opener '{opener}'")


@pytest.mark.parametrize(
    "text",
    [
        "Wat een mooie dag vandaag!",
        "Wat leuk dat je er ook bij bent!",
        "Hoe leuk!! Gefeliciteerd met je nieuwe baan",
        "Hoe dan ook, je moet je binnen 5 dagen inschrijven",
        "Welke dan ook, ze zijn allemaal even duur",
        "Waar ik woon is het prima, de gemeente is snel",
        "Wanneer je aankomt moet je eerst naar de gemeente",
        "Wat je nodig hebt is een geldig paspoort",
        "Hoeveel je krijgt hangt af van je inkomen",
        "Wie het eerst komt, het eerst maalt",
        "Wie weet, misschien wordt het volgend jaar beter",
        "Waar, dat had ik ook gehoord",
        "Is gelukt, bedankt voor de hulp!",
        "Is echt zo, ik had precies hetzelfde",
        "Kan gebeuren, de post is soms traag",
        "Kan ik me voorstellen, het is een doolhof",
        "Weet ik niet precies, heb het zelf nooit gedaan",
        "Weet je wat ik zou doen, gewoon bellen",
        "Ben het helemaal met je eens",
        "Ben benieuwd hoe het afloopt",
        "Heb het gisteren aangevraagd, duurt 5 werkdagen",
        "Heb ik ook gehad, na een week was het opgelost",
        "Zou ik ook doen, het expat center is sneller",
        "Hebben we allemaal meegemaakt, hou vol",
        "Moet kunnen, zolang je maar ingeschreven staat",
        "Moet je zien hoe druk het is bij het stadskantoor",
        "Kun je gewoon online doen via de site",
        "Zal wel, de belastingdienst is altijd zo",
        "Mag ik hopen, anders is het heel duur",
        "Zijn gewoon open op zaterdag tot 17:00",
        "Heeft geen zin om te bellen, ze nemen niet op",
        "Was een leuke borrel gisteren, tot de volgende keer",
        "Zit er al drie weken op te wachten",
        "Doe maar rustig aan, komt goed",
        "Iemand heeft mijn fiets meegenomen bij het station",
    ],
)
def test_dutch_non_questions_with_question_words(text: str) -> None:
    assert not detect_question(text).is_question, detect_question(text)


# --- requests and indirect questions --------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("anyone know a good dentist in Amersfoort", "anyone know"),
        ("Hi all does anybody know if the NS flex is worth it", "anyone know"),
        ("Any idea why my zorgtoeslag got cancelled", "any advice"),
        ("any tips for getting a parking permit in Haarlem", "any advice"),
        ("I was wondering if I can still apply for the ruling", "i wonder"),
        ("I wonder whether the expat center does walk-ins", "i wonder"),
        ("wondering if anyone switched from HSM to permanent residence", "i wonder"),
        ("my landlord wants 3 months deposit, can someone explain this", "can someone"),
        ("Could somebody translate this letter from the CJIB for me", "can someone"),
        ("so confused about huurtoeslag, someone pls explain", "someone please"),
        ("Looking for advice on contesting the WOZ value of my house", "looking for advice"),
        ("need help with my M form, moved here in july", "need help"),
        ("Help needed with the IND address change form", "help needed"),
        ("Please advise: landlord wants 3 months deposit upfront", "please advise"),
        ("Tax advisor in Rotterdam, recommendations welcome", "recommendations welcome"),
        ("Tips for a first-time buyer in Amsterdam please", "tips please"),
        ("Thanks in advance, the IND letter mentions extra documents", "thanks in advance"),
        ("I don't know whether I need to file a tax return", "not sure how"),
        ("not sure how the eigen risico works for my physio", "not sure how"),
        ("I'm trying to understand how box 3 works for savings", "trying to understand"),
        ("Quick question about the 30% ruling and my new contract", "question"),
        ("Weet iemand hoe lang het duurt voordat de DigiD brief komt", "weet iemand"),
        ("Heeft iemand ervaring met de kennismigrantenregeling", "weet iemand"),
        ("Kan iemand mij uitleggen wat een voorlopige aanslag is", "weet iemand"),
        ("Is er iemand die me kan helpen met de DigiD aanvraag", "weet iemand"),
        ("iemand ervaring met Swapfiets in Utrecht", "iemand ervaring met"),
        ("iemand tips voor een goedkope verhuisbus", "iemand ervaring met"),
        ("Ik vraag me af of ik nog recht heb op zorgtoeslag", "ik vraag me af"),
        ("Wie weet waar je goedkoop een fiets kan kopen", "wie weet"),
        ("Graag advies: mijn verhuurder houdt de borg in", "graag advies"),
        ("Hulp nodig met het invullen van het M-formulier", "graag advies"),
        ("Alvast bedankt voor de tips over de apostille", "alvast bedankt"),
        ("Ik weet niet zo goed hoe ik mijn inkomen moet opgeven", "ik weet niet hoe"),
        ("Ik zoek advies over een huis kopen als expat", "ik zoek advies"),
        ("Vraagje over de afvalstoffenheffing in een studio", "vraagje"),
        ("hoi, ik heb een vraag over mijn zorgtoeslag", "vraagje"),
    ],
)
def test_requests(text: str, key: str) -> None:
    assert detect_question(text) == Detection(True, f"request '{key}'")


@pytest.mark.parametrize(
    "text",
    [
        "Let me know if you need help with the forms, happy to help",
        "Als je hulp nodig hebt met de formulieren, stuur me een bericht",
        "I don't need any advice, just wanted to vent",
        "Not sure if this still applies but when I did it they accepted a scan",
        "I'm not sure how it works for non-EU, but for EU you need a passport",
        "Ik weet niet hoe het bij jullie zit, maar bij mij ging het snel",
        "No idea, sorry",
        "I don't know, never had that problem",
        "I had the same question last month, you need an apostille",
        "Thanks for the tips, I'll check out marktplaats",
    ],
)
def test_request_words_in_answers_are_not_requests(text: str) -> None:
    assert not detect_question(text).is_question, detect_question(text)


# --- phrases inside a sentence and tag questions -----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Help! my bike got stolen at the station, how do I report it",
        "Het formulier is onduidelijk, wie kan me helpen",
        "ik snap de brief niet, wat moet ik nu doen",
    ],
)
def test_embedded_interrogative_phrase(text: str) -> None:
    result = detect_question(text)
    assert result.is_question
    assert result.reason.startswith("interrogative phrase"), result


@pytest.mark.parametrize(
    "text",
    [
        "The deadline for the tax return is 1 May, right",
        "Je hoeft je niet af te melden voor 3 maanden, toch",
    ],
)
def test_tag_question(text: str) -> None:
    assert detect_question(text).reason.startswith("tag question")


# --- acknowledgements, small talk and answers -------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "thanks a lot, that worked!",
        "Thank you so much!! 🙏",
        "bedankt voor de hulp iedereen",
        "Oké dankjewel, ik ga het proberen",
        "ok cool, see you at the meetup",
        "Good morning everyone!",
        "Goedemorgen allemaal, fijne dag ☀️",
        "You can get the BSN at the gemeente on the day of registration.",
        "Je kunt huurtoeslag aanvragen via Mijn toeslagen",
        "@Tom the form is here https://ind.nl/en/forms/7526.pdf",
    ],
)
def test_acknowledgements_and_answers(text: str) -> None:
    assert detect_question(text) == Detection(False, "no cue")


# --- the labelled set --------------------------------------------------------------


def test_labelled_set_shape() -> None:
    rows = _load_labelled()
    assert len(rows) >= 220
    share_q = sum(q for q, _, _ in rows) / len(rows)
    assert 0.40 <= share_q <= 0.50
    assert sum(lang == "nl" for _, lang, _ in rows) >= 60


def test_labelled_set_precision_and_recall() -> None:
    rows = _load_labelled()
    tp = fp = fn = 0
    misses: list[str] = []
    for expected, _lang, text in rows:
        result = detect_question(text)
        if result.is_question and expected:
            tp += 1
        elif result.is_question:
            fp += 1
            misses.append(f"FP {result.reason}: {text}")
        elif expected:
            fn += 1
            misses.append(f"FN {result.reason}: {text}")
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    detail = "\n".join(misses)
    assert precision >= 0.90, f"precision {precision:.3f}\n{detail}"
    assert recall >= 0.85, f"recall {recall:.3f}\n{detail}"
