#!/usr/bin/env python
"""Shared pieces of the ingest and run benchmarks (issue 5): a seeded ACLED-format file
generator, child-process timing with peak RSS, and a cProfile wrapper for the CLI.

Used by `scripts/bench_ingest.py` and `scripts/bench_run.py`; not part of the package.

* `write_acled_csv` writes N rows in the current 31-column ACLED export layout (the
  layout of `../shared/data/acled_sample_9000_2022-01-01_2022-06-30.csv`), sorted by
  date, from 2015-01-05 to 2024-12-29 (520 whole Monday weeks). Countries, their admin1
  names, ISO codes, regions, the event type / sub-event type taxonomy, the inter codes
  and the actor names follow ACLED; admin2 and location names are made up (syllables),
  notes are templated sentences of 150-400 characters. Event ids (`SYR1234`) are
  unique; `timestamp` is Unix seconds a few days to weeks after the event. Optionally
  it writes, in the same pass, a second file where a fraction of rows are revised (a
  later `timestamp` and a changed `fatalities`), as an ACLED re-export would be.
  **The data is synthetic**: realistic in shape and size only.
* `measure` runs a command as a child process and returns its wall time and its own
  peak RSS, read by GNU time (`/usr/bin/time -f %M`). Not `getrusage(RUSAGE_CHILDREN)`
  deltas: that figure is a maximum over all children so far, and Linux also carries the
  parent's RSS high-water mark into a forked child across exec, so a child of this
  (large) benchmark process would never report less than the benchmark's own peak.
* `python scripts/benchlib.py profile --out FILE --limit SECONDS -- ARGS...` runs
  `monitor ARGS...` under cProfile and writes the stats to FILE, also when the time
  limit (SIGALRM) or a SIGTERM stops it first; `print_profile` summarises the file.
"""

from __future__ import annotations

import argparse
import csv
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from monitor.demo import (
    ACLED_COLUMNS,  # the current ACLED export layout (31 columns), as in ../shared/data
)

#: First and last event day: 520 whole weeks, Monday 2015-01-05 to Sunday 2024-12-29 (2024-W52).
FIRST_DAY = date(2015, 1, 5)
LAST_DAY = date(2024, 12, 29)
LAST_WEEK = "2024-W52"


@dataclass(frozen=True)
class Country:
    """A country as ACLED codes it: ISO3 (event id prefix), ISO numeric, region, relative
    volume, how much of its activity is armed conflict (0..1), rough centre, admin1 names
    and the armed groups active there (name, ACLED inter code)."""

    name: str
    iso3: str
    iso: int
    region: str
    weight: float
    conflict: float
    lat: float
    lon: float
    admin1: tuple[str, ...]
    groups: tuple[tuple[str, int], ...]
    forces_since: str = "2000-"


def _c(name, iso3, iso, region, weight, conflict, lat, lon, admin1: str, groups, since="2000-") -> Country:
    return Country(name, iso3, iso, region, weight, conflict, lat, lon, tuple(a.strip() for a in admin1.split(";")), tuple(groups), since)


