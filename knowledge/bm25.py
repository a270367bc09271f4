"""BM25 sparse vectors for hybrid search: tokenizer, Snowball stemming, corpus statistics, vectors.

Qdrant applies the IDF itself (`Modifier.IDF` on the sparse vector), so a document vector carries only
BM25's saturated, length-normalised term frequency and a query vector marks each known term with 1.0.
Term ids are stable across crawls: points already in Qdrant keep meaning the same terms after a refit.
"""

import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass

import snowballstemmer
from snowballstemmer.basestemmer import BaseStemmer

from knowledge.models import BM25Index
from tenants.models import Project

K1 = 1.5
B = 0.75

_TOKEN = re.compile(r"[^\W_]+")  # letters and digits of any script; everything else separates
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LANGUAGES = {"en": "english", "english": "english", "ru": "russian", "russian": "russian"}
_CODES = {"english": "en", "russian": "ru"}
_stemmers = threading.local()  # Snowball stemmers keep the word being stemmed in the object: one per thread
# English function words, dropped from documents and queries: Snowball's English stop list and "can", "will",
# "just", but the question words and negations ("where", "when", "how", "not" carry meaning). In a small
# site's corpus they are not rare enough for the IDF to silence them: "Where exactly is the school and when can
# I call?" found a chunk with "can" in it first. Russian keeps all of its words: the Snowball Russian list cost
# more than it gained on the retrieval benchmark ("за 1 м²", "не смогу", "после ремонта" lost their pages).
ENGLISH_STOP_WORDS = frozenset({
    "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves", "he",
    "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their",
    "theirs", "themselves", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be", "been",
    "being", "have", "has", "had", "having", "do", "does", "did", "doing", "would", "should", "could", "ought",
    "an", "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with",
    "about", "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from",
    "up", "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there",
    "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "only", "own", "same", "so",
    "than", "too", "very", "can", "will", "just",
})  # fmt: skip


@dataclass
class BM25Stats:
    language: str  # "en" | "ru"
    vocabulary: dict[str, int]  # term -> sparse index, stable across refits
    doc_freq: dict[str, int]  # term -> number of documents of the current corpus that contain it
    num_docs: int
    avg_doc_len: float


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


# --- analysis --------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of letters and digits; ё is folded into е as Russian writers mostly do."""
    # NFKC first: a decomposed "й" (и + combining breve) would split the word in two, and "м²" or a
    # full-width "ｗｉｆｉ" should meet what people type ("м2", "wifi").
    normalized = unicodedata.normalize("NFKC", text).lower().replace("ё", "е")
    return _TOKEN.findall(normalized)


def analyze(text: str, language: str, *, stem: bool = True) -> list[str]:
    """Index terms: tokens of two characters or more, except English stop words, stemmed.

    Cyrillic words take the Russian stemmer whatever the project's language, and Latin words in a
    Russian project take the English one: brand and service names in the other script still meet.
    """
    main = _snowball_name(language)
    terms = [token for token in tokenize(text) if len(token) > 1 and token not in ENGLISH_STOP_WORDS]
    if not stem:
        return terms
    return [_stemmer(_stemmer_name_for(token, main)).stemWord(token) for token in terms]


def bm25_language(language: str) -> str:
    """The two-letter code stored with the statistics, from a code or a Snowball name."""
    return _CODES[_snowball_name(language)]


def _snowball_name(language: str) -> str:
    try:
        return _LANGUAGES[language.strip().lower()]
    except KeyError:
        raise ValueError(f"unsupported BM25 language {language!r}; expected one of en, ru") from None


def _stemmer_name_for(token: str, main: str) -> str:
    if _CYRILLIC.search(token):
        return "russian"
    return "english" if main == "russian" else main


def _stemmer(name: str) -> BaseStemmer:
    cache: dict[str, BaseStemmer] | None = getattr(_stemmers, "by_name", None)
    if cache is None:
        cache = _stemmers.by_name = {}
    if name not in cache:
        cache[name] = snowballstemmer.stemmer(name)
    return cache[name]


# --- statistics and vectors ------------------------------------------------------------------------------


def bm25_fit(documents: list[list[str]], *, language: str, previous: BM25Stats | None = None) -> BM25Stats:
    """Statistics of the whole current corpus; term ids of `previous` are kept and new terms appended.

    Terms that left the corpus keep their ids (never reused), so no stored vector changes meaning.
    """
    vocabulary = dict(previous.vocabulary) if previous is not None else {}
    next_id = max(vocabulary.values(), default=-1) + 1
    doc_freq: Counter[str] = Counter()
    for terms in documents:
        for term in dict.fromkeys(terms):  # distinct, in order of appearance: ids come out deterministic
            doc_freq[term] += 1
            if term not in vocabulary:
                vocabulary[term] = next_id
                next_id += 1
    num_docs = len(documents)
    avg_doc_len = sum(len(terms) for terms in documents) / num_docs if num_docs else 0.0
    return BM25Stats(
        language=bm25_language(language),
        vocabulary=vocabulary,
        doc_freq=dict(doc_freq),
        num_docs=num_docs,
        avg_doc_len=avg_doc_len,
    )


def bm25_document_vector(terms: list[str], stats: BM25Stats) -> SparseVector:
    """tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl)) per known term; Qdrant multiplies in the IDF."""
    doc_len = len(terms)
    avg_doc_len = stats.avg_doc_len or doc_len or 1.0  # an empty corpus: every document is average
    norm = K1 * (1 - B + B * doc_len / avg_doc_len)
    weights = {
        stats.vocabulary[term]: tf * (K1 + 1) / (tf + norm)
        for term, tf in Counter(terms).items()
        if term in stats.vocabulary
    }
    return _sparse(weights)


def bm25_query_vector(terms: list[str], stats: BM25Stats) -> SparseVector:
    """1.0 per distinct known term: with the IDF modifier the score is the sum of IDF x document weight."""
    return _sparse({stats.vocabulary[term]: 1.0 for term in terms if term in stats.vocabulary})


def _sparse(weights: dict[int, float]) -> SparseVector:
    indices = sorted(weights)
    return SparseVector(indices=indices, values=[weights[index] for index in indices])


# --- persistence -----------------------------------------------------------------------------------------


def bm25_stats_load(*, project: Project) -> BM25Stats | None:
    index = BM25Index.objects.filter(project=project).first()
    if index is None:
        return None
    return BM25Stats(
        language=index.language,
        vocabulary={term: int(term_id) for term, term_id in index.vocabulary.items()},
        doc_freq={term: int(count) for term, count in index.doc_freq.items()},
        num_docs=index.num_docs,
        avg_doc_len=index.avg_doc_len,
    )


def bm25_stats_save(*, project: Project, stats: BM25Stats) -> None:
    BM25Index.objects.update_or_create(
        project=project,
        defaults={
            "language": bm25_language(stats.language),
            "vocabulary": stats.vocabulary,
            "doc_freq": stats.doc_freq,
            "num_docs": stats.num_docs,
            "avg_doc_len": stats.avg_doc_len,
        },
    )
