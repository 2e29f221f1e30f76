"""Synthetic Syria incident data for `monitor demo`, in the current ACLED 31-column export layout.

The data are SYNTHETIC: every row is generated from a fixed seed, except the few real incidents
named in docs/domain.md (`REAL_INCIDENTS`), which are kept with their reported dates, places and
fatalities. Generated rows say so in their `source` column ("Synthetic (monitor demo)") so that
no invented event is attributed to a real outlet.

What the generator reproduces (January 2020 – March 2023):

* Syria-wide volume of the order ACLED records: about 170–200 political-violence events a week
  plus protests and strategic developments, in the 14 governorates with ACLED spellings, a few
  real districts and locations per governorate with approximate coordinates.
* Plausible theatres: regime shelling and Russian air strikes in Idleb and the Ghab plain,
  Turkey / Syrian National Army against the SDF in Aleppo, Ar Raqqa and Al Hasakeh,
  assassinations by unidentified gunmen in Dara and Deir ez Zor, Islamic State cells in the
  central desert (Homs, Hama, Deir ez Zor, Ar Raqqa, eastern Aleppo), Israeli strikes around
  Damascus, Friday protests.
* Negative-binomial weekly counts (a gamma factor per stream and week), a mild annual cycle,
  a day-of-week profile, fatalities mostly 0–2 with a heavy tail, ACLED-style notes.
* Known history in the baselines: the Idleb offensive until the 5 March 2020 ceasefire, the
  Ghwayran prison attack (Al Hasakeh, January 2022), the July 2022 low of IS activity, Turkish
  strikes on the SDF after 20 November 2022, a lull in the north-west after the earthquake.
* Islamic State activity in central Syria calibrated to the public figures in docs/domain.md:
  about 10.7 events a month in 2022, ~14 in January 2023, ~21 in February 2023, ~35 in March
  2023, the rise concentrated in Homs, Hama and Deir ez Zor from the week of the 6 February 2023
  earthquake and peaking in 2023-W09 (27 Feb – 5 Mar) at 5–9 events in each of the three.
  Every other series stays at its usual level around those weeks.

Same seed → identical frame and byte-identical CSV.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from monitor.pipeline import WeeklyOutcome

__all__ = [
    "ACLED_COLUMNS",
    "DEMO_SEED",
    "GOVERNORATES",
    "REAL_INCIDENTS",
    "SURGE_ADMIN1",
    "generate_incidents",
    "write_demo_csv",
]

#: The seed `monitor demo` uses.
DEMO_SEED: int = 20230206

#: Current ACLED export header, in order.
ACLED_COLUMNS: tuple[str, ...] = (
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type",
    "sub_event_type", "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2",
    "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
    "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes",
    "fatalities", "tags", "timestamp",
)  # fmt: skip

#: Governorates (admin1) as spelled in the generated data.
GOVERNORATES: tuple[str, ...] = (
    "Aleppo", "Al Hasakeh", "Ar Raqqa", "As Sweida", "Damascus", "Dara", "Deir ez Zor", "Hama",
    "Homs", "Idleb", "Lattakia", "Quneitra", "Rural Damascus", "Tartous",
)  # fmt: skip

#: Where the post-earthquake Islamic State surge is.
SURGE_ADMIN1: tuple[str, ...] = ("Homs", "Hama", "Deir ez Zor")

SYNTHETIC_SOURCE = "Synthetic (monitor demo)"
_ID_PREFIX = "SYRD"

# Actors (ACLED names) and inter codes: 1 state forces, 2 rebel groups, 3 political militias,
# 4 identity militias, 5 rioters, 6 protesters, 7 civilians, 8 external/other forces.
SYR = "Military Forces of Syria (2000-)"
RUS = "Military Forces of Russia (2000-)"
TUR = "Military Forces of Turkey (2016-)"
ISR = "Military Forces of Israel (1948-)"
IS = "Islamic State (Syria)"
HTS = "HTS: Hayat Tahrir al Sham"
SDF = "QSD: Syrian Democratic Forces"
SNA = "JWS: Syrian National Army"
FATH = "Al Fath Al Mubeen Operation Room"
UAG = "Unidentified Armed Group (Syria)"
REB = "Opposition Rebels (Syria)"
CIV = "Civilians (Syria)"
PRO = "Protesters (Syria)"
RIO = "Rioters (Syria)"
NDF = "QDW: National Defence Forces"
COAL = "Global Coalition Against Daesh"
IRN = "Militia (Pro-Iran)"
SDF_DMC = "MDA: Deir-ez-Zor Military Council"
EIGHTH = "Military Forces of Syria (2000-) 8th Brigade"
DRUZE = "Men of Dignity"

INTER: dict[str, int] = {
    SYR: 1, RUS: 8, TUR: 8, ISR: 8, IS: 2, HTS: 2, SDF: 2, SNA: 2, FATH: 2, UAG: 3, REB: 2,
    CIV: 7, PRO: 6, RIO: 5, NDF: 3, COAL: 8, IRN: 3, SDF_DMC: 2, EIGHTH: 1, DRUZE: 3,
    "Unidentified Military Forces": 8, "Unidentified Communal Militia (Syria)": 4, "": 0,
}  # fmt: skip

# Places: admin1 -> key -> (admin2, admin3, location, latitude, longitude). Approximate.
PLACES: dict[str, dict[str, tuple[str, str, str, float, float]]] = {
    "Aleppo": {
        "aleppo": ("Jebel Saman", "Jebel Saman", "Aleppo", 36.2021, 37.1343),
        "atareb": ("Jebel Saman", "Atareb", "Al Atareb", 36.1386, 36.8306),
        "daret_azza": ("Jebel Saman", "Daret Azza", "Daret Azza", 36.2842, 36.8573),
        "azaz": ("Azaz", "Azaz", "Azaz", 36.5849, 37.0432),
        "tell_rifaat": ("Azaz", "Tall Refaat", "Tell Rifaat", 36.4702, 37.0975),
        "afrin": ("Afrin", "Afrin", "Afrin", 36.5119, 36.8695),
        "al_bab": ("Al Bab", "Al Bab", "Al Bab", 36.3697, 37.5149),
        "menbij": ("Menbij", "Menbij", "Menbij", 36.5258, 37.9510),
        "ain_al_arab": ("Ain Al Arab", "Ain al Arab", "Ain al Arab", 36.8891, 38.3521),
        "jarablus": ("Jarablus", "Jarablus", "Jarablus", 36.8175, 38.0113),
        "khanasir": ("As Safira", "Khanasir", "Khanasir", 35.7822, 37.4986),
    },
    "Al Hasakeh": {
        "hasakeh": ("Al Hasakeh", "Al Hasakeh", "Al-Hasakeh", 36.5054, 40.7429),
        "ghwayran": ("Al Hasakeh", "Al Hasakeh", "Al-Hasakeh - Ghwayran", 36.4856, 40.7436),
        "tal_tamer": ("Al Hasakeh", "Tal Tamer", "Tal Tamer", 36.6494, 40.3722),
        "al_hol": ("Al Hasakeh", "Al Hol", "Al Hol", 36.3897, 41.1492),
        "shadadah": ("Al Hasakeh", "Shadadah", "Shadadah", 36.0560, 40.7303),
        "ras_al_ain": ("Ras Al Ain", "Ras Al Ain", "Ras Al Ain", 36.8503, 40.0706),
        "qamishli": ("Quamishli", "Quamishli", "Quamishli", 37.0522, 41.2272),
        "malikiyah": ("Al Malikeyyeh", "Al Malikeyyeh", "Al Malikeyyeh", 37.1764, 42.1394),
    },
    "Ar Raqqa": {
        "raqqa": ("Ar Raqqa", "Ar Raqqa", "Ar Raqqa", 35.9528, 39.0079),
        "maadan": ("Ar Raqqa", "Maadan", "Maadan", 35.7435, 39.6568),
        "resafa": ("Ar Raqqa", "Al Karama", "Resafa", 35.6289, 38.7563),
        "ein_issa": ("Tell Abiad", "Ein Issa", "Ein Issa", 36.3837, 38.8628),
        "tell_abiad": ("Tell Abiad", "Tell Abiad", "Tell Abiad", 36.6978, 38.9548),
        "thawrah": ("Ath-Thawrah", "Ath-Thawrah", "Ath-Thawrah", 35.8366, 38.5480),
    },
    "As Sweida": {
        "sweida": ("As Sweida", "As Sweida", "As Sweida", 32.7089, 36.5695),
        "mazraa": ("As Sweida", "Mazra'a", "Al Mazra'a", 32.7800, 36.4800),
        "shahba": ("Shahba", "Shahba", "Shahba", 32.8556, 36.6297),
        "salkhad": ("Salkhad", "Salkhad", "Salkhad", 32.4919, 36.7108),
    },
    "Damascus": {
        "damascus": ("Damascus", "Damascus", "Damascus", 33.5102, 36.2913),
        "mazzeh": ("Damascus", "Damascus", "Damascus - Mazzeh", 33.5005, 36.2468),
        "kafr_sousa": ("Damascus", "Damascus", "Damascus - Kafr Sousa", 33.4972, 36.2686),
    },
    "Dara": {
        "daraa": ("Dara", "Dara", "Dara", 32.6189, 36.1021),
        "dael": ("Dara", "Da'el", "Da'el", 32.7557, 36.1323),
        "tafas": ("Dara", "Tafas", "Tafas", 32.7391, 36.0663),
        "busra": ("Dara", "Busra Esh-Sham", "Busra Esh-Sham", 32.5168, 36.4813),
        "jasim": ("Izra'", "Jasim", "Jasim", 32.9922, 36.0600),
        "nawa": ("Izra'", "Nawa", "Nawa", 32.8897, 36.0431),
        "izra": ("Izra'", "Izra'", "Izra'", 32.8581, 36.2522),
        "sanamayn": ("As-Sanamayn", "As-Sanamayn", "As-Sanamayn", 33.0713, 36.1832),
    },
    "Deir ez Zor": {
        "deir": ("Deir ez Zor", "Deir ez Zor", "Deir-ez-Zor", 35.3319, 40.1461),
        "shula": ("Deir ez Zor", "Deir ez Zor", "Ash Shula", 35.1772, 39.8457),
        "kabajib": ("Deir ez Zor", "Deir ez Zor", "Kabajib", 35.0083, 39.6744),
        "basira": ("Deir ez Zor", "Basira", "Basira", 35.1580, 40.4277),
        "mayadin": ("Al Mayadin", "Al Mayadin", "Al Mayadin", 35.0194, 40.4513),
        "mayadin_desert": ("Al Mayadin", "Al Mayadin", "Badiyat Al Mayadin", 34.8900, 40.2600),
        "thiban": ("Al Mayadin", "Thiban", "Thiban", 35.0078, 40.5116),
        "abu_kamal": ("Abu Kamal", "Abu Kamal", "Abu Kamal", 34.4516, 40.9181),
        "hajin": ("Abu Kamal", "Hajin", "Hajin", 34.6956, 40.8328),
    },
    "Hama": {
        "hama": ("Hama", "Hama", "Hama", 35.1318, 36.7578),
        "salamiyeh": ("As Salamiyeh", "As Salamiyeh", "As Salamiyeh", 35.0113, 37.0532),
        "uqeirbat": ("As Salamiyeh", "Uqeirbat", "Uqeirbat", 35.3283, 37.4681),
        "ithariyah": ("As Salamiyeh", "As Saan", "Ithariyah", 35.3652, 37.7886),
        "madiq": ("As Suqaylabiyah", "Qalaat Al Madiq", "Qalaat Al Madiq", 35.4097, 36.3883),
        "jurin": ("As Suqaylabiyah", "Shat-ha", "Jurin", 35.6162, 36.2693),
        "masyaf": ("Masyaf", "Masyaf", "Masyaf", 35.0653, 36.3421),
        "muhradah": ("Muhradah", "Muhradah", "Muhradah", 35.2478, 36.5717),
    },
    "Homs": {
        "homs": ("Homs", "Homs", "Homs", 34.7324, 36.7137),
        "qaryatayn": ("Homs", "Al Qaryatayn", "Al Qaryatayn", 34.2280, 37.2410),
        "rastan": ("Ar-Rastan", "Ar-Rastan", "Ar-Rastan", 34.9264, 36.7325),
        "qusayr": ("Al Qusayr", "Al Qusayr", "Al Qusayr", 34.5092, 36.5797),
        "tall_kalakh": ("Tall Kalakh", "Tall Kalakh", "Tall Kalakh", 34.6681, 36.2597),
        "palmyra": ("Tadmor", "Tadmor", "Tadmor", 34.5505, 38.2684),
        "t4": ("Tadmor", "Tadmor", "Tiyas", 34.5225, 37.6296),
        "sukhnah": ("Tadmor", "Sukhneh", "Al Sukhnah", 34.8860, 38.8720),
    },
    "Idleb": {
        "idleb": ("Idleb", "Idleb", "Idleb", 35.9306, 36.6339),
        "binnish": ("Idleb", "Binnish", "Binnish", 35.9578, 36.7122),
        "saraqab": ("Idleb", "Saraqab", "Saraqab", 35.8622, 36.8053),
        "ariha": ("Ariha", "Ariha", "Ariha", 35.8136, 36.6097),
        "kansafra": ("Ariha", "Ehsem", "Kansafra", 35.6599, 36.4849),
        "bara": ("Ariha", "Ehsem", "Bara", 35.6860, 36.5424),
        "sfuhen": ("Al Ma'ra", "Kafr Nobol", "Sfuhen", 35.6073, 36.4645),
        "jisr": ("Jisr Ash Shugur", "Jisr Ash Shugur", "Jisr Ash Shugur", 35.8125, 36.3181),
        "darkosh": ("Jisr Ash Shugur", "Darkosh", "Darkosh", 35.9939, 36.3931),
        "sarmada": ("Harim", "Dana", "Sarmada", 36.1800, 36.7200),
        "harim": ("Harim", "Harim", "Harim", 36.2075, 36.5178),
    },
    "Lattakia": {
        "kabani": ("Al Haffa", "Kansaba", "Kabani", 35.8025, 36.2153),
        "haffa": ("Al Haffa", "Al Haffa", "Al Haffa", 35.5983, 36.0322),
        "lattakia": ("Lattakia", "Lattakia", "Lattakia", 35.5317, 35.7914),
        "jablah": ("Jablah", "Jablah", "Jablah", 35.3614, 35.9256),
    },
    "Quneitra": {
        "quneitra": ("Quneitra", "Quneitra", "Quneitra", 33.1255, 35.8244),
        "khan_arnaba": ("Quneitra", "Khan Arnaba", "Khan Arnaba", 33.1803, 35.8894),
        "jabata": ("Quneitra", "Khan Arnaba", "Jabata Al Khashab", 33.2289, 35.8347),
    },
    "Rural Damascus": {
        "duma": ("Duma", "Duma", "Duma", 33.5725, 36.4017),
        "at_tall": ("At Tall", "At Tall", "At Tall", 33.6103, 36.3106),
        "qatana": ("Qatana", "Qatana", "Qatana", 33.4372, 36.0806),
        "kisweh": ("Rural Damascus", "Kisweh", "Al Kiswah", 33.3583, 36.2419),
        "zeinab": ("Rural Damascus", "Babella", "Sayyida Zeinab", 33.4444, 36.3408),
        "airport": ("Rural Damascus", "Markaz Rif Dimashq", "Damascus International Airport", 33.4114, 36.5156),
        "yabroud": ("Yabroud", "Yabroud", "Yabroud", 33.9672, 36.6572),
    },
    "Tartous": {
        "tartous": ("Tartous", "Tartous", "Tartous", 34.8890, 35.8866),
        "baniyas": ("Baniyas", "Baniyas", "Baniyas", 35.1822, 35.9400),
        "safita": ("Safita", "Safita", "Safita", 34.8203, 36.1175),
    },
}

# Event templates: (event_type, sub_event_type, actor1, assoc1, actor2, assoc2, note, fatalities)
# `note` is completed as "On <date>, <note with {loc} and {gov}>. <fatalities sentence>".
# `fatalities` = (probability of at least one death, log-mean, log-sd) of the positive part.
_BT, _ERV, _VAC = "Battles", "Explosions/Remote violence", "Violence against civilians"
_PROT, _RIOT, _SD = "Protests", "Riots", "Strategic developments"
_CLASH, _SHELL, _AIR, _IED = "Armed clash", "Shelling/artillery/missile attack", "Air/drone strike", "Remote explosive/landmine/IED"
_ATT, _ABD = "Attack", "Abduction/forced disappearance"

T: dict[str, tuple[str, str, str, str, str, str, str, tuple[float, float, float]]] = {
    # north-west
    "reg_shell_idleb": (_ERV, _SHELL, SYR, "", "", "", "Syrian regime forces shelled {loc} and its vicinity in {gov} countryside with artillery and rockets", (0.08, 0.2, 0.6)),
    "reg_shell_civ": (_ERV, _SHELL, SYR, "", CIV, "", "regime forces shelled residential areas of {loc} in {gov} countryside, killing and injuring civilians", (0.7, 0.4, 0.6)),
    "rus_air": (_ERV, _AIR, RUS, "", "", "", "Russian warplanes conducted airstrikes on the outskirts of {loc} in {gov} countryside", (0.15, 0.5, 0.7)),
    "rus_air_hts": (_ERV, _AIR, RUS, "", HTS, "", "Russian warplanes carried out airstrikes on HTS positions near {loc} in {gov} countryside", (0.35, 0.8, 0.8)),
    "fath_shell": (_ERV, _SHELL, FATH, HTS, SYR, "", "Al Fath Al Mubeen Operation Room shelled regime positions near {loc} in {gov} countryside", (0.1, 0.3, 0.5)),
    "nw_clash": (_BT, _CLASH, HTS, "", SYR, "", "HTS fighters clashed with regime forces on the {loc} axis in {gov} countryside", (0.45, 0.6, 0.8)),
    "hts_vac": (_VAC, _ABD, HTS, "", CIV, "", "HTS detained a man in {loc} in {gov} countryside over social media posts critical of the group", (0.0, 0.0, 0.0)),
    "nw_ied": (_ERV, _IED, UAG, "", HTS, "", "an IED planted by an unknown armed group exploded targeting an HTS vehicle in {loc}, {gov}", (0.4, 0.3, 0.6)),
    # north and north-east: Turkey / SNA against the SDF
    "tur_shell": (_ERV, _SHELL, TUR, "", SDF, "", "Turkish forces shelled SDF positions in {loc} and nearby villages in {gov} countryside", (0.12, 0.3, 0.6)),
    "tur_drone": (_ERV, _AIR, TUR, "", SDF, "", "a Turkish drone struck a vehicle carrying SDF members near {loc} in {gov} countryside", (0.75, 0.5, 0.6)),
    "sna_sdf_clash": (_BT, _CLASH, SNA, "", SDF, "", "SNA factions clashed with the SDF on the frontline near {loc} in {gov} countryside", (0.25, 0.4, 0.6)),
    "sdf_shell_sna": (_ERV, _SHELL, SDF, "", SNA, "", "the SDF shelled SNA positions near {loc} in {gov} countryside", (0.1, 0.2, 0.5)),
    "sna_infight": (_BT, _CLASH, SNA, "", SNA, "", "two SNA factions clashed over a property dispute in {loc}, {gov}", (0.2, 0.2, 0.5)),
    "north_ied": (_ERV, _IED, UAG, "", CIV, "", "an explosive device planted by an unknown group detonated in a market street in {loc}, {gov}", (0.5, 0.7, 0.8)),
    "sna_abduct": (_VAC, _ABD, SNA, "", CIV, "", "SNA military police detained a civilian in {loc} in {gov} countryside on charges of dealing with the SDF", (0.0, 0.0, 0.0)),
    "reg_shell_aleppo": (_ERV, _SHELL, SYR, "", REB, "", "regime forces shelled opposition positions near {loc} in {gov} countryside", (0.08, 0.2, 0.5)),
    "sdf_arrest": (_SD, "Arrests", SDF, "", CIV, "", "the SDF launched a security operation and arrested several young men in {loc}, {gov}", (0.0, 0.0, 0.0)),
    "uag_sdf": (_VAC, _ATT, UAG, "", CIV, "", "unknown gunmen shot and killed a man working with the Autonomous Administration in {loc} in {gov} countryside", (0.85, 0.1, 0.4)),
    "uag_sdf_attack": (_BT, _CLASH, UAG, "", SDF, "", "unknown gunmen attacked an SDF checkpoint near {loc} in {gov} countryside", (0.45, 0.3, 0.5)),
    "sdf_ied": (_ERV, _IED, UAG, "", SDF, "", "an IED planted by an unknown armed group exploded targeting an SDF military vehicle in {loc}, {gov}", (0.4, 0.4, 0.5)),
    "coal_raid": (_SD, "Arrests", COAL, SDF, CIV, "", "the Global Coalition and the SDF conducted an airdrop raid and arrested a man in {loc} in {gov} countryside", (0.0, 0.0, 0.0)),
    "coal_move": (_SD, "Change to group/activity", COAL, "", "", "", "Movement of forces: a Global Coalition convoy of trucks carrying logistical supplies passed through {loc} in {gov}", (0.0, 0.0, 0.0)),
    "air_iran": (_ERV, _AIR, "Unidentified Military Forces", "", IRN, "", "unidentified warplanes struck positions of pro-Iran militias near {loc} in {gov} countryside", (0.6, 1.0, 0.8)),
    # south
    "daraa_assassin": (_VAC, _ATT, UAG, "", CIV, "", "unknown gunmen shot and killed a former opposition member in {loc} in {gov} countryside", (0.85, 0.1, 0.4)),
    "daraa_attack_reg": (_BT, _CLASH, UAG, "", SYR, "", "unknown gunmen attacked a regime checkpoint in {loc} in {gov} countryside", (0.5, 0.3, 0.6)),
    "daraa_ied": (_ERV, _IED, UAG, "", SYR, "", "an IED exploded targeting a regime forces vehicle near {loc}, {gov}", (0.45, 0.4, 0.6)),
    "daraa_clash": (_BT, _CLASH, EIGHTH, "", UAG, "", "8th Brigade fighters clashed with gunmen accused of links to the regime's Military Intelligence in {loc}, {gov}", (0.35, 0.3, 0.6)),
    "sweida_abduct": (_VAC, _ABD, "Unidentified Communal Militia (Syria)", "", CIV, "", "an armed gang abducted a man from {loc} in {gov} and demanded a ransom", (0.05, 0.0, 0.3)),
    "sweida_clash": (_BT, _CLASH, DRUZE, "", NDF, "", "Men of Dignity clashed with an NDF-affiliated gang in {loc}, {gov}", (0.3, 0.3, 0.5)),
    "isr_strike": (_ERV, _AIR, ISR, "", SYR, IRN, "Israeli warplanes struck military positions of regime forces and pro-Iran militias near {loc}, {gov}", (0.45, 0.9, 0.7)),
    "isr_shell": (_ERV, _SHELL, ISR, "", SYR, "", "Israeli forces fired shells at a regime forces position near {loc} in {gov}", (0.05, 0.0, 0.3)),
    "reg_arrest": (_SD, "Arrests", SYR, "", CIV, "", "regime security forces arrested several young men at a checkpoint in {loc}, {gov}", (0.0, 0.0, 0.0)),
    "uag_attack_civ": (_VAC, _ATT, UAG, "", CIV, "", "unknown gunmen shot and killed a man in {loc}, {gov}", (0.85, 0.1, 0.4)),
    "reg_clash_uag": (_BT, _CLASH, SYR, "", UAG, "", "regime forces clashed with gunmen near {loc}, {gov}", (0.35, 0.3, 0.5)),
    "lattakia_shell": (_ERV, _SHELL, SYR, "", HTS, "", "regime forces shelled HTS positions in the {loc} hills in {gov} countryside", (0.1, 0.2, 0.5)),
    "hts_shell_lat": (_ERV, _SHELL, HTS, "", SYR, "", "HTS shelled regime positions near {loc} in {gov} countryside", (0.1, 0.2, 0.5)),
    "mine_civ": (_ERV, _IED, UAG, "", CIV, "", "a landmine left over from previous fighting exploded near {loc} in {gov} countryside, hitting civilians", (0.7, 0.3, 0.6)),
    # protests and riots
    "protest": (_PROT, "Peaceful protest", PRO, "", "", "", "people demonstrated in {loc} in {gov} against deteriorating living conditions", (0.0, 0.0, 0.0)),
    "protest_nw": (_PROT, "Peaceful protest", PRO, "", "", "", "people demonstrated in {loc}, {gov}, against the regime and normalisation with Damascus", (0.0, 0.0, 0.0)),
    "riot": (_RIOT, "Violent demonstration", RIO, "", "", "", "rioters burned tyres and blocked roads in {loc}, {gov}, protesting against fuel shortages", (0.0, 0.0, 0.0)),
    # Islamic State
    "is_attack_reg": (_BT, _CLASH, IS, "", SYR, NDF, "IS cells attacked regime forces and NDF positions near {loc} in the {gov} desert (Badia)", (0.6, 0.8, 0.7)),
    "is_vac": (_VAC, _ATT, IS, "", CIV, "", "IS members attacked shepherds near {loc} in the {gov} desert", (0.6, 0.4, 0.7)),
    "is_ied": (_ERV, _IED, IS, "", SYR, "", "an IED planted by IS exploded targeting a regime forces vehicle on the road near {loc}, {gov}", (0.5, 0.5, 0.6)),
    "is_mine_civ": (_ERV, _IED, IS, "", CIV, "", "a landmine planted by IS exploded among civilians collecting truffles near {loc} in the {gov} desert", (0.7, 0.6, 0.7)),
    "rus_air_is": (_ERV, _AIR, RUS, "", IS, "", "Russian warplanes conducted airstrikes on IS positions in the desert near {loc}, {gov}", (0.2, 0.6, 0.6)),
    "is_sdf": (_BT, _CLASH, IS, "", SDF, "", "IS cells attacked an SDF checkpoint in {loc} in {gov} countryside", (0.55, 0.3, 0.6)),
    "is_assassin": (_VAC, _ATT, IS, "", CIV, "", "IS gunmen shot and killed a man accused of working with the SDF in {loc}, {gov}", (0.9, 0.1, 0.4)),
    "is_south": (_BT, _CLASH, IS, "", SYR, "", "IS claimed an attack on regime forces near {loc}, {gov}", (0.5, 0.3, 0.5)),
    "is_prison": (_BT, _CLASH, IS, "", SDF, "", "IS fighters clashed with the SDF around the Ghwayran (Al Sina'a) prison in {loc}, {gov}", (0.9, 2.3, 0.7)),
}

# Streams: (name, admin1, weekly events at the 2022 level, gamma shape (NB dispersion),
#           kind (day-of-week profile), modifiers, templates {key: weight}, places {key: weight})
_Stream = tuple[str, str, float, float, str, tuple[str, ...], dict[str, float], dict[str, float]]

STREAMS: tuple[_Stream, ...] = (
    ("idleb_front", "Idleb", 50.0, 9.0, "pv", ("nw_offensive", "quake_lull"),
     {"reg_shell_idleb": 26, "reg_shell_civ": 4, "rus_air": 4, "rus_air_hts": 2, "fath_shell": 5, "nw_clash": 3, "nw_ied": 1.5, "hts_vac": 1.5},
     {"kansafra": 4, "bara": 4, "sfuhen": 4, "ariha": 3, "saraqab": 2, "jisr": 2, "darkosh": 1, "idleb": 1.5, "binnish": 1, "sarmada": 0.5, "harim": 0.5}),
    ("idleb_protest", "Idleb", 3.0, 6.0, "protest", (),
     {"protest_nw": 1}, {"idleb": 3, "binnish": 1, "sarmada": 1, "harim": 1}),
    ("aleppo_west", "Aleppo", 7.0, 7.0, "pv", ("nw_offensive", "quake_lull"),
     {"reg_shell_aleppo": 5, "fath_shell": 1.5, "rus_air": 0.8, "nw_clash": 0.8},
     {"atareb": 3, "daret_azza": 3, "aleppo": 0.5}),
    ("aleppo_north", "Aleppo", 25.0, 8.0, "pv", ("claw_sword", "quake_lull"),
     {"tur_shell": 7, "tur_drone": 1.5, "sna_sdf_clash": 4, "sdf_shell_sna": 3, "sna_infight": 2.5, "north_ied": 2.5, "sna_abduct": 3},
     {"tell_rifaat": 3, "menbij": 3, "ain_al_arab": 2, "afrin": 3, "azaz": 2.5, "al_bab": 3, "jarablus": 1.5}),
    ("aleppo_other", "Aleppo", 5.0, 6.0, "mixed", (),
     {"protest": 3, "riot": 0.3, "sdf_arrest": 1, "reg_arrest": 1},
     {"azaz": 2, "al_bab": 2, "afrin": 1, "aleppo": 2, "menbij": 1}),
    ("hasakeh", "Al Hasakeh", 15.0, 7.0, "pv", ("claw_sword",),
     {"tur_shell": 6, "tur_drone": 1.5, "sdf_arrest": 2.5, "uag_sdf_attack": 1.5, "sdf_ied": 1, "coal_move": 1.5, "coal_raid": 0.5},
     {"tal_tamer": 3, "ras_al_ain": 2, "hasakeh": 3, "qamishli": 2.5, "al_hol": 1.5, "shadadah": 1, "malikiyah": 0.8}),
    ("hasakeh_protest", "Al Hasakeh", 3.0, 6.0, "protest", (),
     {"protest": 1}, {"hasakeh": 2, "qamishli": 3, "malikiyah": 1}),
    ("raqqa", "Ar Raqqa", 10.0, 7.0, "pv", ("claw_sword",),
     {"tur_shell": 4.5, "sna_sdf_clash": 1, "uag_sdf_attack": 1.2, "uag_sdf": 1, "sdf_ied": 0.8, "sdf_arrest": 1.5},
     {"ein_issa": 3, "tell_abiad": 1.5, "raqqa": 3, "thawrah": 1, "maadan": 0.8}),
    ("raqqa_protest", "Ar Raqqa", 2.0, 6.0, "protest", (), {"protest": 1}, {"raqqa": 3, "thawrah": 1}),
    ("deir_east", "Deir ez Zor", 20.0, 7.0, "pv", (),
     {"uag_sdf": 5, "uag_sdf_attack": 3, "sdf_ied": 2.5, "coal_raid": 1.5, "sdf_arrest": 2, "air_iran": 1, "uag_attack_civ": 2, "reg_arrest": 1},
     {"basira": 3, "thiban": 2, "hajin": 2.5, "mayadin": 1.5, "abu_kamal": 1.5, "deir": 2}),
    ("deir_protest", "Deir ez Zor", 2.5, 6.0, "protest", (), {"protest": 1}, {"basira": 1, "hajin": 1, "thiban": 1}),
    ("daraa", "Dara", 18.0, 7.0, "pv", (),
     {"daraa_assassin": 8, "daraa_attack_reg": 3, "daraa_ied": 2, "daraa_clash": 1.5, "reg_arrest": 1.5},
     {"daraa": 3, "dael": 2, "tafas": 2, "jasim": 2, "nawa": 2, "izra": 1, "sanamayn": 1.5, "busra": 1}),
    ("daraa_protest", "Dara", 1.5, 6.0, "protest", (), {"protest": 1}, {"daraa": 2, "busra": 1, "tafas": 1}),
    ("hama", "Hama", 7.0, 7.0, "pv", ("nw_offensive",),
     {"reg_shell_idleb": 3.5, "fath_shell": 1.5, "nw_clash": 0.7, "uag_attack_civ": 0.6, "mine_civ": 0.4, "reg_arrest": 0.5},
     {"madiq": 3, "jurin": 3, "muhradah": 1, "hama": 1.5, "masyaf": 0.5, "salamiyeh": 1}),
    ("homs", "Homs", 4.5, 7.0, "pv", (),
     {"uag_attack_civ": 1.6, "reg_clash_uag": 0.8, "mine_civ": 0.6, "reg_arrest": 1, "isr_strike": 0.3, "protest": 0.5},
     {"homs": 3, "rastan": 2, "qusayr": 1.5, "tall_kalakh": 1, "qaryatayn": 0.6, "t4": 0.3}),
    ("rural_damascus", "Rural Damascus", 4.5, 7.0, "pv", (),
     {"uag_attack_civ": 1.5, "reg_arrest": 1.2, "isr_strike": 0.5, "protest": 0.5, "mine_civ": 0.3, "reg_clash_uag": 0.5},
     {"duma": 2, "at_tall": 1, "qatana": 1, "kisweh": 1.2, "zeinab": 1, "airport": 0.5, "yabroud": 0.5}),
    ("damascus", "Damascus", 1.8, 6.0, "pv", (),
     {"uag_attack_civ": 1, "isr_strike": 0.4, "reg_arrest": 1, "north_ied": 0.3},
     {"damascus": 3, "mazzeh": 1, "kafr_sousa": 1}),
    ("sweida", "As Sweida", 4.5, 6.0, "mixed", (),
     {"sweida_abduct": 2, "sweida_clash": 0.8, "uag_attack_civ": 1, "protest": 1.5, "riot": 0.2},
     {"sweida": 3, "mazraa": 1, "shahba": 1.5, "salkhad": 1}),
    ("lattakia", "Lattakia", 3.0, 6.0, "pv", ("nw_offensive",),
     {"lattakia_shell": 2, "hts_shell_lat": 0.8, "rus_air": 0.4},
     {"kabani": 5, "haffa": 1.5}),
    ("quneitra", "Quneitra", 1.6, 6.0, "pv", (),
     {"uag_attack_civ": 1, "isr_shell": 0.8, "reg_arrest": 0.4},
     {"quneitra": 1, "khan_arnaba": 2, "jabata": 1.5}),
    ("tartous", "Tartous", 0.6, 5.0, "mixed", (),
     {"protest": 1, "reg_arrest": 0.5, "uag_attack_civ": 0.3},
     {"tartous": 2, "baniyas": 1.5, "safita": 1}),
    # Islamic State: central desert (2022 level ~10.7 a month across these five)
    ("is_homs", "Homs", 0.80, 5.0, "pv", ("is_central", "surge_table"),
     {"is_attack_reg": 4, "is_vac": 1.5, "is_ied": 1.5, "is_mine_civ": 1, "rus_air_is": 1},
     {"palmyra": 2, "sukhnah": 2, "t4": 1.5, "qaryatayn": 1}),
    ("is_deir", "Deir ez Zor", 0.75, 5.0, "pv", ("is_central", "surge_table"),
     {"is_attack_reg": 3, "is_sdf": 2, "is_assassin": 1.5, "is_ied": 1, "is_mine_civ": 0.6, "rus_air_is": 0.8},
     {"mayadin_desert": 2, "shula": 1.5, "kabajib": 1, "basira": 1, "thiban": 1, "deir": 0.5}),
    ("is_hama", "Hama", 0.50, 5.0, "pv", ("is_central", "surge_table"),
     {"is_attack_reg": 3, "is_vac": 1.5, "is_ied": 1, "is_mine_civ": 0.8, "rus_air_is": 1},
     {"ithariyah": 2, "uqeirbat": 2, "salamiyeh": 0.7}),
    ("is_raqqa", "Ar Raqqa", 0.30, 5.0, "pv", ("is_central",),
     {"is_attack_reg": 2, "is_sdf": 1.5, "is_assassin": 1, "rus_air_is": 0.8},
     {"resafa": 3, "maadan": 1, "raqqa": 0.5}),
    ("is_aleppo", "Aleppo", 0.18, 5.0, "pv", ("is_central",),
     {"is_attack_reg": 2, "rus_air_is": 1, "is_vac": 0.5}, {"khanasir": 1}),
    # Islamic State elsewhere
    ("is_hasakeh", "Al Hasakeh", 0.45, 3.0, "pv", ("ghwayran",),
     {"is_sdf": 3, "is_assassin": 2}, {"al_hol": 2, "shadadah": 2, "hasakeh": 1}),
    ("is_ghwayran", "Al Hasakeh", 1.0, 50.0, "pv", ("ghwayran_only",),
     {"is_prison": 1}, {"ghwayran": 1}),
    ("is_daraa", "Dara", 0.45, 3.0, "pv", (), {"is_south": 2, "is_assassin": 0.5}, {"jasim": 1, "nawa": 1, "tafas": 1}),
)  # fmt: skip

#: Islamic State events in the three surge governorates from January 2023, by week (Monday):
#: (fixed number, mean of an extra Poisson part). These replace the base IS streams of Homs,
#: Deir ez Zor and Hama for those weeks, so the calibration does not hang on the seed.
#: Real incidents come on top (W06 Homs, W07 Homs, W09 Hama and Deir ez Zor).
_SURGE: dict[date, dict[str, tuple[int, float]]] = {
    **{
        date(2023, 1, 2) + timedelta(weeks=k): {"Homs": (1, 0.2), "Deir ez Zor": (1, 0.0), "Hama": (0, 0.5)}
        for k in range(5)  # W01-W05: a little above the 2022 level (~14 a month in central Syria)
    },
    date(2023, 2, 6): {"Homs": (1, 0.3), "Deir ez Zor": (1, 0.3), "Hama": (1, 0.0)},  # W06: earthquake week
    date(2023, 2, 13): {"Homs": (2, 0.0), "Deir ez Zor": (1, 0.5), "Hama": (1, 0.3)},  # W07
    date(2023, 2, 20): {"Homs": (2, 0.5), "Deir ez Zor": (2, 0.3), "Hama": (1, 0.5)},  # W08
    date(2023, 2, 27): {"Homs": (8, 0.2), "Deir ez Zor": (6, 0.3), "Hama": (5, 0.2)},  # W09: peak
    **{
        date(2023, 3, 6) + timedelta(weeks=k): {"Homs": (1, 0.5), "Deir ez Zor": (1, 0.3), "Hama": (1, 0.0)}
        for k in range(4)  # W10-W13
    },
}
_SURGE_FROM, _SURGE_TO = date(2023, 1, 2), date(2023, 4, 2)
# The W09 extras fall on 1–5 March (the February landmines are a real incident on the 28th).
_SURGE_DAYS: dict[date, tuple[int, ...]] = {date(2023, 2, 27): (2, 3, 4, 5, 6)}

_IS_SURGE_TEMPLATES: dict[str, dict[str, float]] = {
    "Homs": {"is_attack_reg": 4, "is_vac": 2, "is_mine_civ": 2, "is_ied": 1},
    "Deir ez Zor": {"is_attack_reg": 3, "is_sdf": 1.5, "is_mine_civ": 1.5, "is_assassin": 1, "is_ied": 1},
    "Hama": {"is_attack_reg": 3, "is_vac": 2, "is_mine_civ": 2, "is_ied": 1},
}

# Real incidents named in docs/domain.md
_REAL_NOTE = (
    " [Real incident: date, place and fatalities as given in public reports (Counter Extremism"
    " Project 'ISIS Redux' and press reports; see docs/domain.md). All other demo rows are synthetic.]"
)
_REAL_SOURCE = "Public reports (CEP ISIS Redux; media)"


def _interaction(i1: int, i2: int) -> int:
    if i2 == 0:
        return i1 * 10
    lo, hi = sorted((i1, i2))
    return lo * 10 + hi


def _real(
    d: date, tp: int, et: str, sub: str, actor2: str, assoc2: str, admin1: str, place: str, gp: int, fat: int, text: str
) -> dict[str, Any]:
    admin2, admin3, loc, lat, lon = PLACES[admin1][place]
    return {
        "event_date": d.isoformat(),
        "year": d.year,
        "time_precision": tp,
        "disorder_type": "Political violence",
        "event_type": et,
        "sub_event_type": sub,
        "actor1": IS,
        "assoc_actor_1": "",
        "inter1": INTER[IS],
        "actor2": actor2,
        "assoc_actor_2": assoc2,
        "inter2": INTER[actor2],
        "interaction": _interaction(INTER[IS], INTER[actor2]),
        "civilian_targeting": "Civilian targeting" if actor2 == CIV else "",
        "iso": 760,
        "region": "Middle East",
        "country": "Syria",
        "admin1": admin1,
        "admin2": admin2,
        "admin3": admin3,
        "location": loc,
        "latitude": lat,
        "longitude": lon,
        "geo_precision": gp,
        "source": _REAL_SOURCE,
        "source_scale": "International-National",
        "notes": text + _REAL_NOTE,
        "fatalities": fat,
        "tags": "",
    }


#: The real incidents of docs/domain.md, as ACLED records (no `event_id_cnty` or `timestamp`:
#: `generate_incidents` assigns them). Their notes say they are real reports.
REAL_INCIDENTS: tuple[dict[str, Any], ...] = (
    _real(date(2023, 2, 11), 1, _VAC, _ATT, CIV, SYR, "Homs", "palmyra", 2, 11,
          "On 11 February 2023, IS members attacked civilians collecting truffles and a soldier near Palmyra (Tadmor) in rural Homs, killing 10 civilians and a soldier. 11 fatalities."),
    _real(date(2023, 2, 17), 1, _VAC, _ATT, CIV, SYR, "Homs", "sukhnah", 2, 68,
          "On 17 February 2023, IS members attacked truffle collectors and accompanying soldiers near Al Sukhnah, east of Homs, killing 68 people. 68 fatalities."),
    _real(date(2023, 2, 28), 2, _ERV, _IED, CIV, "", "Hama", "uqeirbat", 3, 10,
          "Around 28 February 2023, two landmines believed to have been left by IS exploded among truffle collectors in the desert of Hama governorate, killing 10 of them. 10 fatalities."),
    _real(date(2023, 3, 2), 1, _ERV, _IED, CIV, "", "Deir ez Zor", "kabajib", 2, 5,
          "On 2 March 2023, a landmine believed to have been planted by IS hit a truck carrying truffle collectors in the Kabajib area of rural Deir ez Zor, killing at least 5 and injuring more than 40. 5 fatalities."),
)  # fmt: skip

_QUAKE = date(2023, 2, 6)

# Generation
_DOW = {  # Monday .. Sunday
    "pv": np.array([1.05, 1.05, 1.0, 1.0, 0.88, 0.97, 1.05]),
    "protest": np.array([0.55, 0.55, 0.55, 0.55, 3.2, 0.8, 0.8]),
    "mixed": np.array([0.9, 0.9, 0.9, 0.9, 1.6, 0.9, 0.9]),
}
_IS_2022_SHAPE = np.array([1.05, 1.05, 1.08, 1.08, 0.98, 0.82, 0.62, 0.78, 0.95, 1.15, 1.2, 1.15])
_SOURCE_SCALES = ("Other", "National", "New media", "Local partner-Other", "Other-New media", "New media-National")
_SCALE_P = np.array([0.38, 0.14, 0.14, 0.14, 0.1, 0.1])


def _modifier(name: str, days: pd.DatetimeIndex) -> np.ndarray:
    """Multiplier on a stream's rate for each day."""
    t = days.values.astype("datetime64[D]")
    out = np.ones(len(days))

    def between(a: str, b: str) -> np.ndarray:
        return (t >= np.datetime64(a)) & (t <= np.datetime64(b))

    def ramp(a: str, b: str, v0: float, v1: float) -> None:
        m = between(a, b)
        span = (np.datetime64(b) - np.datetime64(a)).astype(int)
        frac = (t[m] - np.datetime64(a)).astype(int) / max(span, 1)
        out[m] *= v0 + (v1 - v0) * frac

    if name == "nw_offensive":  # regime/Russian offensive on Idleb until the 5 March 2020 ceasefire
        out[between("2020-01-01", "2020-03-05")] *= 1.9
        ramp("2020-03-06", "2020-04-30", 0.8, 1.0)
    elif name == "quake_lull":  # fighting in the north-west paused after the earthquake
        ramp("2023-02-06", "2023-02-19", 0.7, 0.95)
    elif name == "claw_sword":  # Turkish air and artillery campaign after 20 November 2022
        ramp("2022-11-20", "2022-12-25", 2.2, 1.0)
    elif name == "is_central":  # IS in the central desert: 2020-21 a little above 2022, July 2022 low
        years = days.year.values
        out[years == 2020] *= 1.08
        out[years == 2021] *= 1.12
        m22 = years == 2022
        out[m22] *= _IS_2022_SHAPE[days.month.values[m22] - 1]
        out[years >= 2023] *= 1.0
    elif name == "surge_table":  # replaced by _SURGE while it runs
        out[between(_SURGE_FROM.isoformat(), _SURGE_TO.isoformat())] = 0.0
    elif name == "ghwayran":
        out[between("2022-01-20", "2022-01-30")] *= 3.0
    elif name == "ghwayran_only":  # prison break attempt, 20-30 January 2022: ~8 events a week
        out[:] = 0.0
        out[between("2022-01-20", "2022-01-30")] = 8.0
    return out


