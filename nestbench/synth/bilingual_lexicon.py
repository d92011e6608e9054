"""The English↔German word tables of ``nestbench.synth.bilingual_grammar``: data only.

Why a separate module: the grammar's rules (word order, case, agreement) read better without three hundred
words in between, and a test can check the tables on their own (unique forms, genders, spellings).

Every English entry maps to one German entry, and no two entries of a table share a form in either
language, so two different derivations never render to the same sentence by accident. English words are
plain letters that espeak-ng reads as written (no digits, abbreviations or all-capital words); proper
names, towns, weekdays and months are capitalised in both languages, German nouns always.
German adjectives are stored as the stem that takes the endings (``teur`` for *teuer*, ``dunkl`` for
*dunkel*); place nouns carry their genitive (after *in der Nähe*) and the prepositions that suit them.
"""

from __future__ import annotations

from dataclasses import dataclass

GENDERS = ("m", "f", "n")


@dataclass(frozen=True)
class Noun:
    """A noun in both languages; ``gender`` is the German one ("m", "f", "n")."""

    en: str
    de: str
    gender: str
    en_plural: str = ""
    de_plural: str = ""
    de_genitive: str = ""  # masculine and neuter place nouns: "Flusses"; feminine nouns do not change


@dataclass(frozen=True)
class Word:
    """A word or fixed phrase with one translation: adjectives (German stem), names, towns, times, numbers."""

    en: str
    de: str


@dataclass(frozen=True)
class Verb:
    """A transitive verb taking an accusative object: English past and base form, German Präteritum (3rd sg)."""

    past: str
    base: str
    de: str


@dataclass(frozen=True)
class Preposition:
    """A locative preposition; ``genitive`` marks *near* = *in der Nähe* + genitive, the others take the dative."""

    key: str
    en: str
    de: str
    genitive: bool = False


@dataclass(frozen=True)
class PlaceNoun:
    """A place and the prepositions (keys of ``PREPOSITIONS``) that make sense with it."""

    noun: Noun
    prepositions: tuple[str, ...]


def _rows(table: str) -> list[list[str]]:
    return [[field.strip() for field in line.split("|")] for line in table.strip().splitlines()]


def _words(table: str) -> tuple[Word, ...]:
    return tuple(Word(en, de) for en, de in _rows(table))


def _agents(table: str) -> tuple[Noun, ...]:
    return tuple(Noun(en, de, gender) for en, de, gender in _rows(table))


def _objects(table: str) -> tuple[Noun, ...]:
    return tuple(Noun(en, de, g, en_pl, de_pl) for en, en_pl, de, de_pl, g in _rows(table))


def _places(table: str) -> tuple[PlaceNoun, ...]:
    return tuple(PlaceNoun(Noun(en, de, g, de_genitive=gen), tuple(preps.split()))
                 for en, de, g, gen, preps in _rows(table))  # fmt: skip


def _verbs(table: str) -> tuple[Verb, ...]:
    return tuple(Verb(*row) for row in _rows(table))


AGENTS = _agents("""
farmer | Bauer | m
teacher | Lehrer | m
doctor | Arzt | m
sailor | Seemann | m
baker | Bäcker | m
painter | Maler | m
driver | Fahrer | m
student | Student | m
neighbour | Nachbarin | f
captain | Kapitän | m
gardener | Gärtner | m
singer | Sängerin | f
writer | Schriftsteller | m
fisherman | Fischer | m
soldier | Soldat | m
nurse | Krankenschwester | f
pilot | Pilotin | f
dancer | Tänzerin | f
lawyer | Anwalt | m
cook | Köchin | f
waiter | Kellner | m
thief | Dieb | m
child | Kind | n
woman | Frau | f
man | Mann | m
girl | Mädchen | n
boy | Junge | m
baby | Baby | n
dog | Hund | m
cat | Katze | f
horse | Pferd | n
king | König | m
queen | Königin | f
grandmother | Großmutter | f
uncle | Onkel | m
aunt | Tante | f
""")