COUNTRIES: tuple[Country, ...] = (
    _c("Syria", "SYR", 760, "Middle East", 10, 0.9, 35.0, 38.5,
       "Aleppo;Al Hasakeh;Ar-Raqqa;As-Sweida;Damascus;Dara;Deir ez Zor;Hama;Homs;Idleb;Lattakia;Quneitra;Rural Damascus;Tartous",
       [("Islamic State (Syria)", 2), ("HTS: Hayat Tahrir al Sham", 2), ("SDF: Syrian Democratic Forces", 2),
        ("Military Forces of Turkey (2016-)", 8), ("Military Forces of Russia (2000-)", 8)], "2000-2024"),
    _c("Ukraine", "UKR", 804, "Europe", 9, 0.95, 48.5, 32.0,
       "Cherkasy;Chernihiv;Chernivtsi;Dnipropetrovsk;Donetsk;Ivano-Frankivsk;Kharkiv;Kherson;Khmelnytskyi;Kirovohrad;Kyiv;"
       "Kyiv City;Luhansk;Lviv;Mykolaiv;Odesa;Poltava;Rivne;Sumy;Ternopil;Vinnytsia;Volyn;Zakarpattia;Zaporizhia;Zhytomyr;"
       "Autonomous Republic of Crimea",
       [("Military Forces of Russia (2000-)", 8), ("Wagner Group", 8), ("DNR: Donetsk People's Republic", 2),
        ("LNR: Luhansk People's Republic", 2)], "2019-"),
    _c("India", "IND", 356, "South Asia", 8, 0.15, 22.0, 79.0,
       "Andhra Pradesh;Assam;Bihar;Chhattisgarh;Delhi;Gujarat;Haryana;Jammu and Kashmir;Jharkhand;Karnataka;Kerala;"
       "Madhya Pradesh;Maharashtra;Manipur;Odisha;Punjab;Rajasthan;Tamil Nadu;Telangana;Uttar Pradesh;West Bengal",
       [("CPI (Maoist): Communist Party of India (Maoist)", 2), ("Meitei Ethnic Militia (India)", 4),
        ("Hizbul Mujahideen", 2), ("BJP: Bharatiya Janata Party", 3)], "2014-"),
    _c("Yemen", "YEM", 887, "Middle East", 6, 0.85, 15.5, 47.5,
       "Abyan;Aden;Al Bayda;Al Dhale'e;Al Hudaydah;Al Jawf;Al Maharah;Al Mahwit;Amanat al Asimah;Amran;Dhamar;Hadramawt;"
       "Hajjah;Ibb;Lahj;Marib;Raymah;Sadah;Sanaa;Shabwah;Socotra;Taizz",
       [("Ansar Allah (Houthis)", 2), ("AQAP: Al Qaeda in the Arabian Peninsula", 2), ("STC: Southern Transitional Council", 3),
        ("Operation Restoring Hope", 8)], "2017-"),
    _c("Afghanistan", "AFG", 4, "Caucasus and Central Asia", 5, 0.85, 34.0, 66.0,
       "Badakhshan;Badghis;Baghlan;Balkh;Bamyan;Daykundi;Farah;Faryab;Ghazni;Ghor;Helmand;Herat;Jowzjan;Kabul;Kandahar;"
       "Kapisa;Khost;Kunar;Kunduz;Laghman;Logar;Nangarhar;Nimruz;Nuristan;Paktika;Paktya;Panjsher;Parwan;Samangan;"
       "Sar-e-Pul;Takhar;Uruzgan;Wardak;Zabul",
       [("Taliban", 2), ("Islamic State Khorasan Province (ISKP)", 2), ("NRF: National Resistance Front", 2)], "2021-"),
    _c("Nigeria", "NGA", 566, "Western Africa", 5, 0.6, 9.0, 8.0,
       "Abia;Adamawa;Akwa Ibom;Anambra;Bauchi;Bayelsa;Benue;Borno;Cross River;Delta;Ebonyi;Edo;Ekiti;Enugu;"
       "Federal Capital Territory;Gombe;Imo;Jigawa;Kaduna;Kano;Katsina;Kebbi;Kogi;Kwara;Lagos;Nasarawa;Niger;Ogun;Ondo;"
       "Osun;Oyo;Plateau;Rivers;Sokoto;Taraba;Yobe;Zamfara",
       [("Boko Haram - Jamaatu Ahli is-Sunnah lid-Dawati wal-Jihad", 2), ("ISWAP: Islamic State West Africa Province", 2),
        ("Fulani Ethnic Militia (Nigeria)", 4), ("IPOB: Indigenous People of Biafra", 2)], "2015-2023"),
    _c("Mexico", "MEX", 484, "Central America", 5, 0.5, 23.0, -102.0,
       "Baja California;Chiapas;Chihuahua;Ciudad de Mexico;Coahuila de Zaragoza;Colima;Durango;Guanajuato;Guerrero;"
       "Jalisco;Mexico;Michoacan de Ocampo;Morelos;Nuevo Leon;Oaxaca;Puebla;Quintana Roo;San Luis Potosi;Sinaloa;Sonora;"
       "Tabasco;Tamaulipas;Veracruz de Ignacio de la Llave;Zacatecas",
       [("CJNG: Jalisco New Generation Cartel", 3), ("Sinaloa Cartel", 3), ("Unidentified Gang (Mexico)", 3)], "2018-2024"),
    _c("Brazil", "BRA", 76, "South America", 5, 0.4, -10.0, -52.0,
       "Alagoas;Amazonas;Bahia;Ceara;Espirito Santo;Goias;Maranhao;Minas Gerais;Para;Paraiba;Parana;Pernambuco;"
       "Rio de Janeiro;Rio Grande do Sul;Sao Paulo",
       [("Militia (Brazil)", 3), ("PCC: First Capital Command", 3), ("CV: Red Command", 3)], "2019-2022"),
    _c("Myanmar", "MMR", 104, "Southeast Asia", 4, 0.8, 21.0, 96.0,
       "Ayeyarwady;Bago-East;Bago-West;Chin;Kachin;Kayah;Kayin;Magway;Mandalay;Mon;Nay Pyi Taw;Rakhine;Sagaing;"
       "Shan-East;Shan-North;Shan-South;Tanintharyi;Yangon",
       [("PDF: People's Defense Force", 2), ("AA: Arakan Army", 2), ("KIA: Kachin Independence Army", 2),
        ("Pyu Saw Htee Militia", 3)], "2021-"),
    _c("Iraq", "IRQ", 368, "Middle East", 4, 0.6, 33.2, 43.7,
       "Al-Anbar;Al-Basrah;Al-Muthanna;Al-Najaf;Al-Qadissiya;Babylon;Baghdad;Dahuk;Diyala;Erbil;Kerbala;Kirkuk;Maysan;"
       "Ninewa;Salah Al-Din;Sulaymaniyah;Thi-Qar;Wassit",
       [("Islamic State (Iraq)", 2), ("PMF: Popular Mobilization Forces", 3), ("PKK: Kurdistan Workers Party", 2),
        ("Military Forces of Turkey (2016-)", 8)], "2014-"),
    _c("Pakistan", "PAK", 586, "South Asia", 3, 0.5, 30.0, 70.0,
       "Azad Kashmir;Balochistan;Gilgit-Baltistan;Islamabad Capital Territory;Khyber Pakhtunkhwa;Punjab;Sindh",
       [("TTP: Tehreek-i-Taliban Pakistan", 2), ("BLA: Balochistan Liberation Army", 2), ("PTI: Pakistan Tehreek-i-Insaf", 3)],
       "2018-2022"),
    _c("Somalia", "SOM", 706, "Eastern Africa", 3, 0.85, 5.0, 46.0,
       "Awdal;Bakool;Banadir;Bari;Bay;Galgaduud;Gedo;Hiraan;Lower Juba;Lower Shabelle;Middle Juba;Middle Shabelle;Mudug;"
       "Nugaal;Sanaag;Sool;Togdheer;Woqooyi Galbeed",
       [("Al Shabaab", 2), ("Islamic State (Somalia)", 2), ("Jubaland State Forces", 1), ("AMISOM: African Union Mission in Somalia", 8)],
       "2022-"),
    _c("Sudan", "SDN", 729, "Northern Africa", 3, 0.7, 15.5, 30.0,
       "Al Jazirah;Blue Nile;Central Darfur;East Darfur;Gedaref;Kassala;Khartoum;North Darfur;North Kordofan;Northern;"
       "Red Sea;River Nile;Sennar;South Darfur;South Kordofan;West Darfur;West Kordofan;White Nile",
       [("RSF: Rapid Support Forces", 2), ("SPLM-N: Sudan People's Liberation Movement-North", 2),
        ("SLM/A: Sudan Liberation Movement/Army", 2)], "2019-"),
    _c("Democratic Republic of Congo", "COD", 180, "Middle Africa", 3, 0.8, -2.5, 23.5,
       "Bas-Uele;Equateur;Haut-Katanga;Haut-Lomami;Haut-Uele;Ituri;Kasai;Kasai-Central;Kasai-Oriental;Kinshasa;"
       "Kongo-Central;Kwango;Kwilu;Lomami;Lualaba;Mai-Ndombe;Maniema;Mongala;Nord-Kivu;Nord-Ubangi;Sankuru;Sud-Kivu;"
       "Sud-Ubangi;Tanganyika;Tshopo;Tshuapa",
       [("M23: March 23 Movement", 2), ("ADF: Allied Democratic Forces", 2), ("CODECO: Cooperative for the Development of Congo", 4),
        ("Mai-Mai Militia", 4)], "2019-"),
    _c("Ethiopia", "ETH", 231, "Eastern Africa", 2, 0.6, 9.0, 39.5,
       "Addis Ababa;Afar;Amhara;Benshangul/Gumuz;Dire Dawa;Gambela;Harari;Oromia;Sidama;Somali;South West Ethiopia;SNNP;Tigray",
       [("TPLF: Tigray People's Liberation Front", 2), ("OLF: Oromo Liberation Front (Shane Splinter Faction)", 2),
        ("Fano Militia", 4)], "2018-"),
    _c("Colombia", "COL", 170, "South America", 2, 0.5, 4.5, -74.0,
       "Antioquia;Arauca;Bogota;Bolivar;Caqueta;Cauca;Cesar;Choco;Cordoba;Guaviare;Huila;Meta;Narino;Norte de Santander;"
       "Putumayo;Santander;Tolima;Valle del Cauca",
       [("ELN: National Liberation Army", 2), ("Clan del Golfo", 3), ("FARC Dissidents", 2)], "2022-"),
    _c("Philippines", "PHL", 608, "Southeast Asia", 2, 0.55, 12.0, 122.0,
       "Bangsamoro Autonomous Region in Muslim Mindanao;Bicol;Cagayan Valley;Calabarzon;Caraga;Central Luzon;"
       "Central Visayas;Davao;Eastern Visayas;Ilocos;Metropolitan Manila;Mimaropa;Northern Mindanao;Soccsksargen;"
       "Western Visayas;Zamboanga Peninsula",
       [("NPA: New People's Army", 2), ("Abu Sayyaf", 2), ("BIFF: Bangsamoro Islamic Freedom Fighters", 2)], "2022-"),
    _c("Bangladesh", "BGD", 50, "South Asia", 2, 0.2, 23.7, 90.4,
       "Barisal;Chittagong;Dhaka;Khulna;Mymensingh;Rajshahi;Rangpur;Sylhet",
       [("AL: Awami League", 3), ("BNP: Bangladesh Nationalist Party", 3), ("BCL: Bangladesh Chhatra League", 3)], "2009-2024"),
    _c("Palestine", "PSE", 275, "Middle East", 2, 0.6, 31.9, 35.2, "Gaza Strip;West Bank",
       [("Hamas Movement", 2), ("PIJ: Palestinian Islamic Jihad", 2), ("Military Forces of Israel (2022-)", 8),
        ("Settlers (Israel)", 4)], "2015-"),
    _c("Mali", "MLI", 466, "Western Africa", 1.5, 0.8, 17.0, -2.0,
       "Bamako;Gao;Kayes;Kidal;Koulikoro;Menaka;Mopti;Segou;Sikasso;Taoudeni;Tombouctou",
       [("JNIM: Jamaah Nusrah al Islam wal Muslimin", 2), ("Islamic State (Sahel)", 2), ("Dozo Communal Militia (Mali)", 4)],
       "2021-"),
    _c("Burkina Faso", "BFA", 854, "Western Africa", 1.5, 0.85, 12.3, -1.5,
       "Boucle du Mouhoun;Cascades;Centre;Centre-Est;Centre-Nord;Centre-Ouest;Centre-Sud;Est;Hauts-Bassins;Nord;"
       "Plateau-Central;Sahel;Sud-Ouest",
       [("JNIM: Jamaah Nusrah al Islam wal Muslimin", 2), ("Islamic State (Sahel)", 2),
        ("VDP: Volunteers for the Defense of the Homeland", 3)], "2022-"),
    _c("Cameroon", "CMR", 120, "Middle Africa", 1.2, 0.75, 6.0, 12.5,
       "Adamaoua;Centre;Est;Extreme-Nord;Littoral;Nord;Nord-Ouest;Ouest;Sud;Sud-Ouest",
       [("Ambazonian Separatists", 2), ("Boko Haram - Jamaatu Ahli is-Sunnah lid-Dawati wal-Jihad", 2)], "1982-"),
    _c("Mozambique", "MOZ", 508, "Southern Africa", 1, 0.6, -18.0, 35.0,
       "Cabo Delgado;Gaza;Inhambane;Manica;Maputo;Maputo City;Nampula;Niassa;Sofala;Tete;Zambezia",
       [("Islamic State (Mozambique)", 2), ("RENAMO: Mozambican National Resistance", 2)], "2015-2025"),
    _c("Kenya", "KEN", 404, "Eastern Africa", 1, 0.35, 0.5, 37.9,
       "Baringo;Garissa;Kiambu;Kisumu;Lamu;Machakos;Mandera;Marsabit;Mombasa;Nairobi;Nakuru;Turkana;Wajir;West Pokot",
       [("Al Shabaab", 2), ("Pokot Ethnic Militia (Kenya)", 4), ("Turkana Ethnic Militia (Kenya)", 4)], "2022-"),
    _c("Lebanon", "LBN", 422, "Middle East", 1, 0.4, 33.9, 35.8,
       "Akkar;Baalbek-Hermel;Beirut;Beqaa;Mount Lebanon;Nabatieh;North;South",
       [("Hezbollah", 2), ("Military Forces of Israel (2022-)", 8), ("Amal Movement", 3)], "2000-"),
    _c("Central African Republic", "CAF", 140, "Middle Africa", 0.8, 0.85, 6.6, 20.9,
       "Bamingui-Bangoran;Bangui;Basse-Kotto;Haut-Mbomou;Haute-Kotto;Kemo;Lobaye;Mambere-Kadei;Mbomou;Nana-Grebizi;"
       "Nana-Mambere;Ombella-M'Poko;Ouaka;Ouham;Ouham-Pende;Vakaga",
       [("UPC: Union for Peace in the Central African Republic", 2), ("3R: Return, Reclamation, Rehabilitation", 2),
        ("Anti-Balaka", 4), ("Wagner Group", 8)], "2016-"),
    _c("Libya", "LBY", 434, "Northern Africa", 0.7, 0.6, 27.0, 17.0,
       "Al Jabal al Akhdar;Al Jufrah;Al Kufrah;Al Marj;Al Wahat;Benghazi;Darnah;Ghat;Misrata;Murzuq;Nalut;Sabha;Sirt;"
       "Tripoli;Wadi al Hayat;Zawiyah",
       [("LNA: Libyan National Army", 2), ("Islamic State (Libya)", 2), ("Zintan Militia", 3)], "2016-"),
    _c("Haiti", "HTI", 332, "Caribbean", 0.6, 0.6, 19.0, -72.3,
       "Artibonite;Centre;Grand'Anse;Nippes;Nord;Nord-Est;Nord-Ouest;Ouest;Sud;Sud-Est",
       [("G9 Family and Allies", 3), ("Gran Grif Gang", 3), ("400 Mawozo Gang", 3)], "2017-"),
    _c("South Sudan", "SSD", 728, "Eastern Africa", 1, 0.85, 7.0, 30.0,
       "Central Equatoria;Eastern Equatoria;Jonglei;Lakes;Northern Bahr el Ghazal;Unity;Upper Nile;Warrap;"
       "Western Bahr el Ghazal;Western Equatoria",
       [("SPLM/A-IO: Sudan People's Liberation Movement/Army-In Opposition", 2), ("NAS: National Salvation Front", 2),
        ("Dinka Ethnic Militia (South Sudan)", 4)], "2011-"),
)  # fmt: skip

