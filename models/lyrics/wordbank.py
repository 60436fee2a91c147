"""The rule writer's vocabulary and line templates (plain English song diction).

Templates use typed slots: {N} a singular noun, {A} an adjective, {V} an intransitive verb and
{X} a transitive verb (both in the base form), {P} a preposition. The slot marked `$` ends the line and carries the rhyme. Every template is
grammatical for every word of its slot types, so any filling is a sentence a singer can sing.
"""

NOUNS = """
light night river heart road sky fire rain home sea shore star moon sun door song dream hand
street town wind time love line sign morning evening summer winter window harbour city field
stone bridge boat water ocean mountain valley garden fever shadow silence thunder
radio highway echo midnight daylight flame tide storm ghost room bed name face voice heaven
world dawn dust gold smoke train spark coat chair air way day year hill lane wave
""".split()

ADJECTIVES = """
golden silver quiet bright broken lonely wild gentle distant open endless hollow tender
restless burning fading empty heavy secret careless faithful silent narrow crimson shining
electric borrowed yellow warm cold blue slow true new old free grey clear deep strange
""".split()

VERBS = """
fall burn run wait sing fade shine drift turn stay go wander whisper dance rise hide return
dream cry fly climb stand begin shake move breathe glow pray roam sway stray shine ride sleep
""".split()

TRANSITIVE_VERBS = """
hold call leave find keep carry follow remember chase believe see hear feel know
miss trust save face touch break free
""".split()

PREPOSITIONS = "under over through across beyond beneath along behind into inside beside toward".split()

# Words a mood leans on (weighted up when the writer fills a slot).
MOOD_WORDS = {
    "tender": "gentle warm tender hold stay heart hand home quiet true slow breathe".split(),
    "bright": "bright golden shine sun morning daylight open new dance rise clear free".split(),
    "melancholic": "grey empty fading cold rain fall fade cry distant lonely hollow silence".split(),
    "powerful": "fire thunder storm burn rise stand break electric wild deep strong mountain".split(),
    "hopeful": "morning dawn new rise open light believe golden bright return clear free".split(),
    "nostalgic": "summer old remember borrowed yellow radio window road home return distant train".split(),
    "energetic": "run electric fire wild dance highway chase spark move fly restless burning".split(),
    "dreamy": "dream drift moon star slow silver float glow sky secret endless wander".split(),
    "dark": "shadow midnight ghost smoke hollow silent deep cold hide storm strange night".split(),
    "playful": "dance spin chase bright yellow radio careless sun wild run new summer".split(),
    "calm": "quiet slow gentle river water breathe still stay shore valley garden tide".split(),
    "defiant": "stand fire break burn thunder wild free storm rise restless never fight".split(),
}

# Lines for verses, pre-choruses and bridges (the last slot rhymes).
TEMPLATES = [
    "we {V} {P} the {A} {N$}",
    "I {X} your {N} {P} the {N$}",
    "{P} the {N} and {P} the {N$}",
    "and I {X} the {N$}",
    "you {X} me {P} the {N$}",
    "there's a {A} {N} in the {N$}",
    "like a {N} {P} the {N$}",
    "I can {X} the {A} {N$}",
    "we were {A} {P} the {N$}",
    "hold on to the {A} {N$}",
    "still I {V} {P} the {N$}",
    "every {N} {P} the {N$}",
    "I will {X} your {N$}",
    "in the {A} {N} of the {N$}",
    "don't let go of the {N$}",
    "let the {N} {V} {P} the {N$}",
    "you are the {N} in my {N$}",
    "we {V} and we {V} {P} the {N$}",
    "with a {A} {N} and a {A} {N$}",
    "all I {X} is the {N$}",
    "I remember the {A} {N$}",
    "I keep your {N} {P} my {N$}",
    "say you'll {V} {P} the {N$}",
    "lost {P} the {A} {N$}",
    "{P} a {A} {N$}",
    "we could {V} {P} the {N$}",
    "I'll be {A} {P} the {N$}",
    "on the {N} where we {V$}",
    "and the {N} will {V$}",
    "if the {N} should {V$}",
    "when the {N} was {A$}",
    "we were young and the {N} was {A$}",
    "I will {V} and I will {V$}",
    "{P} the {N} we {V$}",
    "we don't have to {V$}",
    "let the {A} {N} {V$}",
    "I can feel the {N} {V$}",
    "and we never {V$}",
    "watch the {A} {N} {V$}",
    "you and I will {V$}",
    "you are the {N} I {X$}",
    "there's nothing left to {X$}",
    "every {A} {N} I {X$}",
    "and the {N} is {A$}",
    # short lines, for fast songs and one-bar phrases
    "oh, the {A} {N$}",
    "the {A} {N$}",
    "{P} the {N$}",
    "hold the {N$}",
    "I {X} the {N$}",
    "let it {V$}",
    "we {V} and {V$}",
    "so {A}, so {A$}",
    "all the {N} we had was {A$}",
    "I was {A} and you were {A$}",
    "your {N} is {A$}",
    "the {N} {P} the {N} is {A$}",
    "now the {A} {N} is {A$}",
]

# Lines that carry the title in the chorus ({T} is the title as written).
HOOK_TEMPLATES = ["{T}", "oh, {T}", "{T}, {T}", "we are {T}", "my {T}", "oh, my {T}", "{T}, oh {T}", "it's {T}"]

# Common verbs a theme uses that must not become nouns ("waiting for the boats to come home").
COMMON_VERBS = frozenset(
    """
come go get make take give let look see say tell ask seem feel try leave call keep begin show hear play
move live believe bring happen write sit stand lose pay meet include continue set learn change lead
understand watch follow stop create speak read spend grow open walk win offer remember love consider
appear buy wait serve die send expect build stay fall cut reach kill remain suggest raise pass sell
""".split()
)

STOP_WORDS = frozenset(
    """
a an the and or but of to in on at by for from with as if than that this these those is am are was
were be been being do does did has have had i me my you your we us our he him his she her it its they
them their over into out up down off away around about after before again all any each some such no
not only own same so too very just
""".split()
)