OBJECTS = _objects("""
basket | baskets | Korb | Körbe | m
ladder | ladders | Leiter | Leitern | f
letter | letters | Brief | Briefe | m
bottle | bottles | Flasche | Flaschen | f
window | windows | Fenster | Fenster | n
bicycle | bicycles | Fahrrad | Fahrräder | n
blanket | blankets | Decke | Decken | f
hammer | hammers | Hammer | Hämmer | m
candle | candles | Kerze | Kerzen | f
picture | pictures | Bild | Bilder | n
umbrella | umbrellas | Regenschirm | Regenschirme | m
mirror | mirrors | Spiegel | Spiegel | m
bucket | buckets | Eimer | Eimer | m
carpet | carpets | Teppich | Teppiche | m
lantern | lanterns | Laterne | Laternen | f
pillow | pillows | Kissen | Kissen | n
map | maps | Karte | Karten | f
suitcase | suitcases | Koffer | Koffer | m
table | tables | Tisch | Tische | m
barrel | barrels | Fass | Fässer | n
rope | ropes | Seil | Seile | n
shovel | shovels | Schaufel | Schaufeln | f
violin | violins | Geige | Geigen | f
clock | clocks | Uhr | Uhren | f
boat | boats | Boot | Boote | n
parcel | parcels | Paket | Pakete | n
key | keys | Schlüssel | Schlüssel | m
book | books | Buch | Bücher | n
chair | chairs | Stuhl | Stühle | m
lamp | lamps | Lampe | Lampen | f
cup | cups | Tasse | Tassen | f
plate | plates | Teller | Teller | m
box | boxes | Kiste | Kisten | f
bag | bags | Tasche | Taschen | f
coat | coats | Mantel | Mäntel | m
hat | hats | Hut | Hüte | m
apple | apples | Apfel | Äpfel | m
cake | cakes | Kuchen | Kuchen | m
egg | eggs | Ei | Eier | n
knife | knives | Messer | Messer | n
spoon | spoons | Löffel | Löffel | m
ring | rings | Ring | Ringe | m
photo | photos | Foto | Fotos | n
newspaper | newspapers | Zeitung | Zeitungen | f
wheel | wheels | Rad | Räder | n
stone | stones | Stein | Steine | m
envelope | envelopes | Umschlag | Umschläge | m
jacket | jackets | Jacke | Jacken | f
door | doors | Tür | Türen | f
glass | glasses | Glas | Gläser | n
""")

# in = in, on = auf, under = unter, behind = hinter, beside = neben, in front of = vor (dative);
# near = in der Nähe + genitive (von + dative for towns).
PREPOSITIONS: dict[str, Preposition] = {
    p.key: p
    for p in (
        Preposition("in", "in", "in"),
        Preposition("on", "on", "auf"),
        Preposition("under", "under", "unter"),
        Preposition("behind", "behind", "hinter"),
        Preposition("beside", "beside", "neben"),
        Preposition("front", "in front of", "vor"),
        Preposition("near", "near", "in der Nähe", genitive=True),
    )
}

PLACES = _places("""
kitchen | Küche | f | | in
garden | Garten | m | Gartens | in behind near
barn | Scheune | f | | in behind beside near
shed | Schuppen | m | Schuppens | in behind beside
church | Kirche | f | | in behind beside front near
school | Schule | f | | in behind front near
station | Bahnhof | m | Bahnhofs | in behind front near
library | Bibliothek | f | | in front near
bakery | Bäckerei | f | | in beside front near
museum | Museum | n | Museums | in behind front near
hospital | Krankenhaus | n | Krankenhauses | in behind front near
hotel | Hotel | n | Hotels | in behind front near
cinema | Kino | n | Kinos | in behind front near
office | Büro | n | Büros | in near
house | Haus | n | Hauses | in behind beside front near
castle | Schloss | n | Schlosses | in behind front near
forest | Wald | m | Waldes | in near
village | Dorf | n | Dorfes | in near
harbour | Hafen | m | Hafens | in near
river | Fluss | m | Flusses | beside near
lake | See | m | Sees | beside near
bridge | Brücke | f | | on under beside near
tower | Turm | m | Turms | on behind beside near
fountain | Brunnen | m | Brunnens | behind beside front near
wall | Mauer | f | | on behind beside
tree | Baum | m | Baumes | under behind beside near
hill | Hügel | m | Hügels | on behind near
roof | Dach | n | Dachs | on
""")