#: ACLED event types: (event type, disorder type, sub-event types with relative weights, mean fatalities).
EVENT_TYPES: tuple[tuple[str, str, tuple[tuple[str, float], ...], float], ...] = (
    ("Battles", "Political violence",
     (("Armed clash", 0.9), ("Government regains territory", 0.05), ("Non-state actor overtakes territory", 0.05)), 3.0),
    ("Explosions/Remote violence", "Political violence",
     (("Shelling/artillery/missile attack", 0.55), ("Air/drone strike", 0.25), ("Remote explosive/landmine/IED", 0.15),
      ("Grenade", 0.03), ("Suicide bomb", 0.02)), 1.5),
    ("Violence against civilians", "Political violence",
     (("Attack", 0.75), ("Abduction/forced disappearance", 0.22), ("Sexual violence", 0.03)), 1.2),
    ("Protests", "Demonstrations",
     (("Peaceful protest", 0.93), ("Protest with intervention", 0.06), ("Excessive force against protesters", 0.01)), 0.01),
    ("Riots", "Demonstrations", (("Violent demonstration", 0.6), ("Mob violence", 0.4)), 0.2),
    ("Strategic developments", "Strategic developments",
     (("Arrests", 0.3), ("Looting/property destruction", 0.25), ("Change to group/activity", 0.15), ("Agreement", 0.05),
      ("Disrupted weapons use", 0.1), ("Headquarters or base established", 0.05), ("Non-violent transfer of territory", 0.05),
      ("Other", 0.05)), 0.05),
)  # fmt: skip
#: Event type mix of armed-conflict activity and of civil unrest; a country blends them by its `conflict` share.
_CONFLICT_MIX = np.array([0.34, 0.36, 0.18, 0.04, 0.02, 0.06])
_CIVIL_MIX = np.array([0.04, 0.02, 0.10, 0.66, 0.12, 0.06])