def _weekly_gamma(rng: np.random.Generator, shape: float, n_weeks: int) -> np.ndarray:
    return rng.gamma(shape, 1.0 / shape, size=n_weeks)


def _fatalities(rng: np.random.Generator, params: np.ndarray) -> np.ndarray:
    """params: (n, 3) of (p_kill, log-mean, log-sd) -> 0, or 1 + heavy-tailed extra."""
    n = len(params)
    u = rng.random(n)
    z = rng.standard_normal(n)
    killed = u < params[:, 0]
    pos = np.rint(np.exp(params[:, 1] + params[:, 2] * z)).astype(int)
    pos = np.clip(pos, 1, 80)
    return np.where(killed, pos, 0)


def _date_text(d: date) -> str:
    return f"{d.day} {d.strftime('%B')} {d.year}"


def _fat_text(n: int, rng_u: float) -> str:
    if n == 0:
        return "Casualties unknown." if rng_u < 0.5 else "There were no fatalities."
    return "1 fatality." if n == 1 else f"{n} fatalities."


def generate_incidents(
    *, seed: int = DEMO_SEED, start: date = date(2020, 1, 1), end: date = date(2023, 3, 31)
) -> pd.DataFrame:
    """Synthetic Syria incidents in the ACLED 31-column layout, sorted by date.

    Event ids ("SYRD00001", ...) are assigned in date order and are stable for a seed.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D")
    n_days = len(days)
    dow = days.day_of_week.values
    # Monday-start week index of each day
    week_start = (days - pd.to_timedelta(dow, unit="D")).values.astype("datetime64[D]")
    weeks, week_idx = np.unique(week_start, return_inverse=True)
    doy = days.day_of_year.values
    annual = 1.0 + 0.08 * np.cos(2 * np.pi * (doy - 120) / 365.25)  # mild spring/summer high
    annual_is = 1.0 + 0.05 * np.cos(2 * np.pi * (doy - 80) / 365.25)

    ev_day: list[np.ndarray] = []
    ev_tpl: list[np.ndarray] = []
    ev_adm1: list[np.ndarray] = []
    ev_place: list[np.ndarray] = []
    tpl_keys = list(T)
    tpl_index = {k: i for i, k in enumerate(tpl_keys)}
    place_keys: list[tuple[str, str]] = [(a1, p) for a1, ps in PLACES.items() for p in ps]
    place_index = {k: i for i, k in enumerate(place_keys)}
    adm_index = {a: i for i, a in enumerate(GOVERNORATES)}

    def emit(day_ix: np.ndarray, admin1: str, tpls: dict[str, float], places: dict[str, float]) -> None:
        n = len(day_ix)
        if n == 0:
            return
        tk = list(tpls)
        tw = np.array([tpls[k] for k in tk], dtype=float)
        pk = list(places)
        pw = np.array([places[k] for k in pk], dtype=float)
        ev_day.append(day_ix)
        ev_tpl.append(np.array([tpl_index[k] for k in tk])[rng.choice(len(tk), size=n, p=tw / tw.sum())])
        ev_adm1.append(np.full(n, adm_index[admin1]))
        ev_place.append(np.array([place_index[(admin1, k)] for k in pk])[rng.choice(len(pk), size=n, p=pw / pw.sum())])

    for name, admin1, rate, shape, kind, mods, tpls, places in STREAMS:
        lam = np.full(n_days, rate / 7.0)
        w = _DOW[kind]
        lam *= (w / w.mean())[dow]
        lam *= annual_is if name.startswith("is_") else annual
        for m in mods:
            lam *= _modifier(m, days)
        lam *= _weekly_gamma(rng, shape, len(weeks))[week_idx]
        counts = rng.poisson(lam)
        emit(np.repeat(np.arange(n_days), counts), admin1, tpls, places)

    # the post-earthquake Islamic State surge
    day_pos = {d.date(): i for i, d in enumerate(days)}
    for monday, per_gov in _SURGE.items():
        allowed = _SURGE_DAYS.get(monday, tuple(range(7)))
        ixs = [day_pos[monday + timedelta(days=k)] for k in allowed if monday + timedelta(days=k) in day_pos]
        for admin1, (fixed, extra) in per_gov.items():
            n = fixed + int(rng.poisson(extra))
            if not ixs or n == 0:
                continue
            is_stream = next(s for s in STREAMS if s[0].startswith("is_") and s[1] == admin1)
            emit(np.sort(rng.choice(np.array(ixs), size=n)), admin1, _IS_SURGE_TEMPLATES[admin1], is_stream[7])

    day_arr = np.concatenate(ev_day)
    tpl_arr = np.concatenate(ev_tpl)
    place_arr = np.concatenate(ev_place)
    n = len(day_arr)
    fparams = np.array([T[tpl_keys[i]][7] for i in range(len(tpl_keys))])[tpl_arr]
    fat = _fatalities(rng, fparams)
    u_txt = rng.random(n)
    tp = np.where(rng.random(n) < 0.06, 2, 1)
    gp = np.select([rng.random(n) < 0.05, rng.random(n) < 0.3], [3, 2], 1)
    scale = rng.choice(len(_SOURCE_SCALES), size=n, p=_SCALE_P)
    crowd = rng.choice(np.array(["crowd size=no report", "crowd size=tens", "crowd size=hundreds", "crowd size=dozens"]), size=n, p=[0.4, 0.3, 0.1, 0.2])
    # revision timestamps: ACLED publishes on Tuesdays; events reach the release 1-2 weeks later,
    # some are revised again weeks after that
    delay_weeks = np.where(rng.random(n) < 0.7, 1, 2) + np.where(rng.random(n) < 0.08, rng.integers(2, 9, size=n), 0)
    batch_sec = rng.integers(36_000, 54_000, size=400)  # one clock time per release

    day_dates = [d.date() for d in days]
    rows: list[dict[str, Any]] = []
    for k in range(n):
        d = day_dates[day_arr[k]]
        et, sub, a1, as1, a2, as2, text, _ = T[tpl_keys[tpl_arr[k]]]
        admin1, place = place_keys[place_arr[k]]
        admin2, admin3, loc, lat, lon = PLACES[admin1][place]
        i1, i2 = INTER[a1], INTER[a2]
        f = int(fat[k])
        disorder = {_PROT: "Demonstrations", _RIOT: "Demonstrations", _SD: "Strategic developments"}.get(et, "Political violence")
        note_body = text.format(loc=loc, gov=admin1)
        if et == _SD and note_body.startswith("Movement of forces: "):
            note = f"Movement of forces: On {_date_text(d)}, {note_body[len('Movement of forces: '):]}. {_fat_text(f, u_txt[k])}"
        else:
            note = f"On {_date_text(d)}, {note_body}. {_fat_text(f, u_txt[k])}"
        if et == _PROT:
            note = note.replace(" Casualties unknown.", "").replace(" There were no fatalities.", "")
            note += f" [{crowd[k].replace('crowd ', '')}]"
        rows.append({
            "event_date": d.isoformat(), "year": d.year, "time_precision": int(tp[k]),
            "disorder_type": disorder, "event_type": et, "sub_event_type": sub,
            "actor1": a1, "assoc_actor_1": as1, "inter1": i1, "actor2": a2, "assoc_actor_2": as2,
            "inter2": i2, "interaction": _interaction(i1, i2),
            "civilian_targeting": "Civilian targeting" if a2 == CIV and et in (_VAC, _ERV) else "",
            "iso": 760, "region": "Middle East", "country": "Syria",
            "admin1": admin1, "admin2": admin2, "admin3": admin3, "location": loc,
            "latitude": lat, "longitude": lon, "geo_precision": int(gp[k]),
            "source": SYNTHETIC_SOURCE, "source_scale": _SOURCE_SCALES[scale[k]],
            "notes": note, "fatalities": f, "tags": crowd[k] if et == _PROT else "",
            "_delay": int(delay_weeks[k]),
        })  # fmt: skip
    for rec in REAL_INCIDENTS:
        if start.isoformat() <= rec["event_date"] <= end.isoformat():
            rows.append({**rec, "_delay": 1})

    df = pd.DataFrame(rows)
    # stable order: date, then governorate, location, event type, actor, fatalities, note
    df = df.sort_values(
        ["event_date", "admin1", "location", "event_type", "sub_event_type", "actor1", "actor2", "fatalities", "notes"],
        kind="mergesort",
    ).reset_index(drop=True)
    df["event_id_cnty"] = [f"{_ID_PREFIX}{i + 1:05d}" for i in range(len(df))]
    df["timestamp"] = _timestamps(pd.to_datetime(df["event_date"]), df["_delay"].to_numpy(), batch_sec)
    df = df.drop(columns="_delay")
    for col in ("year", "time_precision", "inter1", "inter2", "interaction", "iso", "geo_precision", "fatalities", "timestamp"):
        df[col] = df[col].astype("int64")
    for col in ("latitude", "longitude"):
        df[col] = df[col].astype("float64")
    return df.loc[:, list(ACLED_COLUMNS)]


def _timestamps(event_dates: pd.Series, delay_weeks: np.ndarray, batch_sec: np.ndarray) -> np.ndarray:
    """Unix time of the Tuesday release `delay_weeks` after the event's week, at that release's clock time."""
    d = event_dates.values.astype("datetime64[D]")
    monday = d - ((d.astype("int64") - 4) % 7)  # 1970-01-05 was a Monday (day 4)
    release = monday + 8 + 7 * (delay_weeks - 1)  # Tuesday of the following week, or later
    days_since_epoch = release.astype("int64")
    return days_since_epoch * 86_400 + batch_sec[(days_since_epoch // 7) % len(batch_sec)]


def write_demo_csv(path: Path, *, seed: int = DEMO_SEED) -> Path:
    """Write the demo incidents to `path` as a UTF-8 ACLED CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = generate_incidents(seed=seed)
    # written beside it, then renamed over it: a reader (an ingest) sees the old file or the new one, never
    # half of one; the temporary name does not end in .csv, so an inbox scan never picks it up
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.to_csv(partial, index=False, encoding="utf-8", lineterminator="\n")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


