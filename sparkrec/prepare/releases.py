"""The MovieLens releases: each one's files, formats, encoding and genre names, and how a
directory's release is recognised from the files it holds.

The prepare job reads these tables (sparkrec.prepare.movielens) and the generator writes them
(sparkrec.synthetic.generator), so a release's layout is described once.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

from sparkrec.core import columns as C

LATIN_1 = "ISO-8859-1"
UTF_8 = "UTF-8"


@dataclass(frozen=True)
class FileFormat:
    """One file of a release: its name, its declared columns, and how its lines are written."""

    name: str
    # None: the file is fingerprinted and listed in the manifest, never parsed.
    schema: T.StructType | None
    sep: str = ","
    header: bool = True
    # GroupLens CSVs put fields holding a comma in double quotes; the .dat and u.* files quote
    # nothing, so there a '"' in a title is part of the title.
    quote: str | None = '"'


def _unquoted(name: str, schema: T.StructType | None = None, sep: str = "::") -> FileFormat:
    return FileFormat(name, schema, sep=sep, header=False, quote=None)


@dataclass(frozen=True)
class Release:
    """A MovieLens release's file layout.

    `signature`: the files whose presence points to this release (default: all of
    its files); `unless`: files whose presence rules it out. ML-1M and ML-10M share
    ratings.dat and movies.dat, so tags.dat decides between them.
    """

    layout: str  # recorded as the manifest's input.layout; keys the raw cache
    label: str
    files: dict[str, FileFormat]
    encoding: str = UTF_8
    whole_stars: bool = False
    signature: tuple[str, ...] | None = None
    unless: tuple[str, ...] = ()

    def signature_files(self) -> tuple[str, ...]:
        return self.signature or tuple(f.name for f in self.files.values())


ML_100K = Release(
    "ml-100k",
    "ML-100K",
    {
        "ratings": _unquoted("u.data", C.RATINGS_SCHEMA, sep="\t"),
        "movies": _unquoted("u.item", C.U_ITEM_SCHEMA, sep="|"),
        "users": _unquoted("u.user", sep="|"),
        "genre_list": _unquoted("u.genre", sep="|"),
    },
    encoding=LATIN_1,
    whole_stars=True,
)
# ML-1M and ML-10M write ratings and movies alike; tags.dat tells them apart.
_DAT = {"ratings": _unquoted("ratings.dat", C.RATINGS_SCHEMA), "movies": _unquoted("movies.dat", C.MOVIES_SCHEMA)}
ML_1M = Release(
    "ml-1m",
    "ML-1M",
    {**_DAT, "users": _unquoted("users.dat")},
    encoding=LATIN_1,
    whole_stars=True,
    unless=("tags.dat",),
)
# Its README names no encoding; the files are read as UTF-8 (see docs/data-contract.md) and a
# title or tag that is not valid UTF-8 is quarantined.
ML_10M = Release("ml-10m", "ML-10M", {**_DAT, "tags": _unquoted("tags.dat", C.TAGS_SCHEMA)}, signature=("tags.dat",))
GROUPLENS = Release(
    "grouplens",
    "ML-20M, ML-25M, ML-32M or ml-latest",
    {
        "ratings": FileFormat("ratings.csv", C.RATINGS_SCHEMA),
        "movies": FileFormat("movies.csv", C.MOVIES_SCHEMA),
        "tags": FileFormat("tags.csv", C.TAGS_SCHEMA),
        "links": FileFormat("links.csv", C.LINKS_SCHEMA),
        "genome_scores": FileFormat("genome-scores.csv", C.GENOME_SCORES_SCHEMA),
        "genome_tags": FileFormat("genome-tags.csv", C.GENOME_TAGS_SCHEMA),
    },
)
# Kaggle's copy of ML-20M: other file names, timestamps as "YYYY-MM-DD HH:MM:SS".
KAGGLE = Release(
    "kaggle",
    "ML-20M as Kaggle distributes it",
    {
        "ratings": FileFormat("rating.csv", C.RATINGS_SCHEMA_KAGGLE),
        "movies": FileFormat("movie.csv", C.MOVIES_SCHEMA),
        "tags": FileFormat("tag.csv", C.TAGS_SCHEMA_KAGGLE),
        "links": FileFormat("link.csv", C.LINKS_SCHEMA),
        "genome_scores": FileFormat("genome_scores.csv", C.GENOME_SCORES_SCHEMA),
        "genome_tags": FileFormat("genome_tags.csv", C.GENOME_TAGS_SCHEMA),
    },
)
RELEASES = (ML_100K, ML_1M, ML_10M, GROUPLENS, KAGGLE)


def matching(present: set[str]) -> list[tuple[Release, str]]:
    """The releases `present` (file names) points to, each with why: the files that decided it."""
    found = []
    for release in RELEASES:
        hits = [name for name in release.signature_files() if name in present]
        if hits and not present.intersection(release.unless):
            absent = f"; {', '.join(release.unless)} absent" if release.unless else ""
            found.append((release, f"{', '.join(hits)} present{absent}"))
    return found


def looked_for() -> str:
    """Every release and its files, for the error of a directory that holds none."""
    return "; ".join(f"{release.label}: {', '.join(f.name for f in release.files.values())}" for release in RELEASES)


# --- genres ---
_LATER = ("ml-10m", "grouplens", "kaggle")
_EVERY = ("ml-100k", "ml-1m", *_LATER)
# The genre names in each release's files -> our genre (columns.GENRE_LIST), with the
# layouts whose files use the name. The READMEs of ML-10M and ml-latest list "Children's"
# where their files say "Children"; the reader maps every name here whatever the release
# (anything else is quarantined as unmapped_genre), the generator writes each layout's own.
GENRE_NAMES = (
    # (name in the files, our genre, layouts whose files use the name)
    ("Action", "Action", _EVERY),
    ("Adventure", "Adventure", _EVERY),
    ("Animation", "Animation", _EVERY),
    ("Children's", "Children", ("ml-100k", "ml-1m")),
    ("Children", "Children", _LATER),
    ("Comedy", "Comedy", _EVERY),
    ("Crime", "Crime", _EVERY),
    ("Documentary", "Documentary", _EVERY),
    ("Drama", "Drama", _EVERY),
    ("Fantasy", "Fantasy", _EVERY),
    ("Film-Noir", "Film-Noir", _EVERY),
    ("Horror", "Horror", _EVERY),
    ("IMAX", "IMAX", _LATER),
    ("Musical", "Musical", _EVERY),
    ("Mystery", "Mystery", _EVERY),
    ("Romance", "Romance", _EVERY),
    ("Sci-Fi", "Sci-Fi", _EVERY),
    ("Thriller", "Thriller", _EVERY),
    ("War", "War", _EVERY),
    ("Western", "Western", _EVERY),
    ("unknown", C.NO_GENRES, ("ml-100k",)),
    ("(no genres listed)", C.NO_GENRES, _LATER),
)
GENRE_OF = {name: genre for name, genre, _ in GENRE_NAMES}
# u.item's genre flags name these, in u.genre's order: "unknown", then the table's order.
ML100K_GENRES = ("unknown", *(name for name, _, layouts in GENRE_NAMES if "ml-100k" in layouts and name != "unknown"))


def genre_names(layout: str) -> dict[str, str]:
    """Our genre -> the name `layout`'s files give it; a genre the release lacks keeps our name."""
    own = {genre: name for name, genre, layouts in GENRE_NAMES if layout in layouts}
    return {genre: own.get(genre, genre) for genre in C.GENRE_LIST}