SOURCES: tuple[tuple[str, str], ...] = (
    ("Syrian Observatory for Human Rights", "National"), ("Reuters", "International"), ("Agence France Presse", "International"),
    ("Al Jazeera", "International"), ("BBC News", "International"), ("Xinhua", "International"),
    ("Local partner (Syria Monitor)", "Local partner-Other"), ("Afghan Peace Watch", "Local partner-Other"),
    ("Twitter", "New media"), ("Telegram", "New media"), ("Premium Times", "National"), ("The Hindu", "National"),
    ("Times of India", "National"), ("Ukrainska Pravda", "National"), ("Ministry of Defence of Ukraine", "Other"),
    ("Daily Star (Bangladesh)", "National"), ("El Universal (Mexico)", "National"), ("Fogo Cruzado", "Subnational"),
    ("Radio Okapi", "National"), ("Kivu Security Tracker", "Local partner-Other"), ("Shabelle Media Network", "National"),
    ("Garowe Online", "Subnational"), ("Irrawaddy", "National"), ("Mizzima", "National"), ("Dawn", "National"),
    ("Yemen Data Project; Saba News Agency", "Other-National"), ("ReliefWeb", "Other"), ("Crisis Group", "Other"),
)  # fmt: skip

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_SYLLABLES = ("al", "ba", "da", "ka", "ma", "na", "ra", "sa", "ta", "za", "bu", "du", "ku", "mu", "ru", "shi", "ki",
              "li", "mi", "ni", "go", "lo", "mo", "ko", "han", "dar", "kan", "tur", "bel", "ram", "wa", "ya")  # fmt: skip