#: The demo reports on the week after the 2023-02-27 landmine killings in Hama.
DEMO_WEEK = "2023-W09"
DEMO_FILE = "syria_demo_acled_2020-01-01_2023-03-31.csv"


def run_demo(out_dir: Path, *, now: datetime, wait: float = 0.0) -> WeeklyOutcome:
    """Generate the synthetic Syria dataset under `out_dir`, then run the weekly job for 2023-W09.

    Everything it makes (inbox CSV, monitor.toml, monitor.db, reports/, the .eml) stays in
    `out_dir`. An existing monitor.toml there is kept, so a user can edit and re-run it.
    Like `monitor run`, it holds the database's run lock (monitor.lock) while it writes the
    inbox file and the database: `wait` seconds for another holder, then LockError (exit 5).
    """
    from importlib import resources

    from monitor.config import load_config
    from monitor.errors import MonitorError
    from monitor.lock import locked_store
    from monitor.pipeline import run_weekly
    from monitor.series import parse_week

    out_dir = Path(out_dir)
    inbox = out_dir / "inbox"
    config_path = out_dir / "monitor.toml"
    try:
        inbox.mkdir(parents=True, exist_ok=True)
        if not config_path.exists():
            _write_new(config_path, resources.files("monitor").joinpath("data/demo.toml").read_text(encoding="utf-8"))
    except OSError as exc:
        raise MonitorError(f"cannot write the demo into {out_dir}: {exc.strerror or exc}") from None
    config = load_config(config_path)
    with locked_store(config.db_path, clock=lambda: now, wait=wait, command="monitor demo") as store:
        write_demo_csv(inbox / DEMO_FILE)
        return run_weekly(config, store, week=parse_week(DEMO_WEEK, start=config.week.start), now=now)


def _write_new(path: Path, text: str) -> None:
    """Create `path` with `text` in one step, keeping a file that exists already (e.g. written by a demo started
    at the same moment): never a half-written file, never an overwritten one."""
    import tempfile

    from monitor.atomic import file_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # a normal file's mode, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.link(tmp, path)  # fails if the file exists: link, unlike rename, never replaces
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