AGENT_ADJECTIVES = _words("""
old | alt
young | jung
tall | groß
quiet | ruhig
busy | beschäftigt
clever | klug
angry | wütend
happy | fröhlich
tired | müd
brave | mutig
friendly | freundlich
careful | vorsichtig
famous | berühmt
lazy | faul
patient | geduldig
hungry | hungrig
rich | reich
poor | arm
sad | traurig
proud | stolz
shy | schüchtern
polite | höflich
strong | stark
curious | neugierig
""")

OBJECT_ADJECTIVES = _words("""
small | klein
big | groß
heavy | schwer
bright | hell
broken | kaputt
golden | golden
wooden | hölzern
dusty | staubig
shiny | glänzend
yellow | gelb
red | rot
blue | blau
green | grün
black | schwarz
white | weiß
narrow | schmal
old | alt
new | neu
cheap | billig
expensive | teur
dirty | schmutzig
clean | sauber
empty | leer
tiny | winzig
strange | seltsam
beautiful | schön
ugly | hässlich
round | rund
wet | nass
soft | weich
""")

PLACE_ADJECTIVES = _words("""
old | alt
new | neu
small | klein
big | groß
quiet | ruhig
dark | dunkl
empty | leer
famous | berühmt
cold | kalt
warm | warm
""")

VERBS = _verbs("""
carried | carry | trug
painted | paint | malte
found | find | fand
sold | sell | verkaufte
washed | wash | wusch
opened | open | öffnete
repaired | repair | reparierte
hid | hide | versteckte
bought | buy | kaufte
cleaned | clean | putzte
watched | watch | beobachtete
lifted | lift | hob
pushed | push | schob
packed | pack | packte
measured | measure | maß
counted | count | zählte
stole | steal | stahl
built | build | baute
brought | bring | brachte
covered | cover | bedeckte
chose | choose | wählte
threw | throw | warf
kept | keep | behielt
described | describe | beschrieb
lost | lose | verlor
needed | need | brauchte
saw | see | sah
forgot | forget | vergaß
held | hold | hielt
showed | show | zeigte
dried | dry | trocknete
filled | fill | füllte
broke | break | zerbrach
touched | touch | berührte
ordered | order | bestellte
pulled | pull | zog
noticed | notice | bemerkte
checked | check | prüfte
weighed | weigh | wog
moved | move | bewegte
took | take | nahm
used | use | benutzte
delivered | deliver | lieferte
wrapped | wrap | verpackte
emptied | empty | leerte
""")

# People's names: none ends in s, x or z, whose German possessive would need an apostrophe (Max').
NAMES = _words("""
Anna | Anna
Tom | Tom
Maria | Maria
Peter | Peter
Emma | Emma
Paul | Paul
Lisa | Lisa
Sophie | Sophie
Julia | Julia
Ben | Ben
Clara | Clara
Laura | Laura
David | David
Martin | Martin
Eva | Eva
Oliver | Oliver
Sarah | Sarah
Daniel | Daniel
Lena | Lena
Frank | Frank
""")

TOWNS = _words("""
London | London
Paris | Paris
Vienna | Wien
Munich | München
Cologne | Köln
Rome | Rom
Venice | Venedig
Prague | Prag
Warsaw | Warschau
Lisbon | Lissabon
Brussels | Brüssel
Geneva | Genf
Milan | Mailand
Florence | Florenz
Athens | Athen
Moscow | Moskau
Copenhagen | Kopenhagen
Berlin | Berlin
Hamburg | Hamburg
Dublin | Dublin
""")

NUMBERS = _words("""
two | zwei
three | drei
four | vier
five | fünf
six | sechs
seven | sieben
eight | acht
nine | neun
ten | zehn
twelve | zwölf
""")

WEEKDAYS = _words("""
Monday | Montag
Tuesday | Dienstag
Wednesday | Mittwoch
Thursday | Donnerstag
Friday | Freitag
Saturday | Samstag
Sunday | Sonntag
""")

MONTHS = _words("""
January | Januar
February | Februar
March | März
April | April
May | Mai
June | Juni
July | Juli
August | August
September | September
October | Oktober
November | November
December | Dezember
""")