_LEADS: dict[str, tuple[str, ...]] = {
    "Battles": ("{a1} clashed with {a2}", "fighting broke out between {a1} and {a2}",
                "{a1} attacked positions held by {a2}", "{a2} ambushed a patrol of {a1}"),
    "Explosions/Remote violence": ("{a1} shelled positions of {a2}", "{a1} carried out a drone strike on {a2}",
                                   "an IED planted by {a1} exploded near a vehicle of {a2}",
                                   "{a1} fired artillery and rockets at {a2}"),
    "Violence against civilians": ("{a1} attacked and killed civilians", "{a1} abducted a group of {a2}",
                                   "unidentified gunmen believed to be {a1} shot at {a2}", "{a1} raided homes of {a2}"),
    "Protests": ("{a1} gathered to protest against rising fuel prices", "{a1} demonstrated outside the governor's office",
                 "{a1} held a sit-in demanding the release of detainees", "{a1} rallied against electricity cuts"),
    "Riots": ("{a1} clashed with {a2} and set tyres on fire", "{a1} attacked a police station after an arrest",
              "a mob of {a1} lynched a man accused of theft", "{a1} blocked the main road and threw stones at {a2}"),
    "Strategic developments": ("{a1} arrested several members of {a2}", "{a1} looted and burned shops",
                               "{a1} and {a2} signed a local ceasefire agreement", "{a1} defused an IED planted on a road"),
}  # fmt: skip
_FILLERS: tuple[str, ...] = (
    "The clashes lasted several hours and involved heavy machine guns and mortars.",
    "Casualty figures could not be independently verified.",
    "Local sources said the attack followed a dispute over control of a checkpoint near the village.",
    "Reinforcements were sent to the area later that day.",
    "Several houses and a school were damaged.",
    "The group claimed responsibility in a statement posted online.",
    "Security forces closed the main road and imposed a curfew in the district.",
    "Residents fled towards the district centre.",
    "The event was reported by multiple local outlets.",
    "Size: no report.",
    "Around 200 people took part, according to the organisers.",
    "Police dispersed the crowd using tear gas.",
    "Two of the wounded were taken to the provincial hospital.",
    "The victims were reportedly members of the local council.",
)  # fmt: skip


def _day_text(day: date) -> str:
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _name(rng: random.Random, parts: tuple[int, int] = (2, 3)) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(*parts))).capitalize()


@dataclass(frozen=True)
class _Places:
    """Every (country, admin1, admin2, location) of the synthetic world, with coordinates and
    per-country sampling weights (Zipf-like: a few admin1 areas carry most events)."""

    country: np.ndarray  # index into COUNTRIES
    admin1: list[str]
    admin2: list[str]
    location: list[str]
    lat: np.ndarray
    lon: np.ndarray
    weight: np.ndarray  # sums to 1 within each country
    admin1_key: np.ndarray  # distinct id per (country, admin1), for the per-area trend


def _places(rng: random.Random) -> _Places:
    country, admin1, admin2, location, lat, lon, weight, a1key = [], [], [], [], [], [], [], []
    key = 0
    for ci, c in enumerate(COUNTRIES):
        order = list(range(len(c.admin1)))
        rng.shuffle(order)  # which admin1 areas are busy is random, not alphabetical
        for rank, ai in enumerate(order):
            a1_weight = 1.0 / (rank + 1) ** 0.9
            a1_lat, a1_lon = c.lat + rng.uniform(-3, 3), c.lon + rng.uniform(-3, 3)
            n2 = rng.randint(3, 10)
            for k2 in range(n2):
                a2 = _name(rng)
                a2_weight = a1_weight / (k2 + 1) / sum(1 / (j + 1) for j in range(n2))
                n_loc = rng.randint(1, 4)
                for k3 in range(n_loc):
                    country.append(ci)
                    admin1.append(c.admin1[ai])
                    admin2.append(a2)
                    location.append(a2 if k3 == 0 else _name(rng))
                    lat.append(a1_lat + rng.uniform(-0.8, 0.8))
                    lon.append(a1_lon + rng.uniform(-0.8, 0.8))
                    weight.append(a2_weight / n_loc)
                    a1key.append(key)
            key += 1
    w = np.array(weight)
    idx = np.array(country)
    for ci in range(len(COUNTRIES)):
        w[idx == ci] /= w[idx == ci].sum()
    return _Places(idx, admin1, admin2, location, np.array(lat), np.array(lon), w, np.array(a1key))


def _actors(c: Country, event_type: str, rng: random.Random) -> tuple[str, int, str, int]:
    """(actor1, inter1, actor2, inter2) for an event of this type in this country."""
    forces = (f"Military Forces of {c.name} ({c.forces_since})", 1)
    police = (f"Police Forces of {c.name} ({c.forces_since})", 1)
    civilians = (f"Civilians ({c.name})", 7)
    unidentified = (f"Unidentified Armed Group ({c.name})", 3)
    armed = rng.choice(c.groups) if rng.random() < 0.8 else unidentified
    if event_type == "Battles":
        a1, a2 = (forces, armed) if rng.random() < 0.6 else (armed, rng.choice((*c.groups, forces)))
        if a1 == a2:
            a2 = unidentified
    elif event_type == "Explosions/Remote violence":
        a1 = forces if rng.random() < 0.5 else armed
        a2 = civilians if rng.random() < 0.3 else (armed if a1 is forces else forces)
    elif event_type == "Violence against civilians":
        a1, a2 = (armed if rng.random() < 0.8 else police), civilians
    elif event_type == "Protests":
        a1 = (f"Protesters ({c.name})", 6)
        a2 = police if rng.random() < 0.1 else ("", 0)
    elif event_type == "Riots":
        a1 = (f"Rioters ({c.name})", 5)
        a2 = rng.choice((police, civilians, ("", 0)))
    else:
        a1 = rng.choice((forces, police, armed))
        a2 = rng.choice((armed, civilians, ("", 0)))
    return a1[0], a1[1], a2[0], a2[1]


def _notes(
    rng: random.Random, *, day_text: str, event_type: str, a1: str, a2: str, location: str, admin2: str, admin1: str,
    fatalities: int,
) -> str:  # fmt: skip
    """A note of about 150-400 characters in ACLED's style."""
    lead = rng.choice(_LEADS[event_type]).format(a1=a1 or "unidentified persons", a2=a2 or "unidentified persons")
    text = f"On {day_text}, in {location} ({admin2}, {admin1}), {lead}."
    if fatalities:
        tail = f" {fatalities} fatalit{'y' if fatalities == 1 else 'ies'}."
    else:
        tail = ""
    target = rng.randint(150, 400)
    while len(text) + len(tail) < target:
        text += " " + rng.choice(_FILLERS)
    text += tail
    return text if len(text) <= 400 else text[:397].rstrip() + "..."