DAY_PARTS = _words("""
morning | morgen
afternoon | nachmittag
evening | abend
""")

SEASONS = _words("""
winter | Winter
summer | Sommer
spring | Frühling
autumn | Herbst
""")

AGO_UNITS = _words("""
days | Tagen
weeks | Wochen
years | Jahren
""")

FIXED_TIMES = _words("""
yesterday | gestern
this morning | heute Morgen
last night | letzte Nacht
at midnight | um Mitternacht
at noon | am Mittag
after lunch | nach dem Mittagessen
before dinner | vor dem Abendessen
after breakfast | nach dem Frühstück
in the evening | am Abend
in the morning | am Morgen
yesterday morning | gestern Morgen
yesterday evening | gestern Abend
the day before yesterday | vorgestern
after the storm | nach dem Sturm
before the party | vor der Party
after the concert | nach dem Konzert
during the holidays | in den Ferien
last week | letzte Woche
last year | letztes Jahr
an hour ago | vor einer Stunde
""")


def time_phrases() -> tuple[Word, ...]:
    """Every time adverbial (all fit a past-tense clause), composed from the tables above."""
    phrases = list(FIXED_TIMES)
    for day in WEEKDAYS:
        phrases += [Word(f"on {day.en}", f"am {day.de}"), Word(f"every {day.en}", f"jeden {day.de}"),
                    Word(f"last {day.en}", f"letzten {day.de}")]  # fmt: skip
        phrases += [Word(f"on {day.en} {part.en}", f"am {day.de}{part.de}") for part in DAY_PARTS]
    phrases += [Word(f"in {month.en}", f"im {month.de}") for month in MONTHS]
    phrases += [Word(f"last {season.en}", f"letzten {season.de}") for season in SEASONS]
    phrases += [Word(f"{n.en} {unit.en} ago", f"vor {n.de} {unit.de}") for n in NUMBERS for unit in AGO_UNITS]
    return tuple(phrases)


TIMES = time_phrases()

# Frames around a sentence: interjections (English, German) before an exclamation, question words,
# and reporting verbs for quotes, keyed by what they report.
INTERJECTIONS = _words("""
Oh no | Oh nein
Look | Schau
Listen | Hör mal
Good news | Gute Nachrichten
Guess what | Stell dir vor
Believe it or not | Ob du es glaubst oder nicht
""")
QUESTION_WORDS = _words("""
why | warum
where | wo
when | wann
""")
REPORTING_VERBS: dict[str, tuple[Word, ...]] = {
    "statement": _words("said | sagte\nwhispered | flüsterte\nexplained | erklärte"),
    "question": _words("asked | fragte"),
    "exclamation": _words("shouted | rief"),
}

# Connectives joining a second clause: English word, German word, German word order of the second clause
# ("main": subject first, "inverted": verb first, "final": subordinate, verb last), and whether English puts
# a comma before it. "when" is special: its clause comes first ("When ..., ..." / "Als ..., ...").
CONNECTIVES: tuple[tuple[str, str, str, bool], ...] = (
    ("and", "und", "main", True),
    ("but", "aber", "main", True),
    ("so", "also", "inverted", True),
    ("and then", "und dann", "inverted", True),
    ("because", "weil", "final", False),
    ("while", "während", "final", False),
    ("before", "bevor", "final", False),
    ("although", "obwohl", "final", False),
    ("when", "als", "final", False),
)

# Every table, by name: what a corpus hashes so that an edited word invalidates corpora built before.
TABLES = {
    "agents": AGENTS, "objects": OBJECTS, "prepositions": tuple(PREPOSITIONS.values()), "places": PLACES,
    "agent_adjectives": AGENT_ADJECTIVES, "object_adjectives": OBJECT_ADJECTIVES,
    "place_adjectives": PLACE_ADJECTIVES, "verbs": VERBS, "names": NAMES, "towns": TOWNS, "numbers": NUMBERS,
    "times": TIMES, "interjections": INTERJECTIONS, "question_words": QUESTION_WORDS,
    "reporting_verbs": REPORTING_VERBS, "connectives": CONNECTIVES,
}  # fmt: skip