def write_acled_csv(
    path: Path, *, rows: int, seed: int = 1, revised_path: Path | None = None, revised_fraction: float = 0.01,
) -> int:  # fmt: skip
    """Write `rows` synthetic events in the current ACLED export layout to `path`.

    path: the CSV file to write (UTF-8, header row, `\\n` line ends, sorted by date).
    rows: number of events; seed: the generator seed (same seed, same bytes).
    revised_path: if given, also write the same file with `revised_fraction` of the rows
        (chosen with the seed) revised: `timestamp` later by 1-90 days and `fatalities`
        raised by 1-3, everything else identical.
    Returns the number of revised rows (0 without `revised_path`).
    """
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    places = _places(rng)
    n_countries = len(COUNTRIES)

    # country of each event, then its day: a rising global trend times a per-country, per-year factor
    weights = np.array([c.weight for c in COUNTRIES])
    country = nrng.choice(n_countries, size=rows, p=weights / weights.sum())
    n_days = (LAST_DAY - FIRST_DAY).days + 1
    t = np.arange(n_days) / n_days
    years = (np.datetime64(FIRST_DAY.isoformat()) + np.arange(n_days)).astype("datetime64[Y]").astype(int)
    years -= years.min()
    day = np.empty(rows, dtype=np.int64)
    place = np.empty(rows, dtype=np.int64)
    for ci in range(n_countries):
        mask = country == ci
        n = int(mask.sum())
        factor = nrng.lognormal(0.0, 0.5, size=years.max() + 1)[years]
        w = (0.5 + t) * factor
        day[mask] = nrng.choice(n_days, size=n, p=w / w.sum())
        rows_of = np.flatnonzero(places.country == ci)
        place[mask] = nrng.choice(rows_of, size=n, p=places.weight[rows_of])
    conflict = np.array([c.conflict for c in COUNTRIES])[country]
    mix = conflict[:, None] * _CONFLICT_MIX + (1 - conflict[:, None]) * _CIVIL_MIX
    etype = (nrng.random(rows)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
    etype = np.minimum(etype, len(EVENT_TYPES) - 1)
    mean_fat = np.array([e[3] for e in EVENT_TYPES])[etype]
    # overdispersed fatalities: mostly 0-3, a long tail
    fatalities = nrng.negative_binomial(0.4, 0.4 / (0.4 + mean_fat))
    delay = nrng.integers(86_400, 45 * 86_400, size=rows)
    order = np.lexsort((country, day))  # by date, then country, as exports are sorted
    revised = np.zeros(rows, dtype=bool)
    if revised_path is not None:
        revised[nrng.choice(rows, size=int(round(rows * revised_fraction)), replace=False)] = True

    next_id = {c.iso3: rng.randint(1_000, 60_000) for c in COUNTRIES}
    day_texts = [_day_text(FIRST_DAY + timedelta(days=int(d))) for d in range(n_days)]
    day_isos = [(FIRST_DAY + timedelta(days=int(d))).isoformat() for d in range(n_days)]
    epoch0 = int(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=timezone.utc).timestamp())
    subs = [([s for s, _ in e[2]], [w for _, w in e[2]]) for e in EVENT_TYPES]

    main = open(path, "w", newline="", encoding="utf-8")
    second = open(revised_path, "w", newline="", encoding="utf-8") if revised_path is not None else None
    try:
        out_main = csv.writer(main, lineterminator="\n")
        out_second = csv.writer(second, lineterminator="\n") if second else None
        out_main.writerow(ACLED_COLUMNS)
        if out_second:
            out_second.writerow(ACLED_COLUMNS)
        batch_main: list[list] = []
        batch_second: list[list] = []
        for i in order.tolist():
            c = COUNTRIES[country[i]]
            p = int(place[i])
            d = int(day[i])
            et_name, disorder, _, _ = EVENT_TYPES[etype[i]]
            sub_names, sub_weights = subs[etype[i]]
            sub = rng.choices(sub_names, sub_weights)[0]
            a1, inter1, a2, inter2 = _actors(c, et_name, rng)
            fat = int(fatalities[i])
            if et_name in ("Protests", "Strategic developments") and sub != "Excessive force against protesters":
                fat = 0
            event_id = f"{c.iso3}{next_id[c.iso3]}"
            next_id[c.iso3] += 1
            admin1, admin2, location = places.admin1[p], places.admin2[p], places.location[p]
            notes = _notes(
                rng, day_text=day_texts[d], event_type=et_name, a1=a1, a2=a2, location=location, admin2=admin2,
                admin1=admin1, fatalities=fat,
            )  # fmt: skip
            source, scale = rng.choice(SOURCES)
            stamp = epoch0 + d * 86_400 + int(delay[i])
            civ = "Civilian targeting" if inter2 == 7 and et_name != "Protests" else ""
            interaction = 10 * min(inter1, inter2) + max(inter1, inter2) if inter2 else inter1 * 10
            record = [
                event_id, day_isos[d], day_isos[d][:4], rng.choice((1, 1, 1, 2, 3)), disorder, et_name, sub,
                a1, "", inter1, a2, "", inter2, interaction, civ,
                c.iso, c.region, c.name, admin1, admin2, "", location,
                f"{places.lat[p]:.4f}", f"{places.lon[p]:.4f}", rng.choice((1, 1, 2, 2, 3)),
                source, scale, notes, fat, "crowd size=no report" if et_name == "Protests" and rng.random() < 0.5 else "",
                stamp,
            ]  # fmt: skip
            batch_main.append(record)
            if out_second:
                if revised[i]:
                    change = rng.randint(1, 3)
                    record = list(record)
                    record[28] = fat + change
                    record[30] = stamp + rng.randint(1, 90) * 86_400
                    # the note states the fatalities; a revision updates it too
                    if fat:
                        record[27] = notes.replace(f" {fat} fatalit", f" {fat + change} fatalit")
                batch_second.append(record)
            if len(batch_main) >= 10_000:
                out_main.writerows(batch_main)
                batch_main.clear()
                if out_second:
                    out_second.writerows(batch_second)
                    batch_second.clear()
        out_main.writerows(batch_main)
        if out_second:
            out_second.writerows(batch_second)
    finally:
        main.close()
        if second:
            second.close()
    return int(revised.sum())


#: GNU time, if present: it reports the peak RSS of the command alone (see `measure`).
GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    """How `measure` reads a child's peak RSS, in words (for the benchmark's output)."""
    if Path(GNU_TIME).exists():
        return f"peak RSS of each child: `{GNU_TIME} -f %M` (the command's own ru_maxrss, its start-up included)"
    return ("peak RSS of each child: ru_maxrss of os.wait4() on it; NOTE: without GNU time this includes the "
            "benchmark process's own peak at the fork, so small values are a floor, not the child's")  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """One child process: wall seconds, its own peak RSS (bytes; 0 if unknown), exit code, and whether the time limit stopped it."""

    command: tuple[str, ...]
    seconds: float
    peak_rss: int
    returncode: int
    timed_out: bool
    stdout: str
    stderr: str


def measure(command: Sequence[str], *, timeout: float | None = None, cwd: Path | None = None, env: dict | None = None) -> Measurement:
    """Run `command`, wait for it and return its wall time and peak RSS.

    Peak RSS comes from GNU time (`/usr/bin/time -f %M`) when it exists, else from
    `ru_maxrss` of `os.wait4` on the child. Why not the latter alone: Linux carries the
    parent's RSS high-water mark into a forked child across exec, so a child of a
    benchmark process holding 400 MB never reports less than that; GNU time is a small
    parent. After `timeout` seconds the child's process group gets SIGTERM, then SIGKILL
    10 s later (a stopped command's peak RSS may then be unknown: 0).
    """
    with open(os.devnull, "rb") as devnull, tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        out_path, err_path, rss_path = (Path(tmp) / name for name in ("stdout", "stderr", "maxrss"))
        wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *command] if Path(GNU_TIME).exists() else list(command)
        with open(out_path, "wb") as out_file, open(err_path, "wb") as err_file:
            start = time.perf_counter()
            proc = subprocess.Popen(
                wrapped, stdin=devnull, stdout=out_file, stderr=err_file, cwd=cwd, env=env, start_new_session=True
            )
            fired = threading.Event()

            def stop() -> None:
                fired.set()
                _signal_group(proc.pid, signal.SIGTERM)
                time.sleep(10)
                _signal_group(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, stop) if timeout else None
            if timer:
                timer.daemon = True
                timer.start()
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            if timer:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        peak = usage.ru_maxrss * 1024
        if wrapped[0] == GNU_TIME:
            # GNU time writes "Command exited with non-zero status N" before the figure when the command fails
            figures = [line for line in rss_path.read_text().split() if line.isdigit()] if rss_path.exists() else []
            peak = int(figures[-1]) * 1024 if figures else 0
        out = out_path.read_text(errors="replace")
        err = err_path.read_text(errors="replace")
    return Measurement(tuple(command), seconds, peak, proc.returncode, fired.is_set(), out, err)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def write_config(path: Path, *, db: Path, work: Path, series: bool = False) -> Path:
    """Write a benchmark config: database `db`, an empty inbox, reports and .eml digests under `work`.

    series: declare the benchmark's series (admin1 x event type with a global roll-up, plus
        country totals; detector farrington-cusum, the default) and a digest recipient;
        with no SMTP host the digest is written as an .eml file in the report folder.
    """
    (work / "inbox").mkdir(parents=True, exist_ok=True)
    lines = [
        "[database]", f"path = {str(db)!r}", "",
        "[ingest]", f"inbox = [{str(work / 'inbox')!r}]", "",
        "[report]", f"folder = {str(work / 'reports')!r}", "",
    ]  # fmt: skip
    if series:
        lines += [
            "[[series]]", 'name = "admin1_type"', 'title = "Events by admin1 and event type"',
            'group_by = ["country", "admin1", "event_type"]', 'metric = "events"', "rollup = true", "",
            "[[series]]", 'name = "country"', 'title = "Events by country"', 'group_by = ["country"]',
            'metric = "events"', "rollup = false", "",
            "[alerts]", 'recipients = ["watch@example.org"]', "",
            "[alerts.smtp]", 'host = ""', "",
        ]  # fmt: skip
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def in_workdir(args: argparse.Namespace, run, *, prefix: str) -> int:
    """run(args, folder) in `args.out` (kept), or in a temp folder removed afterwards unless `args.keep`."""
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return run(args, args.out.resolve())
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(args, work)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def fresh_db(path: Path) -> Path:
    """`path`, with any database left there by an earlier run removed (with its -wal, -shm and .lock files)."""
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def monitor_command() -> list[str]:
    """The real `monitor` CLI of this interpreter's environment (console script, else `python -m monitor`)."""
    script = Path(sys.executable).parent / "monitor"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def profile_command(args: Sequence[str], *, out: Path, limit: float) -> list[str]:
    """The command that runs `monitor ARGS...` under cProfile, stats to `out`, stopped after `limit` seconds."""
    return [sys.executable, str(Path(__file__).resolve()), "profile", "--out", str(out), "--limit", str(limit), "--", *args]


def print_profile(path: Path, *, top: int = 20, file=None) -> None:
    """Print the `top` functions of a cProfile stats file by cumulative and by own time."""
    file = file or sys.stdout
    stats = pstats.Stats(str(path), stream=file)
    stats.strip_dirs()
    for key, label in (("cumulative", "cumulative time"), ("tottime", "own time")):
        print(f"--- top {top} by {label} ({path.name})", file=file)
        stats.sort_stats(key).print_stats(top)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def print_table(rows: Sequence[Sequence[object]], header: Sequence[str], *, file=None) -> None:
    """A plain aligned text table."""
    cells = [[str(v) for v in header]] + [[str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for k, r in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=file or sys.stdout)
        if k == 0:
            print("  ".join("-" * w for w in widths), file=file or sys.stdout)


def _profile_main(argv: Sequence[str]) -> int:
    """`benchlib.py profile --out FILE --limit S -- ARGS...`: `monitor ARGS...` under cProfile."""
    import cProfile

    parser = argparse.ArgumentParser(prog="benchlib.py profile", description=_profile_main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="cProfile stats file to write")
    parser.add_argument("--limit", type=float, default=0, help="stop after this many seconds (0: no limit)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments of `monitor` (after --)")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from monitor.cli import cli

    profiler = cProfile.Profile()

    def dump_and_exit(signum: int, _frame) -> None:
        profiler.disable()
        profiler.dump_stats(str(ns.out))
        print(f"profile: stopped by signal {signum}; partial stats in {ns.out}", file=sys.stderr)
        os._exit(124)

    signal.signal(signal.SIGTERM, dump_and_exit)
    signal.signal(signal.SIGALRM, dump_and_exit)
    if ns.limit:
        signal.setitimer(signal.ITIMER_REAL, ns.limit)
    code = 0
    profiler.enable()
    try:
        cli.main(args=list(args), prog_name="monitor", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        profiler.disable()
        signal.setitimer(signal.ITIMER_REAL, 0)
        profiler.dump_stats(str(ns.out))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """`benchlib.py generate OUT.csv --rows N` or `benchlib.py profile ...` (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["profile"]:
        return _profile_main(argv[1:])
    parser = argparse.ArgumentParser(description="write a synthetic ACLED-format CSV (see scripts/benchlib.py)")
    parser.add_argument("command", choices=["generate"])
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=100_000, help="number of events (default 100,000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--revised", type=Path, default=None, help="also write a copy with 1%% of rows revised here")
    ns = parser.parse_args(argv)
    start = time.perf_counter()
    n = write_acled_csv(ns.out, rows=ns.rows, seed=ns.seed, revised_path=ns.revised)
    print(f"{ns.out}: {ns.rows:,} rows, {human_bytes(ns.out.stat().st_size)}, {n:,} revised, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
